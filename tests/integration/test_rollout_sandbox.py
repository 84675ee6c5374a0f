"""`lpfleet rollout` on the sandbox: one group's model list changes and rolls out batch by batch, gated on
verification; a change that breaks the first batch stops the rollout and leaves the rest untouched.

Each test copies inventories/ (inventory, group data) to a temporary folder and edits the copy's
`sandbox_consumer` group file, as an operator edits group data; `rollout_batch_size = 1`. The fleet is put back
as the real group data describes it at the end of the module.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
OOM_MODEL = "lpfleet-sandbox/oom-model"


def run(args, env, timeout=900):
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def consumers_and_others(sandbox):
    consumer = [n for n in sandbox.nodes if n.gpu_class == "consumer"]
    others = [n for n in sandbox.nodes if n.gpu_class != "consumer"]
    assert len(consumer) >= 2 and others
    return consumer, others


def config_sha(sandbox, node) -> str:
    rc, out = sandbox.exec(node, "sha256sum /root/.lpData/aiModels.json")
    assert rc == 0, out
    return out.split()[0]


def copy_inventory(tmp: Path, consumer_edit: str) -> Path:
    """inventories/ copied to tmp, the consumer group's file edited, rollout settings added, the lock rebuilt."""
    target = tmp / "inventories"
    shutil.copytree(ROOT / "inventories", target, ignore=shutil.ignore_patterns("_*", "__pycache__"))
    group = target / "group_data" / "sandbox_consumer.py"
    assert group.exists(), "the sandbox's consumer group file (inventories/group_data/sandbox_consumer.py)"
    group.write_text(group.read_text() + "\n# --- edited by test_rollout_sandbox\n" + consumer_edit + "\n")
    with (target / "group_data" / "sandbox.py").open("a") as handle:
        handle.write("\nrollout_batch_size = 1\nrollout_fail_threshold = 0\n")
    return target / "sandbox.py"


@pytest.fixture(scope="module")
def fleet(sandbox):
    result = run([VENV_BIN / "pyinfra", "-y", sandbox.inventory, "deploy.py"], sandbox.env)
    assert result.returncode == 0, result.stdout[-6000:]
    code = run([VENV_BIN / "lpfleet", "verify", sandbox.inventory, "--wait", "240"], sandbox.env)
    assert code.returncode == 0, code.stdout
    yield sandbox
    for node in consumers_and_others(sandbox)[0]:  # a worker stuck warming a broken model: do not wait for it
        sandbox.exec(node, "docker rm -f livepeer_ai_worker")
    result = run([VENV_BIN / "pyinfra", "-y", sandbox.inventory, "deploy.py"], sandbox.env)
    assert result.returncode == 0, result.stdout[-4000:]
    code = run([VENV_BIN / "lpfleet", "verify", sandbox.inventory, "--wait", "240"], sandbox.env)
    assert code.returncode == 0, code.stdout


def lock(sandbox, inventory: Path) -> None:
    locked = run([VENV_BIN / "lpfleet", "lock", inventory], sandbox.env)
    assert locked.returncode == 0, locked.stdout + locked.stderr


def rollout(sandbox, inventory: Path, tmp: Path):
    lock(sandbox, inventory)
    report = tmp / "rollout.json"
    result = run([VENV_BIN / "lpfleet", "rollout", inventory, "--json", report, "--wait", "120"], sandbox.env)
    doc = json.loads(report.read_text()) if report.exists() else None
    return result, doc


def test_one_groups_model_list_rolls_out_batch_by_batch(fleet, tmp_path):
    consumers, others = consumers_and_others(fleet)
    before = {n.name: config_sha(fleet, n) for n in fleet.nodes}
    inventory = copy_inventory(
        tmp_path,
        'ai_models = list(ai_models) + [{"pipeline": "upscale", "model_id": "lpfleet-sandbox/tiny-model"}]',
    )
    lock(fleet, inventory)  # CI order: validate, lock, then the dry-run plan
    dry = run([VENV_BIN / "lpfleet", "rollout", inventory, "--dry"], fleet.env)
    assert dry.returncode == 0, dry.stderr
    assert (
        f"rollout plan: {len(consumers)} hosts to converge in {len(consumers)} batches of up to 1"
        in dry.stderr
    )
    for node in consumers:
        assert node.name in dry.stderr
    assert all(config_sha(fleet, n) == before[n.name] for n in fleet.nodes)  # --dry touched nothing

    result, doc = rollout(fleet, inventory, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    plan = doc["rollout"]
    assert plan["status"] == "completed"
    assert [b["hosts"] for b in plan["batches"]] == [[n.name] for n in consumers]
    assert all(b["ran"] and not b["failed"] for b in plan["batches"])
    assert plan["unchanged"] == [n.name for n in others]
    # batch 1 was deployed and verified before batch 2 was touched
    log = result.stderr
    first, second = consumers[0].name, consumers[1].name
    assert log.index(f"batch 1/{len(consumers)}: deploying {first}") < log.index(
        f"batch 1/{len(consumers)}: verifying {first}"
    )
    assert log.index(f"batch 1/{len(consumers)}: verifying {first}") < log.index(
        f"batch 2/{len(consumers)}: deploying {second}"
    )
    for node in consumers:
        assert config_sha(fleet, node) != before[node.name]
        rc, text = fleet.exec(node, "cat /root/.lpData/aiModels.json")
        assert "lpfleet-sandbox/tiny-model" in text
    for node in others:
        assert config_sha(fleet, node) == before[node.name]  # the other group was left alone


def test_a_batch_failing_verification_stops_the_rollout(fleet, tmp_path):
    consumers, others = consumers_and_others(fleet)
    before = {n.name: config_sha(fleet, n) for n in fleet.nodes}
    inventory = copy_inventory(
        tmp_path,
        "ai_models = [dict(e, warm=False) for e in ai_models if not e.get('url')]"
        f' + [{{"pipeline": "image-to-image", "model_id": "{OOM_MODEL}", '
        '"warm": True}]',
    )
    result, doc = rollout(fleet, inventory, tmp_path)
    assert result.returncode == 1, result.stderr[-6000:]
    plan = doc["rollout"]
    assert plan["status"] == "stopped"
    first, rest = consumers[0].name, [n.name for n in consumers[1:]]
    assert plan["batches"][0]["hosts"] == [first] and first in plan["batches"][0]["failed"]
    assert "cuda-oom" in json.dumps(doc["hosts"])  # the reason is in the report
    assert plan["untouched"] == rest
    assert all(not b["ran"] for b in plan["batches"][1:])
    assert f"rollout STOPPED after batch 1/{len(consumers)}" in result.stdout + result.stderr
    assert "not touched: " + ", ".join(rest) in result.stdout + result.stderr
    assert config_sha(fleet, consumers[0]) != before[first]
    for node in consumers[1:] + others:
        assert config_sha(fleet, node) == before[node.name], f"{node.name} was touched"
