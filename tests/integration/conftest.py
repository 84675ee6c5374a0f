"""The sandbox fleet for integration tests: one session-wide `sandbox`, brought up once.

The sandbox is named by LPFLEET_SANDBOX (default `lpfleet-test`, so a developer's own `lpfleet-sandbox` is left
alone); a running one of that name is reused. It is torn down at the end of the session unless
LPFLEET_KEEP_SANDBOX=1. Without a Docker daemon every integration test fails with a message saying how to
start one (scripts/host-deps; `make test` runs it) - never a silent skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
INVENTORY = ROOT / "inventories" / "sandbox.py"
TEST_SANDBOX = "lpfleet-test"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Node:
    name: str  # inventory host name
    container: str
    ssh_port: int
    index: int
    gpu_class: str


class Sandbox:
    """What tests need of the running sandbox: nodes, key, service URLs, and ways to act on nodes."""

    def __init__(self, state, env: dict[str, str]):
        self.state = state
        self.name = state.name
        self.env = env
        self.nodes = tuple(Node(n.name, n.container, n.ssh_port, n.index, n.gpu_class) for n in state.nodes)
        self.ssh_key = state.ssh_key
        self.hub = state.hub  # controller_url, node_url, token (None without a hub image)
        self.hub_url = state.hub.controller_url if state.hub else None
        self.hub_node_url = state.hub.node_url if state.hub else None
        self.apt = state.apt  # repo_url, key_url, substituted_key_url, key_fingerprint (None without one)
        self.inventory = str(INVENTORY)

    def node(self, name_or_index: str | int) -> Node:
        for node in self.nodes:
            if name_or_index in (node.name, node.index):
                return node
        raise KeyError(name_or_index)

    def exec(self, node: Node | str, command: str, timeout: float = 300) -> tuple[int, str]:
        """`sh -c COMMAND` in the node container (not over SSH): (exit status, stdout; stderr too on failure)."""
        container = node if isinstance(node, str) else node.container
        result = subprocess.run(["docker", "exec", container, "sh", "-c", command],
                                capture_output=True, text=True, timeout=timeout)
        out = result.stdout if result.returncode == 0 else result.stdout + result.stderr
        return result.returncode, out

    def pyinfra(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
        """`pyinfra -y inventories/sandbox.py ARGS` with the venv's pyinfra, from the project root."""
        run_env = {**self.env, **(env or {})}
        return subprocess.run([str(VENV_BIN / "pyinfra"), "-y", self.inventory, *args], cwd=ROOT, env=run_env,
                              capture_output=True, text=True, timeout=timeout)

    def lpfleet(self, *args: str, env: dict[str, str] | None = None, timeout: float = 600):
        run_env = {**self.env, **(env or {})}
        return subprocess.run([str(VENV_BIN / "lpfleet"), *args], cwd=ROOT, env=run_env,
                              capture_output=True, text=True, timeout=timeout)

    def specs(self, inventory: str | None = None) -> dict:
        """Every host's validated NodeSpec (secrets masked), built in a child process: pyinfra's inventory loader
        imports pyinfra_cli, which monkey-patches gevent into the process that imports it (not this one)."""
        from lpfleet.spec import NodeSpec

        result = subprocess.run([sys.executable, "-c", _DUMP_SPECS, inventory or self.inventory], cwd=ROOT,
                                env=self.env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        return {name: NodeSpec.model_validate(data) for name, data in json.loads(result.stdout).items()}


_DUMP_SPECS = """
import json, sys
from lpfleet.fleet import check_fleet
check = check_fleet(sys.argv[1])
if check.errors:
    sys.exit("\\n".join(map(str, check.errors)))
print(json.dumps({host: spec.model_dump(mode="json") for host, spec in check.specs.items()}))
"""


@pytest.fixture(scope="session")
def sandbox_env() -> dict[str, str]:
    """The environment naming the test sandbox, for every subprocess tests start."""
    return {**os.environ, "LPFLEET_SANDBOX": os.environ.get("LPFLEET_SANDBOX", TEST_SANDBOX)}


@pytest.fixture(scope="session")
def sandbox(sandbox_env):
    from lpfleet.sandbox import fleet
    from lpfleet.sandbox.engine import daemon_problem

    problem = daemon_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    name = sandbox_env["LPFLEET_SANDBOX"]
    previous = os.environ.get("LPFLEET_SANDBOX")
    os.environ["LPFLEET_SANDBOX"] = name  # inventory/group data loaded in this process read it too
    state = fleet.up(nodes=int(os.environ.get("LPFLEET_SANDBOX_NODES", "3")), name=name,
                     log=lambda line: print(f"sandbox: {line}", flush=True))
    try:
        ready = Sandbox(state, sandbox_env)
        locked = ready.lpfleet("lock", ready.inventory)  # what deploy.py's weights step needs, as `make demo` does
        assert locked.returncode == 0, locked.stdout + locked.stderr
        yield ready
    finally:
        if os.environ.get("LPFLEET_KEEP_SANDBOX") != "1":
            fleet.down(name=name, log=lambda line: print(line, flush=True))
        if previous is None:
            os.environ.pop("LPFLEET_SANDBOX", None)
        else:
            os.environ["LPFLEET_SANDBOX"] = previous
