"""The whole deploy.py on a converged sandbox fleet: one round-trip per host, and every step still repairs drift.

deploy.py reads every step's facts of a host in one batched command (lpfleet.facts.batch). These tests prove the
batch costs nothing in checking: a converged fleet's run is one command per host and 0 changes; drift put on the
nodes behind lpfleet's back (a step's file rewritten or removed, the worker container removed, a weights file
gone) is found and repaired by the next run, and the run after that is one command per host again.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from lpfleet.host_layout import NVIDIA_SOURCE

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WORKER = "livepeer_ai_worker"
AI_MODELS = "/root/.lpData/aiModels.json"
MODELS_DIR = "/root/.lpData/models"


def deploy(sandbox, *extra: str) -> subprocess.CompletedProcess:
    result = subprocess.run([str(VENV_BIN / "pyinfra"), "-y", *extra, sandbox.inventory, "deploy.py"], cwd=ROOT,
                            env=sandbox.env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return result


def changes(output: str) -> int:
    match = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", output)
    assert match, output[-3000:]
    return 0 if match.group(2) == "-" else int(match.group(2))


def commands_per_host(output: str) -> Counter:
    """Commands pyinfra ran on each host (its --debug log: "Running command on HOST:")."""
    return Counter(re.findall(r"Running command on (\S+?):", output))


def sh(sandbox, node, command: str) -> str:
    rc, out = sandbox.exec(node, command)
    assert rc == 0, f"{command!r} on {node.name} exited {rc}: {out}"
    return out


@pytest.fixture(scope="module")
def converged(sandbox):
    locked = sandbox.lpfleet("lock", sandbox.inventory)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    deploy(sandbox)
    yield sandbox
    deploy(sandbox)


def test_a_converged_fleet_costs_one_command_per_host(converged):
    result = deploy(converged, "--debug")
    output = result.stdout + result.stderr
    assert changes(output) == 0
    assert commands_per_host(output) == {node.name: 1 for node in converged.nodes}


def test_drift_in_every_step_is_found_and_repaired_by_the_next_run(converged):
    first, second, third = converged.nodes[:3]
    aimodels_before = sh(converged, first, f"sha256sum {AI_MODELS}").split()[0]
    sh(converged, first, f"echo '[]' > {AI_MODELS} && rm -f {NVIDIA_SOURCE}")
    sh(converged, second, f"docker rm -f {WORKER} >/dev/null")
    blob = sh(converged, third, f"find {MODELS_DIR} -path '*/snapshots/*' \\( -type l -o -type f \\) | sort | head -1")
    assert blob.strip(), "no weights on the third node"
    sh(converged, third, f"rm -f '{blob.strip()}'")

    result = deploy(converged, "--debug")
    output = result.stdout + result.stderr
    assert changes(output) >= 4, output[-4000:]
    assert sh(converged, first, f"sha256sum {AI_MODELS}").split()[0] == aimodels_before
    assert sh(converged, first, f"test -f {NVIDIA_SOURCE} && echo present").strip() == "present"
    assert sh(converged, second, f"docker inspect -f '{{{{.State.Running}}}}' {WORKER}").strip() == "true"
    assert sh(converged, third, f"test -e '{blob.strip()}' && echo present").strip() == "present"

    again = deploy(converged, "--debug")
    output = again.stdout + again.stderr
    assert changes(output) == 0
    assert commands_per_host(output) == {node.name: 1 for node in converged.nodes}
