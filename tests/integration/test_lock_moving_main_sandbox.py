"""The lock against a moving `main`: the hub moves `main` after `lpfleet lock`, runners can reach the hub.

A warm runner gets HF_HUB_OFFLINE=1 from the rendered aiModels.json (go-livepeer 176aa41 ai/worker/docker.go:400-407
turns optimization flags into its environment) and serves the locked commit. A runner without it (go-livepeer
starts borrowed cold runners with no flags, docker.go:240-241) asks the hub first like diffusers 0.31.0 /
huggingface_hub 0.23.2 (_snapshot_download.py:258-262): refs/main moves to the hub's commit, which it downloads;
verify then reports "runner fetched unpinned weights", and the weights step with weights_prune puts it right.
The runners are the ai-runner stand-in's own code, run on the node (which reaches the hub by name).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lpfleet.lock import load
from lpfleet.sandbox.hub import HubControl
from lpfleet.sandbox.state import state_dir

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
STANDIN = ROOT / "lpfleet" / "sandbox" / "images" / "livepeer-standin" / "lpstandin"
MODELS_DIR = "/root/.lpData/models"
MODEL = "ByteDance/SDXL-Lightning"  # warm text-to-image on the consumer nodes
REPO = f"{MODELS_DIR}/models--ByteDance--SDXL-Lightning"


def run(args, env, timeout=600):
    return subprocess.run([str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def weights_step(sandbox, node, *data):
    args = [VENV_BIN / "pyinfra", "-y", sandbox.inventory, "tests/integration/deploy_weights.py",
            "--limit", node.name]
    for item in data:
        args += ["--data", item]
    result = run(args, sandbox.env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def runner_on_node(sandbox, node, hub_url: str, flags: dict[str, str]) -> str:
    """The stand-in runner's code as go-livepeer would start it for MODEL (PIPELINE, MODEL_ID + the flags), on the
    node, until it serves; its log."""
    env = " ".join(f"{k}={v}" for k, v in {"PYTHONPATH": "/opt/lpstandin-test", "PIPELINE": "text-to-image",
                                           "MODEL_ID": MODEL, "HUGGINGFACE_HUB_CACHE": MODELS_DIR,
                                           "HF_ENDPOINT": hub_url, "LPSTANDIN_LOAD_S": "0", "PORT": "0",
                                           **flags}.items())
    rc, out = sandbox.exec(node, f"env {env} timeout 20 python3 -m lpstandin.airunner 2>&1; true")
    assert "Uvicorn running on" in out, out
    return out


def commits(sandbox, node) -> tuple[str, list[str]]:
    rc, ref = sandbox.exec(node, f"cat {REPO}/refs/main")
    rc2, snaps = sandbox.exec(node, f"ls {REPO}/snapshots")
    return ref.strip(), sorted(snaps.split())


def verify_weights(sandbox, node) -> dict:
    report = ROOT / ".sandbox" / f"verify-lock-{node.name}.json"
    try:
        run([VENV_BIN / "lpfleet", "verify", sandbox.inventory, "--json", report], sandbox.env)
        doc = json.loads(report.read_text())
    finally:
        report.unlink(missing_ok=True)
    checks = {c["check"]: c for h in doc["hosts"] if h["host"] == node.name for c in h["checks"]}
    return checks[f"weights {MODEL}"]


@pytest.fixture
def node(sandbox):
    hub = HubControl(sandbox.hub_url)
    hub.reset()
    locked = run([VENV_BIN / "lpfleet", "lock", sandbox.inventory], sandbox.env)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    node = next(n for n in sandbox.nodes if n.gpu_class == "consumer")
    sandbox.exec(node, "rm -rf /opt/lpstandin-test && mkdir -p /opt/lpstandin-test")
    subprocess.run(["docker", "cp", str(STANDIN), f"{node.container}:/opt/lpstandin-test/"], check=True)
    weights_step(sandbox, node)
    yield node
    hub.reset()
    run([VENV_BIN / "lpfleet", "lock", sandbox.inventory], sandbox.env)
    sandbox.exec(node, "rm -rf /opt/lpstandin-test")
    weights_step(sandbox, node, "weights_prune=true")


def test_runner_serves_the_locked_commit_or_verify_reports_the_drift(sandbox, node):
    lock = load((state_dir(sandbox.name) / "models.lock").read_text())
    locked = next(m.commit for m in lock.models if m.model_id == MODEL)
    assert commits(sandbox, node) == (locked, [locked])
    moved = HubControl(sandbox.hub_url).bump(MODEL)  # main moves on the hub after the lock
    assert moved != locked

    # what lpfleet renders for the warm entry: HF_HUB_OFFLINE=1 among its optimization flags
    rendered = run([VENV_BIN / "lpfleet", "render", sandbox.inventory, node.name], sandbox.env)
    entry = next(e for e in json.loads(rendered.stdout) if e["model_id"] == MODEL)
    assert entry["warm"] and entry["optimization_flags"]["HF_HUB_OFFLINE"] == "1"

    warm = runner_on_node(sandbox, node, sandbox.hub_node_url, entry["optimization_flags"])
    assert f"/snapshots/{locked}" in warm and "offline mode is enabled" in warm
    assert commits(sandbox, node) == (locked, [locked])  # the hub was reachable and nothing moved
    assert verify_weights(sandbox, node)["state"] == "ok"

    cold = runner_on_node(sandbox, node, sandbox.hub_node_url, {})  # no flags: online first
    assert f"/snapshots/{moved}" in cold
    assert commits(sandbox, node) == (moved, sorted([locked, moved]))
    check = verify_weights(sandbox, node)
    assert check["state"] == "fail" and check["detail"].startswith("runner fetched unpinned weights")
    assert [c["cause"] for c in check["causes"]] == ["unpinned-weights"]

    # the fix the cause names: the weights step puts refs/main back; weights_prune removes the foreign commit
    fixed = weights_step(sandbox, node, "weights_prune=true")
    said = [line for line in (fixed.stdout + fixed.stderr).splitlines() if "weights prune:" in line]
    assert any("models--ByteDance--SDXL-Lightning: 1 snapshot" in line for line in said), said
    print("\n".join(said))  # the bytes freed (bench-style record in the test output)
    assert commits(sandbox, node) == (locked, [locked])
    assert verify_weights(sandbox, node)["state"] == "ok"
    again = weights_step(sandbox, node, "weights_prune=true")
    assert not [line for line in (again.stdout + again.stderr).splitlines() if "weights prune: models--" in line]
