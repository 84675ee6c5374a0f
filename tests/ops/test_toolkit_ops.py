"""The nvidia_toolkit task through pyinfra's API on @fake hosts: what runs, what is uploaded, what is refused."""

from __future__ import annotations

import json

import pytest

from lpfleet.facts.docker import NVIDIA_KEYRING, NVIDIA_SOURCE, RESTART_MARKER
from lpfleet.openpgp import dearmor
from lpfleet.operations.files import staging_path
from tasks.docker_engine import install_docker_engine
from tasks.nvidia_toolkit import install_nvidia_toolkit
from tests.ops.toolkit_harness import (
    ED_ASC,
    REPO_URL,
    RSA_ASC,
    RSA_FPR,
    FakeNode,
    converged_node,
    run_tasks,
    spec_for,
)

BOTH = (install_docker_engine, install_nvidia_toolkit)


def test_bare_node_gets_everything_in_order(monkeypatch):
    run = run_tasks({"n1": (spec_for("@fake/n1"), FakeNode())}, BOTH, monkeypatch=monkeypatch)
    assert run.failed == set()
    commands = run.commands["n1"]
    assert len(run.ran("n1", "lpfleet-container-host-state")) == 1  # one fact round-trip for both tasks
    assert run.ran("n1", "install --no-install-recommends docker.io")
    assert run.uploads["n1"][staging_path("/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg")] == dearmor(
        RSA_ASC.encode()
    )
    assert run.uploads["n1"][staging_path("/etc/apt/sources.list.d/nvidia-container-toolkit.sources")] == (
        f"Types: deb\nURIs: {REPO_URL}\nSuites: /\nSigned-By: {NVIDIA_KEYRING}\n".encode()
    )
    update = run.ran("n1", "Dir::Etc::sourcelist=")
    assert update and NVIDIA_SOURCE in update[0] and "Dir::Etc::sourceparts=-" in update[0]
    install = run.ran("n1", "--allow-downgrades")[0]
    for package in ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
                    "libnvidia-container1"):
        assert f"{package}=1.19.0-1" in install
    assert "apt-mark hold" in install
    marker_line = run.ran("n1", "newly installed")[0]
    assert marker_line.startswith("mkdir -p /var/lib/lpfleet") and RESTART_MARKER in marker_line
    assert json.loads(run.uploads["n1"][staging_path("/etc/docker/daemon.json")]) == {
        "live-restore": True,
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}},
    }
    assert run.ran("n1", "lpfleet-docker-restart")
    order = [
        commands.index(run.ran("n1", "docker.io")[0]),
        commands.index(update[0]),
        commands.index(install),
        commands.index(run.ran("n1", "lpfleet-daemon-json")[0]),
        commands.index(run.ran("n1", "lpfleet-docker-restart")[0]),
    ]
    assert order == sorted(order)


def test_converged_node_runs_nothing_but_the_fact(monkeypatch):
    run = run_tasks({"n1": (spec_for("@fake/n1"), converged_node())}, BOTH, monkeypatch=monkeypatch)
    assert run.failed == set()
    assert run.changed_operations("n1") == []
    assert run.commands["n1"] == run.ran("n1", "lpfleet-container-host-state")
    assert run.uploads["n1"] == {}


def test_substituted_key_fails_the_host_and_installs_nothing(monkeypatch):
    node = FakeNode(fetched={"nvidia-key": ED_ASC.encode()})
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.failed == {"n1"}
    rejection = run.ran("n1", "REJECTED")
    assert rejection and f"is not the pinned {RSA_FPR}" in rejection[0]
    assert not any("keyring" in path for path in run.uploads["n1"])
    assert not run.ran("n1", "apt-get -q -y -o DPkg::Lock::Timeout=300 install")
    assert not run.ran("n1", "lpfleet-daemon-json")


def test_substituted_key_on_an_installed_node_is_still_caught(monkeypatch):
    node = converged_node(fetched={"nvidia-key": ED_ASC.encode()})
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.failed == {"n1"}
    assert run.ran("n1", "REJECTED")


def test_key_server_down_keeps_a_verified_keyring(monkeypatch):
    node = converged_node(fetched={"nvidia-key": "curl: (7) Failed to connect"})
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.failed == set()
    assert run.changed_operations("n1") == []


def test_key_server_down_on_a_bare_node_fails_it(monkeypatch):
    node = FakeNode(fetched={"nvidia-key": "curl: (22) The requested URL returned error: 404"})
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.failed == {"n1"}
    assert "404" in run.ran("n1", "could not download")[0]


def test_broken_daemon_json_fails_only_its_host(monkeypatch):
    broken = converged_node(files={**converged_node().files, "daemon.json": b'{"log-driver": "json-file",\n'})
    nodes = {
        "good": (spec_for("@fake/good"), FakeNode()),
        "bad": (spec_for("@fake/bad"), broken),
    }
    run = run_tasks(nodes, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.failed == {"bad"}
    message = run.ran("bad", "Refusing to touch it")[0]
    assert "/etc/docker/daemon.json is not valid JSON" in message and "line 2" in message
    assert run.uploads["bad"] == {}
    assert not run.ran("bad", "lpfleet-docker-restart")
    assert run.ran("good", "lpfleet-daemon-json") and run.ran("good", "lpfleet-docker-restart")


def test_foreign_keys_survive_and_a_backup_is_taken(monkeypatch):
    foreign = {"log-driver": "json-file", "runtimes": {"crun": {"path": "/usr/bin/crun"}},
               "features": {"buildkit": True}}
    node = converged_node(files={**converged_node().files, "daemon.json": json.dumps(foreign).encode()})
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    written = json.loads(run.uploads["n1"][staging_path("/etc/docker/daemon.json")])
    assert written["log-driver"] == "json-file"
    assert written["features"] == {"buildkit": True}
    assert written["runtimes"]["crun"] == {"path": "/usr/bin/crun"}
    assert written["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}
    swap = run.ran("n1", "lpfleet-daemon-json")[0]
    assert ".lpfleet.bak" in swap  # backup path handed to the swap script
    assert "reload: daemon.json runtimes.nvidia added; live-restore set to true" in swap
    # only reloadable keys changed and the toolkit was already installed: dockerd is reloaded, not restarted
    assert run.ran("n1", "lpfleet-docker-restart")


def test_equivalent_runtime_path_is_no_change(monkeypatch):
    config = {"live-restore": True, "runtimes": {"nvidia": {"path": "/usr/bin/nvidia-container-runtime",
                                                            "runtimeArgs": []}}}
    node = converged_node(files={**converged_node().files, "daemon.json": json.dumps(config).encode()})
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.changed_operations("n1") == []


def test_pin_change_moves_all_four_packages_without_restarting(monkeypatch):
    run = run_tasks({"n1": (spec_for("@fake/n1", version="1.20.0-1"), converged_node("1.19.0-1"))},
                    (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    install = run.ran("n1", "--allow-downgrades")[0]
    assert install.count("=1.20.0-1") == 4
    assert run.ran("n1", "apt-cache show nvidia-container-toolkit=1.20.0-1")
    assert not run.ran("n1", "newly installed")
    assert not run.ran("n1", "lpfleet-docker-restart")
    assert run.changed_operations("n1") == ["NVIDIA Container Toolkit | NVIDIA Container Toolkit 1.20.0-1 "
                                            "(all four packages, held)"]


def test_unheld_packages_get_held_only(monkeypatch):
    node = converged_node()
    node.packages = {**node.packages, "libnvidia-container1": ("1.19.0-1", "ii ")}
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.ran("n1", "apt-mark hold libnvidia-container1")
    assert not run.ran("n1", "--allow-downgrades")


def test_stale_nvidia_sources_are_removed_with_a_message_and_lists_refreshed(monkeypatch, caplog):
    node = converged_node(stale=("/etc/apt/sources.list.d/nvidia-docker.list",))
    with caplog.at_level("INFO", logger="pyinfra"):
        run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.ran("n1", "rm -f /etc/apt/sources.list.d/nvidia-docker.list")
    assert "lpfleet: removing stale NVIDIA apt source /etc/apt/sources.list.d/nvidia-docker.list" in caplog.text
    assert run.ran("n1", "Dir::Etc::sourcelist=")


def test_interrupted_first_install_still_restarts(monkeypatch):
    node = converged_node(files={**converged_node().files, "restart-marker": b"restart: hook newly installed\n"})
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.ran("n1", "lpfleet-docker-restart")
    assert run.changed_operations("n1") == ["NVIDIA Container Toolkit | Restart dockerd if a change needs it "
                                            "(rolling)"]


def test_flag_set_in_the_unit_blocks_the_write(monkeypatch):
    node = converged_node(files={**converged_node().files, "daemon.json": b"{}"},
                          dockerd_args=("/usr/bin/dockerd", "-H", "fd://", "--live-restore"))
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.failed == {"n1"}
    assert "live-restore (dockerd is started with --live-restore)" in run.ran("n1", "not writing")[0]
    assert run.uploads["n1"] == {}


def test_config_file_flag_is_followed(monkeypatch):
    node = converged_node(daemon_json_path="/srv/docker/daemon.json")
    node.files = {**node.files, "daemon.json": None}
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert staging_path("/srv/docker/daemon.json") in run.uploads["n1"]


def test_runtime_missing_from_a_running_dockerd_is_reloaded_not_restarted(monkeypatch):
    node = converged_node(docker_info=("runc", ["runc"]))
    run = run_tasks({"n1": (spec_for("@fake/n1"), node)}, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.ran("n1", "lpfleet-runtime-check")
    assert not run.ran("n1", "lpfleet-docker-restart")


def test_gpu_check_runs_after_a_change_on_gpu_nodes_only(monkeypatch):
    nodes = {
        "gpu": (spec_for("@fake/gpu"), FakeNode(gpu_devices=2)),
        "fake": (spec_for("@fake/fake"), FakeNode(gpu_devices=0)),
        "same": (spec_for("@fake/same"), converged_node(gpu_devices=2)),
    }
    run = run_tasks(nodes, (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    check = run.ran("gpu", "lpfleet-gpu-check")[0]
    assert "livepeer/go-livepeer:latest" in check and check.rstrip().endswith(" 2")
    assert not run.ran("fake", "lpfleet-gpu-check")
    assert not run.ran("same", "lpfleet-gpu-check")


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_restarts_roll_in_batches_and_stop_after_a_failed_batch(monkeypatch, batch):
    names = [f"n{i}" for i in range(1, 5)]
    nodes = {name: (spec_for(f"@fake/{name}", restart_batch_size=batch), FakeNode()) for name in names}
    # every restart fails: exactly the first batch tries, every later host refuses to restart
    responses = {name: {"lpfleet-docker-restart": {"success": False, "stderr": "dockerd failed"}} for name in names}
    run = run_tasks(nodes, (install_nvidia_toolkit,), responses=responses, monkeypatch=monkeypatch)
    assert run.failed == set(names)
    tried = [name for name in names if run.ran(name, "lpfleet-docker-restart")]
    refused = [name for name in names if run.ran(name, "the rolling restart already failed on @fake/")]
    assert len(tried) == batch
    assert sorted(tried + refused) == names


def test_one_failed_restart_does_not_stop_its_own_batch(monkeypatch):
    names = ["n1", "n2"]
    nodes = {name: (spec_for(f"@fake/{name}", restart_batch_size=2), FakeNode()) for name in names}
    responses = {"n1": {"lpfleet-docker-restart": {"success": False, "stderr": "dockerd failed"}}}
    run = run_tasks(nodes, (install_nvidia_toolkit,), responses=responses, monkeypatch=monkeypatch)
    assert run.failed == {"n1"}
    assert run.ran("n2", "lpfleet-docker-restart")


def test_a_key_id_instead_of_a_fingerprint_fails_the_host_not_the_run(monkeypatch):
    run = run_tasks({"n1": (spec_for("@fake/n1", fingerprint="DDCAE044F796ECB0"), FakeNode())},
                    (install_nvidia_toolkit,), monkeypatch=monkeypatch)
    assert run.failed == {"n1"}
    assert "not a full key fingerprint" in run.ran("n1", "pinned fingerprint is unusable")[0]
