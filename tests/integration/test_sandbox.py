"""The sandbox fleet itself: SSH-reachable nodes, fake GPUs, services, idempotent `up`, stand-in images, teardown.

These run before the step tests (file order) on the session's sandbox and leave it as they found it, except
that node 1 has docker.io installed (from the debs baked into the node image, as the deploy would).
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import urllib.request
from pathlib import Path

import pytest

from lpfleet.sandbox import fleet
from lpfleet.sandbox.engine import docker, names
from lpfleet.sandbox.state import LABEL, SandboxError, load_state, state_path

pytestmark = pytest.mark.integration


def test_pyinfra_reaches_every_node_over_ssh(sandbox):
    result = sandbox.pyinfra("exec", "--", "cat /etc/hostname; id -u")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for node in sandbox.nodes:
        assert f"[{node.name}] {node.name}" in output
        assert f"[{node.name}] 0" in output
    assert re.search(rf"server\.shell.*\s{len(sandbox.nodes)}\s+{len(sandbox.nodes)}\s+-", output), output[-2000:]


def test_inventory_groups_nodes_by_gpu_class(sandbox):
    result = sandbox.pyinfra("debug-inventory")
    assert result.returncode == 0, result.stderr[-3000:]
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    groups = dict(re.findall(r"^\[(\S+)\]\s*\n--> Groups: (.*)$", output, re.MULTILINE))
    assert set(groups) == {node.name for node in sandbox.nodes}
    for node in sandbox.nodes:
        assert set(groups[node.name].split(", ")) == {"sandbox", f"sandbox_{node.gpu_class}"}


def test_each_node_reports_its_own_fake_gpus(sandbox):
    for node in sandbox.state.nodes:
        rc, out = sandbox.exec(node.name, "nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used "
                                          "--format=csv,noheader,nounits")
        assert rc == 0, out
        assert out.splitlines() == [f"{g.index}, {g.uuid}, {g.name}, {g.memory_total_mib}, {g.memory_used_mib}"
                                    for g in node.gpus]
    assert {node.gpu_class for node in sandbox.state.nodes} == {"consumer", "datacenter"}


def test_services_answer_from_this_machine_and_from_the_nodes(sandbox):
    node = sandbox.nodes[0]
    if sandbox.hub:
        with urllib.request.urlopen(f"{sandbox.hub.controller_url}/_sandbox/health", timeout=10) as response:
            assert response.status == 200
        rc, out = sandbox.exec(node, f"curl -fsS -o /dev/null -w '%{{http_code}}' {sandbox.hub.node_url}/_sandbox/health")
        assert (rc, out) == (0, "200")
        assert sandbox.hub.token
    if sandbox.apt:
        base = sandbox.apt.key_url.rsplit("/", 1)[0]
        rc, out = sandbox.exec(node, f"curl -fsS {base}/fingerprint")
        assert rc == 0 and out.strip() == sandbox.apt.key_fingerprint
    assert sandbox.hub or sandbox.apt, "neither the hub nor the apt image folder exists"


def test_state_and_service_env_files_are_private_and_the_token_is_never_printed(sandbox):
    path = state_path(sandbox.name)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(sandbox.ssh_key).stat().st_mode) == 0o600
    for env_file in path.parent.glob(".*.env"):
        assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    if not sandbox.hub:
        pytest.skip("no hub image folder: no token to keep secret")
    token = sandbox.hub.token
    shown = sandbox.lpfleet("sandbox", "up") , sandbox.lpfleet("sandbox", "status")
    for result in shown:
        assert result.returncode == 0, result.stderr
        assert token not in result.stdout + result.stderr
    config = json.loads(docker("inspect", sandbox.hub.container).stdout)[0]
    assert token not in " ".join(config["Args"] + [config["Path"]])  # not on the command line


def test_up_again_reuses_every_container_and_port(sandbox):
    before = {row.name: row for row in fleet.status(sandbox.name)}
    ids = docker("ps", "-q", "--no-trunc", "--filter", f"label={LABEL}={sandbox.name}").stdout.split()
    state = fleet.up(nodes=len(sandbox.nodes), name=sandbox.name, log=lambda line: None)
    assert docker("ps", "-q", "--no-trunc", "--filter", f"label={LABEL}={sandbox.name}").stdout.split() == ids
    assert [n.ssh_port for n in state.nodes] == [n.ssh_port for n in sandbox.nodes]
    assert set(before) == {row.name for row in fleet.status(sandbox.name)}
    assert load_state(sandbox.name) == state


def test_a_stopped_service_is_replaced_on_its_old_port(sandbox):
    if not sandbox.hub:
        pytest.skip("no hub image folder")
    old_id = docker("inspect", "--format", "{{.Id}}", sandbox.hub.container).stdout.strip()
    docker("stop", "--time", "1", sandbox.hub.container)
    logged: list[str] = []
    state = fleet.up(nodes=len(sandbox.nodes), name=sandbox.name, log=logged.append)
    assert f"replacing {sandbox.hub.container} (not running)" in logged
    assert docker("inspect", "--format", "{{.Id}}", sandbox.hub.container).stdout.strip() != old_id
    assert state.hub.controller_url == sandbox.hub.controller_url and state.hub.token == sandbox.hub.token
    with urllib.request.urlopen(f"{sandbox.hub.controller_url}/_sandbox/health", timeout=10) as response:
        assert response.status == 200


def test_docker_io_installs_offline_and_its_dockerd_gets_the_stand_in_images(sandbox):
    node = sandbox.nodes[0]
    rc, out = sandbox.exec(node, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
                                 "--no-download docker.io 2>&1 && systemctl is-active docker")
    assert rc == 0 and out.strip().endswith("active"), out[-3000:]
    images = sandbox.state.node_images
    assert images, "no target \"node\" image folder to load"
    rc, out = sandbox.exec(node, "docker images --no-trunc --format '{{.Repository}}:{{.Tag}} {{.ID}}'")
    assert rc == 0, out
    assert {tag: ident for tag, ident in images.items()}.items() <= dict(
        line.split() for line in out.splitlines()).items()
    # an image gone from the node's dockerd comes back with the next `up`, and only that one is loaded
    tag = sorted(images)[0]
    assert sandbox.exec(node, f"docker rmi -f {tag}")[0] == 0
    logged: list[str] = []
    fleet.up(nodes=len(sandbox.nodes), name=sandbox.name, log=logged.append)
    assert logged == [f"{node.name}: loading {tag}"]
    rc, out = sandbox.exec(node, f"docker image inspect --format '{{{{.Id}}}}' {tag}")
    assert (rc, out.strip()) == (0, images[tag])


def test_down_removes_exactly_what_its_sandbox_made(sandbox, sandbox_env):
    name = f"{sandbox.name}-td"
    env = {**sandbox_env, "LPFLEET_SANDBOX": name}
    foreign = f"{name}-foreign"
    docker("volume", "create", foreign)  # same prefix, no label: not ours
    squatter = f"{name}-hub"
    try:
        if sandbox.hub:  # a container we did not make holds a service's name: refuse, never remove it
            docker("create", "--name", squatter, sandbox.state.services["hub"].image)
            with pytest.raises(SandboxError, match=f"a container named {squatter} exists that is not"):
                fleet.up(nodes=1, name=name, log=lambda line: None)
            assert docker("inspect", "--type", "container", squatter, check=False).returncode == 0
            docker("rm", squatter)
        state = fleet.up(nodes=2, name=name, log=lambda line: None)
        assert [n.name for n in state.nodes] == [f"{name}-node-1", f"{name}-node-2"]
        shrunk = fleet.up(nodes=1, name=name, log=lambda line: None)
        assert [n.name for n in shrunk.nodes] == [f"{name}-node-1"]
        assert f"{name}-node-2" not in names("container", f"{LABEL}={name}")
        assert f"{name}-node-2-docker" not in names("volume", f"{LABEL}={name}")
        others = docker("ps", "-aq", "--filter", f"label={LABEL}={sandbox.name}").stdout.split()
        fleet.down(name=name, log=lambda line: None)
        for kind in ("container", "volume", "network"):
            assert names(kind, f"{LABEL}={name}") == []
        assert docker("ps", "-aq", "--filter", f"label={LABEL}={sandbox.name}").stdout.split() == others
        assert docker("volume", "inspect", foreign, check=False).returncode == 0
        assert not state_path(name).exists()
        inventory = subprocess.run([str(Path(sandbox.inventory).parents[1] / ".venv/bin/pyinfra"), "-y",
                                    sandbox.inventory, "exec", "--", "true"],
                                   capture_output=True, text=True, env=env)
        assert inventory.returncode != 0 and "run `lpfleet sandbox up` first" in inventory.stdout + inventory.stderr
    finally:
        fleet.down(name=name, log=lambda line: None)
        docker("volume", "rm", foreign, check=False)
        docker("rm", "-f", squatter, check=False)
