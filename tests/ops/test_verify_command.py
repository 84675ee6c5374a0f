"""`lpfleet verify` end to end without a sandbox: the real pyinfra CLI on verify.py against `@local` (this
machine: no worker, no weights, no GPU) and an unreachable host. Exit codes, table, JSON and JUnit."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
MODELS = [{"pipeline": "text-to-image", "model_id": "lpfleet-sandbox/tiny-model", "warm": True}]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_inventory(tmp: Path, local: bool, ghost: bool) -> Path:
    hosts = []
    if local:
        hosts.append(
            (
                "@local",
                {
                    "ai_models": MODELS,
                    "livepeer_network": "offchain",
                    "ai_models_path": str(tmp / "absent.json"),
                    "ai_models_dir": str(tmp / "models"),
                },
            )
        )
    if ghost:
        hosts.append(
            (
                "ghost",
                {
                    "ssh_hostname": "127.0.0.1",
                    "ssh_port": closed_port(),
                    "ai_models": MODELS,
                    "livepeer_network": "offchain",
                },
            )
        )
    path = tmp / "inventory.py"
    path.write_text(f"nodes = {hosts!r}\n")
    return path


def lpfleet_verify(tmp: Path, inventory: Path):
    return subprocess.run(
        [VENV_BIN / "lpfleet", "verify", inventory, "--json", tmp / "r.json", "--junit", tmp / "r.xml"],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_problems_found_exit_1_with_table_json_and_junit(tmp_path):
    result = lpfleet_verify(tmp_path, write_inventory(tmp_path, local=True, ghost=True))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["HOST", "CHECK", "STATE", "DETAIL"]
    assert any(
        line.startswith("@local") and "worker livepeer_ai_worker" in line and "FAIL" in line for line in lines
    )
    assert any(line.startswith("ghost") and "could not connect" in line for line in lines)
    assert lines[-1].startswith(
        "verify: 2 hosts: 0 healthy; 1 with problems (@local); 1 could not be checked (ghost)"
    )
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["exit_code"] == 1 and doc["status"] == "problems"
    checks = {c["check"]: c for c in doc["hosts"][0]["checks"]}
    assert checks[f"weights {MODELS[0]['model_id']}"]["causes"][0]["cause"] == "weights-missing"
    assert checks["docker"]["state"] == "ok"  # this machine's Docker Engine answered over its socket
    suites = ET.fromstring((tmp_path / "r.xml").read_text()).findall("testsuite")
    assert [s.attrib["name"] for s in suites] == ["@local", "ghost"]
    assert suites[1].find("testcase/error") is not None


def test_nothing_checkable_exit_2(tmp_path):
    result = lpfleet_verify(tmp_path, write_inventory(tmp_path, local=False, ghost=True))
    assert result.returncode == 2, result.stdout + result.stderr
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "unchecked"


def test_pyinfra_stopping_early_exit_2_with_its_output(tmp_path):
    bad = tmp_path / "inventory.py"
    bad.write_text("raise RuntimeError('broken inventory')\n")
    result = lpfleet_verify(tmp_path, bad)
    assert result.returncode == 2
    # the inventory is loaded before pyinfra runs: its error is named at once
    assert "broken inventory" in result.stderr and "cannot load the inventory" in result.stderr
