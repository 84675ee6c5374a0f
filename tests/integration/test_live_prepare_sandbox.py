"""Live weights on the sandbox fleet: a node with a live streamdiffusion entry gets its engines prepared by one run
of the app's image with PREPARE_MODELS=1 (ai-runner v0.14.1 `runner/dl_checkpoints.sh:241-246`), lpfleet records
the image id, a second run does nothing, verify checks the folders and the record, and a wiped engines folder is
reported (`weights-missing`) and prepared again. Uses its own inventory (the sandbox group data has no live entry);
the module leaves node 0 with the prepared folders and the fleet deployed as the group data describes it."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MODELS_DIR = "/root/.lpData/models"
RECORD = f"{MODELS_DIR}/.lpfleet/live/streamdiffusion.json"
IMAGE = "livepeer/ai-runner:live-app-streamdiffusion"
LIVE = {"pipeline": "live-video-to-video", "model_id": "streamdiffusion", "price_per_unit": 1}


def run(args, env, timeout=900):
    return subprocess.run([str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def sh(sandbox, node, command: str) -> str:
    code, out = sandbox.exec(node, command)
    assert code == 0, out
    return out


def live_inventory(sandbox, node_name: str) -> Path:
    """The sandbox's inventory with a cold streamdiffusion entry added to one host's ai_models."""
    spec = sandbox.specs()[node_name]
    models = [e.to_json_dict() for e in spec.models] + [LIVE]
    path = ROOT / "inventories" / f"_live_{uuid.uuid4().hex[:8]}.py"
    path.write_text(
        "import importlib.util as _u\n"
        f"_s = _u.spec_from_file_location('_sandbox_inventory', {str(ROOT / 'inventories' / 'sandbox.py')!r})\n"
        "_m = _u.module_from_spec(_s)\n_s.loader.exec_module(_m)\n"
        f"_over = {{{node_name!r}: {{'ai_models': {models!r}}}}}\n"
        "def _with(hosts):\n"
        "    return [(n, {**d, **_over.get(n, {})}) for n, d in hosts]\n"
        "sandbox_consumer = _with(_m.sandbox_consumer)\n"
        "sandbox_datacenter = _with(_m.sandbox_datacenter)\n"
        "sandbox = sandbox_consumer + sandbox_datacenter\n"
    )
    return path


def verify_live(sandbox, inventory: Path) -> dict:
    report = ROOT / ".sandbox" / f"verify-{uuid.uuid4().hex[:8]}.json"
    report.parent.mkdir(exist_ok=True)
    try:
        run([VENV_BIN / "lpfleet", "verify", inventory, "--json", report], sandbox.env)
        doc = json.loads(report.read_text())
    finally:
        report.unlink(missing_ok=True)
    hosts = doc["hosts"] if isinstance(doc, dict) and "hosts" in doc else doc
    for host in hosts:
        for check in host.get("checks", []):
            if check.get("check") == "live weights streamdiffusion":
                return check
    raise AssertionError(f"no live weights check in {json.dumps(doc)[:2000]}")


@pytest.fixture(scope="module")
def live_node(sandbox):
    node = sandbox.nodes[0]
    inventory = live_inventory(sandbox, node.name)
    try:
        yield sandbox, node, inventory
    finally:
        inventory.unlink(missing_ok=True)
        restored = run([VENV_BIN / "pyinfra", "-y", sandbox.inventory, "deploy.py"], sandbox.env)
        assert restored.returncode == 0, restored.stdout[-4000:] + restored.stderr[-4000:]


def test_live_app_prepared_once_recorded_verified_and_repaired(live_node):
    sandbox, node, inventory = live_node
    sh(sandbox, node, f"rm -rf {MODELS_DIR}/StreamDiffusion--engines {MODELS_DIR}/.lpfleet/live")  # a kept sandbox
    first = run([VENV_BIN / "pyinfra", "-y", inventory, "deploy.py"], sandbox.env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
    engines = sh(sandbox, node, f"find {MODELS_DIR}/StreamDiffusion--engines -name '*.engine'")
    assert "depth_anything_v2_vits.engine" in engines
    record = json.loads(sh(sandbox, node, f"cat {RECORD}"))
    image_id = sh(sandbox, node, f"docker image inspect --format '{{{{.Id}}}}' {IMAGE}").strip()
    assert record["image"] == IMAGE and record["image_id"] == image_id
    stamp = sh(sandbox, node, f"stat -c %Y.%Z {RECORD}")

    again = run([VENV_BIN / "pyinfra", "-y", inventory, "tests/integration/deploy_weights.py"], sandbox.env)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    assert sh(sandbox, node, f"stat -c %Y.%Z {RECORD}") == stamp  # nothing ran
    assert "live weights: prepare streamdiffusion" not in again.stdout + again.stderr
    assert "No changes" in again.stdout + again.stderr

    assert verify_live(sandbox, inventory)["state"] == "ok"
    sh(sandbox, node, f"rm -rf {MODELS_DIR}/StreamDiffusion--engines/*")
    broken = verify_live(sandbox, inventory)
    assert broken["state"] == "fail" and broken["causes"][0]["cause"] == "weights-missing"

    repaired = run([VENV_BIN / "pyinfra", "-y", inventory, "tests/integration/deploy_weights.py"], sandbox.env)
    assert repaired.returncode == 0, repaired.stdout[-4000:] + repaired.stderr[-4000:]
    assert "depth_anything_v2_vits.engine" in sh(
        sandbox, node, f"find {MODELS_DIR}/StreamDiffusion--engines -name '*.engine'")
    assert verify_live(sandbox, inventory)["state"] == "ok"
