"""The lock against a moving `main`: the hub moves `main` after `lpfleet lock`, runners can reach the hub.

A warm runner gets HF_HUB_OFFLINE=1 from the rendered aiModels.json (go-livepeer 176aa41
ai/worker/docker.go:400-407 turns optimization flags into its environment) and serves the locked commit. A
runner without it (go-livepeer starts borrowed cold runners with no flags, docker.go:240-241) asks the hub
first like diffusers 0.31.0 / huggingface_hub 0.23.2 (_snapshot_download.py:258-262): refs/main moves to the
hub's commit, which it downloads; verify then reports "runner fetched unpinned weights", and the weights step
with weights_prune puts it right.
The node is deployed whole (deploy.py); the two runners are started in its dockerd from the ai-runner image
the way go-livepeer starts them (models dir bound at /models, PIPELINE, MODEL_ID, the entry's flags as env),
and reach the hub over the network (HF_ENDPOINT = the hub's address, standing in for huggingface.co).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lpfleet.lock import load
from lpfleet.sandbox.hub import HubControl
from lpfleet.sandbox.state import state_dir

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RUNNER_IMAGE = "livepeer/ai-runner:latest"
MODELS_DIR = "/root/.lpData/models"
MODEL = "ByteDance/SDXL-Lightning"  # warm text-to-image on the consumer nodes
REPO = f"{MODELS_DIR}/models--ByteDance--SDXL-Lightning"


def run(args, env, timeout=600):
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def pyinfra(sandbox, node, deploy, *data):
    args = [VENV_BIN / "pyinfra", "-y", sandbox.inventory, deploy, "--limit", node.name]
    for item in data:
        args += ["--data", item]
    result = run(args, sandbox.env, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def weights_step(sandbox, node, *data):
    return pyinfra(sandbox, node, "tests/integration/deploy_weights.py", *data)


def hub_address(sandbox) -> str:
    """The hub as a runner container in a node's dockerd reaches it (by address: those containers use no
    sandbox DNS)."""
    inspect = subprocess.run(
        ["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", f"{sandbox.name}-hub"],
        capture_output=True,
        text=True,
        check=True,
    )
    return f"http://{json.loads(inspect.stdout)[f'{sandbox.name}-net']['IPAddress']}:8080"


def runner_in_node(sandbox, node, hub_url: str, flags: dict[str, str], name: str) -> str:
    """A runner container for MODEL as go-livepeer creates one (ai/worker/docker.go:400-407,441-447), until it
    serves or exits; its log."""
    env = {
        "PIPELINE": "text-to-image",
        "MODEL_ID": MODEL,
        "HF_ENDPOINT": hub_url,
        "LPSTANDIN_LOAD_S": "0",
        **flags,
    }
    env_args = " ".join(f"-e {k}={v}" for k, v in env.items())
    rc, out = sandbox.exec(
        node,
        f"docker rm -f {name} >/dev/null 2>&1; docker run -d --name {name} "
        f"-v {MODELS_DIR}:/models {env_args} {RUNNER_IMAGE}",
    )
    assert rc == 0, out
    log = ""
    for _ in range(60):
        rc, log = sandbox.exec(node, f"docker logs {name} 2>&1")
        if "Uvicorn running on" in log or "Traceback" in log:
            break
        time.sleep(0.5)
    sandbox.exec(node, f"docker rm -f {name}")
    assert "Uvicorn running on" in log, log
    return log


def commits(sandbox, node) -> tuple[str, list[str]]:
    _, ref = sandbox.exec(node, f"cat {REPO}/refs/main")
    _, snaps = sandbox.exec(node, f"ls {REPO}/snapshots")
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
    pyinfra(
        sandbox, node, "deploy.py"
    )  # a whole serving node: docker, toolkit, config, weights, worker, verify
    yield node
    hub.reset()
    run([VENV_BIN / "lpfleet", "lock", sandbox.inventory], sandbox.env)
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

    hub_url = hub_address(sandbox)
    warm = runner_in_node(sandbox, node, hub_url, entry["optimization_flags"], "lock-test-warm")
    assert f"/snapshots/{locked}" in warm and "offline mode is enabled" in warm
    assert commits(sandbox, node) == (locked, [locked])  # the hub was reachable and nothing moved
    assert verify_weights(sandbox, node)["state"] == "ok"

    cold = runner_in_node(sandbox, node, hub_url, {}, "lock-test-cold")  # no flags: online first
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
    assert not [
        line for line in (again.stdout + again.stderr).splitlines() if "weights prune: models--" in line
    ]
