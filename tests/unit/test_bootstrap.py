"""lpfleet bootstrap's pure parts: the target and the one-host inventory it writes."""

from __future__ import annotations

import pytest

from lpfleet.commands.bootstrap import inventory_source, parse_target


def test_parse_target():
    assert parse_target("root@10.0.0.7", None) == ("root", "10.0.0.7", None)
    assert parse_target("10.0.0.7", 2222) == ("root", "10.0.0.7", 2222)
    assert parse_target("ubuntu@box:2200", None) == ("ubuntu", "box", 2200)
    assert parse_target("ubuntu@box:2200", 22) == ("ubuntu", "box", 22)  # --port wins
    with pytest.raises(ValueError, match="port 'ssh'"):
        parse_target("root@box:ssh", None)
    with pytest.raises(ValueError, match="no host"):
        parse_target("root@", None)


def test_inventory_source_puts_the_host_in_every_group():
    source = inventory_source(
        "gpu-7", {"ssh_hostname": "10.0.0.7", "ssh_port": 22}, ["sandbox", "gpu_a", "gpu_a"]
    )
    namespace: dict = {"__file__": "inv.py"}
    exec(compile(source, "inv.py", "exec"), namespace)
    assert (
        namespace["sandbox"]
        == namespace["gpu_a"]
        == [("gpu-7", {"ssh_hostname": "10.0.0.7", "ssh_port": 22})]
    )
    assert source.count("gpu_a = ") == 1


@pytest.mark.parametrize("group", ["gpu-a", "1gpu", "class", "a b", "../x"])
def test_group_names_must_be_group_file_names(group):
    with pytest.raises(ValueError, match="Python identifier"):
        inventory_source("h", {}, [group])
