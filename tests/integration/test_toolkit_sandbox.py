"""Docker Engine + NVIDIA Container Toolkit on the sandbox fleet, over SSH, with the sandbox's signed apt repo.

The tests run in file order on the session's sandbox and leave every node converged (group data pin, valid
daemon.json) for the tests that come after them.
"""

from __future__ import annotations

import json
import re

import pytest

from lpfleet.sandbox import aptrepo

pytestmark = pytest.mark.integration

DEPLOY = '''
from pyinfra import host

from lpfleet.fleet import node_plan
from tasks.docker_engine import install_docker_engine
from tasks.nvidia_toolkit import install_nvidia_toolkit

plan = node_plan(host)
install_docker_engine(plan)
install_nvidia_toolkit(plan)
'''
DAEMON_JSON = "/etc/docker/daemon.json"
KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"


@pytest.fixture(scope="module")
def fleet(sandbox, tmp_path_factory):
    """The sandbox, a deploy file running only these two steps, and helpers around them."""
    deploy = tmp_path_factory.mktemp("toolkit") / "toolkit_deploy.py"
    deploy.write_text(DEPLOY)

    class Fleet:
        nodes = list(sandbox.nodes)

        @staticmethod
        def sh(node, command: str) -> str:
            rc, out = sandbox.exec(node, command)
            assert rc == 0, f"{command!r} on {node.name} exited {rc}: {out}"
            return out

        @staticmethod
        def deploy(*args: str):
            result = sandbox.pyinfra(str(deploy), *args)
            result.output = (result.stdout or "") + (result.stderr or "")
            return result

        @staticmethod
        def started(node) -> str:
            """dockerd's PID and start time: both change on a restart, neither on a reload."""
            return Fleet.sh(node, "systemctl show docker -p ExecMainPID -p ExecMainStartTimestampMonotonic").strip()

        @staticmethod
        def versions(node) -> dict[str, str]:
            out = Fleet.sh(node, "dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\\n' "
                                 + " ".join(aptrepo.PACKAGES))
            return {line.split()[0]: " ".join(line.split()[1:]) for line in out.splitlines() if line.strip()}

        @staticmethod
        def sha(node, path: str) -> str:
            return Fleet.sh(node, f"sha256sum {path} | cut -d' ' -f1").strip()

    return Fleet


def changed_operations(output: str) -> int:
    match = re.search(r"Grand total\s+\d+\s+(\S+)\s+(\S+)\s+\S+", output)
    assert match, output[-3000:]
    return 0 if match.group(1) == "-" else int(match.group(1))


def pinned_version(fleet) -> str:
    """The group data pin, as installed by the first deploy."""
    return fleet.versions(fleet.nodes[0])["nvidia-container-toolkit"].split()[0]


def test_first_deploy_installs_docker_and_the_pinned_toolkit(fleet):
    result = fleet.deploy()
    assert result.returncode == 0, result.output[-4000:]
    for node in fleet.nodes:
        versions = fleet.versions(node)
        assert len({value for value in versions.values()}) == 1, versions  # one version, all held ("hi")
        assert all(value.endswith("hi") for value in versions.values()), versions
        config = json.loads(fleet.sh(node, f"cat {DAEMON_JSON}"))
        assert config["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}
        assert '"nvidia"' in fleet.sh(node, "docker info --format '{{json .Runtimes}}'")
        assert fleet.sh(node, "systemctl is-enabled docker").strip() == "enabled"
        assert fleet.sh(node, "test -e /var/lib/lpfleet/docker-restart-pending || echo none").strip() == "none"
    assert "GPU container check skipped: no /dev/nvidiaN device nodes" in result.output


def test_gpus_flag_works_because_dockerd_was_restarted_after_the_install(fleet):
    node = fleet.nodes[0]
    image = fleet.sh(node, "docker images --format '{{.Repository}}:{{.Tag}}' | grep -v '<none>' | head -1").strip()
    if not image:  # no stand-in image loaded into this node: bring one
        import subprocess

        host_image = subprocess.run(
            ["docker", "images", "--filter", "label=lpfleet.sandbox.input-hash", "--format",
             "{{.Repository}}:{{.Tag}}"], capture_output=True, text=True, check=True,
        ).stdout.split()[0]
        subprocess.run(f"docker save {host_image} | docker exec -i {node.container} docker load", shell=True,
                       check=True, capture_output=True)
        image = host_image
    fleet.sh(node, f"docker run --rm --gpus all --entrypoint true {image}")
    assert "prestart" in fleet.sh(node, "cat /var/log/nvidia-container-runtime-hook.log")


def test_second_deploy_changes_nothing_and_restarts_nothing(fleet):
    before = {node.name: fleet.started(node) for node in fleet.nodes}
    result = fleet.deploy()
    assert result.returncode == 0, result.output[-4000:]
    assert changed_operations(result.output) == 0, result.output[-4000:]
    assert {node.name: fleet.started(node) for node in fleet.nodes} == before


def test_foreign_daemon_json_keys_are_kept(fleet):
    node = fleet.nodes[-1]
    foreign = {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m"},
        "runtimes": {"runc-debug": {"path": "/usr/sbin/runc", "runtimeArgs": ["--debug"]}},
        "features": {"buildkit": True},
    }
    fleet.sh(node, f"printf '%s' '{json.dumps(foreign)}' > {DAEMON_JSON} "
             "&& systemctl reset-failed docker && systemctl restart docker")
    before = fleet.started(node)
    result = fleet.deploy("--limit", node.name)
    assert result.returncode == 0, result.output[-4000:]
    merged = json.loads(fleet.sh(node, f"cat {DAEMON_JSON}"))
    for key, value in foreign.items():
        if key != "runtimes":
            assert merged[key] == value
    assert merged["runtimes"]["runc-debug"] == foreign["runtimes"]["runc-debug"]
    assert merged["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    backups = fleet.sh(node, f"ls {DAEMON_JSON}.*.lpfleet.bak").split()
    assert json.loads(fleet.sh(node, f"cat {backups[-1]}")) == foreign
    runtimes = json.loads(fleet.sh(node, "docker info --format '{{json .Runtimes}}'"))
    assert {"nvidia", "runc-debug"} <= set(runtimes)
    # only runtimes / live-restore changed: dockerd re-read them on a reload, it was not restarted
    assert fleet.started(node) == before
    assert changed_operations(fleet.deploy("--limit", node.name).output) == 0


def test_broken_daemon_json_fails_only_that_node(fleet):
    broken, other = fleet.nodes[0], fleet.nodes[1]
    good_content = fleet.sh(broken, f"cat {DAEMON_JSON}")
    fleet.sh(broken, f"printf '{{\\n  \"log-driver\": \"json-file\",\\n' > {DAEMON_JSON}")
    sha = fleet.sha(broken, DAEMON_JSON)
    fleet.sh(other, f"echo '{{}}' > {DAEMON_JSON}")  # the other node has something to converge
    try:
        result = fleet.deploy()
        assert result.returncode != 0
        assert f"{DAEMON_JSON} is not valid JSON" in result.output and "Refusing to touch it" in result.output
        assert fleet.sha(broken, DAEMON_JSON) == sha
        assert json.loads(fleet.sh(other, f"cat {DAEMON_JSON}"))["runtimes"]["nvidia"]
    finally:
        fleet.sh(broken, f"cat > {DAEMON_JSON} <<'EOF'\n{good_content}\nEOF")
    assert changed_operations(fleet.deploy().output) == 0


def test_substituted_key_is_rejected_by_fingerprint(fleet):
    node = fleet.nodes[0]
    source = fleet.sh(node, "cat /etc/apt/sources.list.d/nvidia-container-toolkit.sources")
    base = re.search(r"URIs: (\S+?)/stable/deb/", source).group(1)
    keyrings = {n.name: fleet.sha(n, KEYRING) for n in fleet.nodes}
    result = fleet.deploy("--data", f"nvidia_key_url={base}{aptrepo.SUBSTITUTED_KEY_PATH}")
    assert result.returncode != 0
    assert result.output.count("REJECTED: key fingerprint") == len(fleet.nodes), result.output[-4000:]
    assert {n.name: fleet.sha(n, KEYRING) for n in fleet.nodes} == keyrings


def test_pin_change_moves_all_four_packages_together(fleet):
    node = fleet.nodes[0]
    pinned = pinned_version(fleet)
    other = next(version for version in aptrepo.VERSIONS if version != pinned)
    before = fleet.started(node)
    try:
        result = fleet.deploy("--limit", node.name, "--data", f"nvidia_toolkit_version={other}")
        assert result.returncode == 0, result.output[-4000:]
        assert fleet.versions(node) == {name: f"{other} hi" for name in aptrepo.PACKAGES}
        assert fleet.sh(node, "nvidia-ctk --version").startswith(f"NVIDIA Container Toolkit CLI version {other}")
        assert fleet.started(node) == before  # an upgrade needs no dockerd restart
    finally:
        back = fleet.deploy("--limit", node.name)
    assert back.returncode == 0, back.output[-4000:]
    assert fleet.versions(node) == {name: f"{pinned} hi" for name in aptrepo.PACKAGES}


def test_stale_nvidia_list_is_removed_with_a_message(fleet):
    node = fleet.nodes[0]
    source = fleet.sh(node, "cat /etc/apt/sources.list.d/nvidia-container-toolkit.sources")
    uri = re.search(r"URIs: (\S+)", source).group(1)
    fleet.sh(node, f"echo 'deb {uri} /' > /etc/apt/sources.list.d/nvidia-docker.list")
    result = fleet.deploy("--limit", node.name)
    assert result.returncode == 0, result.output[-4000:]
    assert "removing stale NVIDIA apt source /etc/apt/sources.list.d/nvidia-docker.list" in result.output
    assert "nvidia-docker.list" not in fleet.sh(node, "ls /etc/apt/sources.list.d/")
    assert changed_operations(fleet.deploy("--limit", node.name).output) == 0


def test_a_change_that_needs_a_restart_rolls_in_batches(fleet):
    """features.cdi is not re-read on reload: every node restarts, at most docker_restart_batch_size (2 in the
    sandbox group data) at a time - a later batch starts only once the earlier one is back up."""
    originals = {node.name: fleet.sh(node, f"cat {DAEMON_JSON}") for node in fleet.nodes}
    try:
        result = fleet.deploy("--data", "nvidia_cdi=true")
        assert result.returncode == 0, result.output[-4000:]
        assert "features.cdi set to true (needs a dockerd restart)" in result.output
        timings = []
        for node in fleet.nodes:
            assert json.loads(fleet.sh(node, f"cat {DAEMON_JSON}"))["features"]["cdi"] is True
            shown = dict(line.split("=", 1) for line in fleet.sh(
                node, "systemctl show docker -p ExecMainStartTimestampMonotonic -p ActiveEnterTimestampMonotonic"
            ).split())
            timings.append((int(shown["ExecMainStartTimestampMonotonic"]),
                            int(shown["ActiveEnterTimestampMonotonic"])))
        timings.sort()
        batch = 2
        for index in range(batch, len(timings)):
            started = timings[index][0]
            earlier_batch = timings[(index // batch - 1) * batch:(index // batch) * batch]
            assert all(started >= up for _, up in earlier_batch), timings
    finally:
        for node in fleet.nodes:
            fleet.sh(node, f"cat > {DAEMON_JSON} <<'EOF'\n{originals[node.name]}\nEOF\n"
                         "systemctl reset-failed docker; systemctl restart docker")
    assert changed_operations(fleet.deploy().output) == 0
