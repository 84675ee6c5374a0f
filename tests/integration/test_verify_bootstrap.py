"""One-shot bootstrap: `lpfleet bootstrap root@127.0.0.1 --port P --group sandbox_consumer` takes a fresh sandbox
node (Debian, SSH, no Docker) to a verified serving node.

It runs on a one-node sandbox of its own (LPFLEET_SANDBOX=<the test sandbox>-boot) so the shared test fleet
keeps its size; the node is never deployed before the bootstrap, and the sandbox is removed afterwards unless
LPFLEET_KEEP_SANDBOX=1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def fresh_node(sandbox_env):
    from lpfleet.sandbox import fleet
    from lpfleet.sandbox.engine import daemon_problem

    problem = daemon_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    name = sandbox_env["LPFLEET_SANDBOX"] + "-boot"
    env = {**sandbox_env, "LPFLEET_SANDBOX": name}
    fleet.down(name=name, log=lambda line: None)  # a kept one from an earlier run is not fresh any more
    state = fleet.up(nodes=1, name=name, log=lambda line: print(f"sandbox {name}: {line}", flush=True))
    try:
        yield state, env
    finally:
        if os.environ.get("LPFLEET_KEEP_SANDBOX") != "1":
            fleet.down(name=name, log=lambda line: print(line, flush=True))


def test_bootstrap_takes_a_bare_node_to_a_verified_serving_node(fresh_node, tmp_path):
    state, env = fresh_node
    node = state.nodes[0]
    rc = subprocess.run(
        ["docker", "exec", node.container, "sh", "-c", "command -v docker || echo bare"],
        capture_output=True,
        text=True,
    )
    assert rc.stdout.strip() == "bare", "the node must start without Docker"
    lock = subprocess.run(
        [VENV_BIN / "lpfleet", "lock", "inventories/sandbox.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lock.returncode == 0, lock.stdout + lock.stderr
    report = tmp_path / "bootstrap.json"
    result = subprocess.run(
        [
            VENV_BIN / "lpfleet",
            "bootstrap",
            f"root@127.0.0.1:{node.ssh_port}",
            "--ssh-key",
            state.ssh_key,
            "--insecure-host-key",
            "--group",
            f"sandbox_{node.gpu_class}",
            "--inventory",
            "inventories/sandbox.py",
            "--name",
            "fresh-box",
            "--json",
            report,
            "--wait",
            "240",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-8000:]
    assert "verify: 1 host: 1 healthy" in result.stdout
    doc = json.loads(report.read_text())
    (host,) = doc["hosts"]
    assert host["host"] == "fresh-box" and host["status"] == "healthy"
    kinds = {c["check"].split(" ")[0] for c in host["checks"]}
    assert {"gpus", "docker", "nvidia", "worker", "runner", "weights"} <= kinds, kinds
    assert not list((ROOT / "inventories").glob("_bootstrap_*.py")), "the one-host inventory was left behind"
    # a second bootstrap of the same box changes nothing
    again = subprocess.run(
        [
            VENV_BIN / "lpfleet",
            "bootstrap",
            f"root@127.0.0.1:{node.ssh_port}",
            "--ssh-key",
            state.ssh_key,
            "--insecure-host-key",
            "--group",
            f"sandbox_{node.gpu_class}",
            "--inventory",
            "inventories/sandbox.py",
            "--name",
            "fresh-box",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-4000:]
    match = re.search(r"Grand total\s+(\d+)\s+(\S+)", again.stdout + again.stderr)
    assert match and match.group(2) == "-", "a second bootstrap changed something:\n" + again.stderr[-4000:]
