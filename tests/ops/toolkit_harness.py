"""Run the docker_engine / nvidia_toolkit tasks through pyinfra's API against `@fake` hosts.

A `FakeNode` describes a node's state; `fact_lines` renders it exactly as the ContainerHostFacts shell script
prints it, the fake connector answers the fact with those lines, and every command and upload the deploy
makes is recorded per host, so tests assert on what would really run.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field

from pyinfra import host
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops
from pyinfra.connectors.fake import FakeConnector

from lpfleet.fleet import plan_for_spec
from lpfleet.spec import DockerSpec, NodeSpec, ToolkitSpec

# The sandbox-like key and repo used by these tests (keys from tests/unit/test_openpgp.py).
from tests.unit.test_openpgp import ED_ASC, ED_FPR, RSA_ASC, RSA_FPR  # noqa: F401

KEY_URL = "http://repo.test:8080/gpgkey"
REPO_URL = "http://repo.test:8080/stable/deb/$(ARCH)"
TOOLKIT_PACKAGES = ("nvidia-container-toolkit", "nvidia-container-toolkit-base", "libnvidia-container-tools",
                    "libnvidia-container1")


def spec_for(name: str, version: str = "1.19.0-1", fingerprint: str = RSA_FPR, **docker) -> NodeSpec:
    return NodeSpec(
        host=name,
        groups=("test",),
        models=(),
        docker=DockerSpec(**{"install": "docker.io", **docker}),
        toolkit=ToolkitSpec(version=version, repo_url=REPO_URL, key_url=KEY_URL, key_fingerprint=fingerprint),
    )


@dataclass
class FakeNode:
    os_id: str = "debian"
    codename: str = "bookworm"
    arch: str = "amd64"
    distro: str = "debian"
    packages: dict[str, tuple[str, str]] = field(default_factory=lambda: {"curl": ("7.88", "ii "),
                                                                           "ca-certificates": ("2023", "ii ")})
    unit: dict[str, str] = field(default_factory=lambda: {"LoadState": "not-found", "ActiveState": "inactive",
                                                          "UnitFileState": ""})
    dockerd_args: tuple[str, ...] = ()
    daemon_json_path: str = "/etc/docker/daemon.json"
    files: dict[str, bytes | None] = field(default_factory=dict)
    fetched: dict[str, bytes | str | None] = field(default_factory=lambda: {"nvidia-key": RSA_ASC.encode()})
    stale: tuple[str, ...] = ()
    hook: str = ""
    docker_info: tuple[str, list[str]] | None = None
    gpu_devices: int = 0
    smi: str = "/usr/bin/nvidia-smi"


def converged_node(version: str = "1.19.0-1", daemon_json: dict | None = None, **overrides) -> FakeNode:
    """A node on which both tasks have already run with `spec_for(...)`."""
    from lpfleet.daemon_json import render
    from lpfleet.openpgp import dearmor

    config = daemon_json or {"live-restore": True,
                             "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
    packages = {"curl": ("7.88", "ii "), "ca-certificates": ("2023", "ii "), "docker.io": ("20.10.24", "ii "),
                "containerd": ("1.6.20", "ii "), "runc": ("1.1.5", "ii ")}
    packages.update({name: (version, "hi ") for name in TOOLKIT_PACKAGES})
    node = FakeNode(
        packages=packages,
        unit={"LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled", "ExecMainPID": "42",
              "ExecMainStartTimestampMonotonic": "123456"},
        dockerd_args=("/usr/sbin/dockerd", "-H", "fd://"),
        files={
            "daemon.json": render(config).encode(),
            "nvidia-keyring": dearmor(RSA_ASC.encode()),
            "nvidia-source": (
                f"Types: deb\nURIs: {REPO_URL}\nSuites: /\n"
                "Signed-By: /usr/share/keyrings/nvidia-container-toolkit-keyring.gpg\n"
            ).encode(),
        },
        hook="/usr/bin/nvidia-container-runtime-hook",
        docker_info=("runc", ["io.containerd.runc.v2", "nvidia", "runc"]),
    )
    for key, value in overrides.items():
        setattr(node, key, value)
    return node


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def fact_lines(node: FakeNode) -> list[str]:
    """The node as the ContainerHostFacts script prints it."""
    lines = [f"@@os {node.os_id} {node.codename} {node.arch} {node.distro}"]
    lines += [f"@@pkg {name} {version} {status}" for name, (version, status) in node.packages.items()]
    lines += [f"@@unit {key}={value}" for key, value in node.unit.items()]
    lines.append(f"@@argv {_b64(chr(10).join(node.dockerd_args).encode())}")
    lines.append(f"@@daemon-json-path {node.daemon_json_path}")
    for label in ("daemon.json", "nvidia-keyring", "nvidia-source", "docker-keyring", "docker-source",
                  "restart-marker"):
        data = node.files.get(label)
        lines.append(f"@@file {label} 0" if data is None else f"@@file {label} 1 {_b64(data)}")
    for label in ("nvidia-key", "docker-key"):
        fetched = node.fetched.get(label)
        if fetched is None:
            lines.append(f"@@fetch {label} skip")
        elif isinstance(fetched, str):  # curl error text
            lines.append(f"@@fetch {label} 22 {_b64(fetched.encode())}")
        else:
            lines.append(f"@@fetch {label} 0 {_b64(fetched)}")
    lines += [f"@@stale {path}" for path in node.stale]
    lines.append(f"@@hook {node.hook}")
    if node.docker_info is not None:
        default, runtimes = node.docker_info
        info = {"DefaultRuntime": default, "Runtimes": {name: {"path": name} for name in runtimes}}
        lines.append(f"@@docker-info {_b64(json.dumps(info).encode())}")
    lines.append(f"@@gpu-devices {node.gpu_devices}")
    lines.append(f"@@nvidia-smi {node.smi}")
    return lines


@dataclass
class Run:
    state: State
    commands: dict[str, list[str]]
    uploads: dict[str, dict[str, bytes]]
    failed: set[str]

    def changes(self, name: str) -> int:
        host = self.state.inventory.get_host(f"@fake/{name}")
        return self.state.get_results_for_host(host).ops - self._no_change(host)

    def _no_change(self, host) -> int:
        count = 0
        for op_data in self.state.ops[host].values():
            meta = op_data.operation_meta
            if meta.is_complete() and meta.did_succeed() and not meta.did_change():
                count += 1
        return count

    def ran(self, name: str, needle: str) -> list[str]:
        return [command for command in self.commands[name] if needle in command]

    def changed_operations(self, name: str) -> list[str]:
        host = self.state.inventory.get_host(f"@fake/{name}")
        names = []
        for op_hash, op_data in self.state.ops[host].items():
            meta = op_data.operation_meta
            if meta.is_complete() and meta.did_change():
                names.append(", ".join(sorted(self.state.get_op_meta(op_hash).names)))
        return names


def run_tasks(nodes: dict[str, tuple[NodeSpec, FakeNode]], tasks, responses: dict[str, dict] | None = None,
              monkeypatch=None) -> Run:
    """Prepare and run `tasks` (deploy functions taking a NodeSpec) on fake hosts, recording what they do."""
    hosts = []
    for name, (_, node) in nodes.items():
        fake_responses = dict((responses or {}).get(name, {}))
        fake_responses["lpfleet-container-host-state"] = fact_lines(node)
        # lpfleet.operations.apt.fail(): the fake connector runs nothing, so say that this one fails
        fake_responses[re.compile(r"1>&2; exit 1$")] = {"success": False}
        # the group data key the fleet-wide restart batch size is read from (each host's lpfleet.fleet.node_plan)
        data = {"docker_restart_batch_size": nodes[name][0].docker.restart_batch_size}
        hosts.append((f"@fake/{name}", {**data, "fake_responses": fake_responses, "fake_delay": 0,
                                        "fake_delay_jitter": 0}))
    inventory = Inventory((hosts, {}))
    state = State(inventory, Config())
    uploads: dict[str, dict[str, bytes]] = {name: {} for name in nodes}

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        data = filename_or_io.read() if hasattr(filename_or_io, "read") else open(filename_or_io, "rb").read()
        uploads[self.host.name.removeprefix("@fake/")][remote_filename] = data
        return True

    monkeypatch.setattr(FakeConnector, "put_file", put_file)
    connect_all(state)
    by_name = {f"@fake/{name}": plan_for_spec(spec, state) for name, (spec, _) in nodes.items()}

    def per_host(task):
        task(by_name[host.name])

    for task in tasks:
        add_deploy(state, per_host, task)
    try:
        run_ops(state)
    except PyinfraError as exc:  # every host failed
        if "No hosts remaining" not in str(exc):
            raise
    commands = {h.name.removeprefix("@fake/"): list(h.connector.executed_commands) for h in inventory}
    failed = {h.name.removeprefix("@fake/") for h in inventory if h in state.failed_hosts}
    return Run(state, commands, uploads, failed)
