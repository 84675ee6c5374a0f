"""`lpfleet plan` on the sandbox: from pyinfra's own dry run, what a converge would change per host and step,
in words; a converged fleet plans no change, and planning changes nothing on any node.

A copy of inventories/ gets an edited consumer group (a new price on the shared warm model, a new cold model
to fetch, an external entry holding a token), as a pull request would change it.
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
TOKEN = "plan-test-byoc-token-4f1c9a"
TOKEN_ENV = "LPFLEET_PLAN_TEST_BYOC_TOKEN"  # group data reads secrets from the controller's environment
EDIT = f"""
from lpfleet.spec import env_secret

ai_models = [
    dict(e, price_per_unit=4768372) if e["pipeline"] == "text-to-image" else e for e in ai_models
] + [
    {{"pipeline": "upscale", "model_id": "lpfleet-sandbox/tiny-model"}},
    {{"pipeline": "llm", "model_id": "org/byoc-llm", "url": "http://byoc.lan:9000",
     "token": env_secret("{TOKEN_ENV}")}},
]
"""


def run(args, env, timeout=900):
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, env={**env, TOKEN_ENV: TOKEN}, capture_output=True, text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def fleet(sandbox):
    result = run([VENV_BIN / "pyinfra", "-y", sandbox.inventory, "deploy.py"], sandbox.env)
    assert result.returncode == 0, result.stdout[-6000:]
    return sandbox


def snapshot(sandbox) -> dict:
    """What planning must not change: each node's aiModels.json, worker container and models dir."""
    out = {}
    for node in sandbox.nodes:
        rc, text = sandbox.exec(
            node,
            "sha256sum /root/.lpData/aiModels.json; "
            "docker inspect -f '{{.Id}}' livepeer_ai_worker; ls /root/.lpData/models",
        )
        assert rc == 0, text
        out[node.name] = text
    return out


def test_a_converged_fleet_plans_no_change(fleet):
    result = run([VENV_BIN / "lpfleet", "plan", fleet.inventory, "--json"], fleet.env)
    assert result.returncode == 0, result.stderr[-4000:]
    doc = json.loads(result.stdout)
    assert doc["schema"] == "lpfleet.plan/1"
    assert [h["changes"] for h in doc["hosts"]] == [False] * len(fleet.nodes), result.stdout
    assert doc["summary"] == f"plan: no changes on any of {len(fleet.nodes)} hosts"


def test_a_change_is_planned_in_words_and_nothing_is_touched(fleet, tmp_path):
    target = tmp_path / "inventories"
    shutil.copytree(ROOT / "inventories", target, ignore=shutil.ignore_patterns("_*", "__pycache__"))
    with (target / "group_data" / "sandbox_consumer.py").open("a") as handle:
        handle.write(EDIT)
    inventory = target / "sandbox.py"
    locked = run([VENV_BIN / "lpfleet", "lock", inventory], fleet.env)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    for node in fleet.nodes:  # as if never fetched (an earlier test may have rolled it out)
        rc, out = fleet.exec(node, "rm -rf /root/.lpData/models/models--lpfleet-sandbox--tiny-model")
        assert rc == 0, out
    before = snapshot(fleet)

    result = run([VENV_BIN / "lpfleet", "plan", inventory, "--json"], fleet.env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert TOKEN not in result.stdout + result.stderr
    doc = json.loads(result.stdout)
    hosts = {h["host"]: h for h in doc["hosts"]}
    consumers = [n.name for n in fleet.nodes if n.gpu_class == "consumer"]
    others = [n.name for n in fleet.nodes if n.gpu_class != "consumer"]
    for name in others:
        assert not hosts[name]["changes"], hosts[name]
    lock_text = (ROOT / ".sandbox" / fleet.name / "models.lock").read_text()
    for name in consumers:
        notes = {s["step"]: s["notes"] for s in hosts[name]["steps"]}
        models_step = next(n for step, n in notes.items() if "aiModels.json" in step)
        assert models_step[0]["text"] == "modify /root/.lpData/aiModels.json (secrets masked)"
        diff = models_step[0]["lines"]
        added = {line.rstrip(",") for line in diff if line.startswith("+")}  # JSON commas vary with order
        assert '+    "price_per_unit": 4768372' in added, diff
        assert '+    "model_id": "lpfleet-sandbox/tiny-model"' in added, diff
        assert '+    "token": "***"' in added, diff
        fetch = next(n for step, n in notes.items() if step.startswith("Model weights") and n)
        assert (
            fetch[0]["text"].startswith("fetch ")
            and " bytes) of weights into /root/.lpData/models" in fetch[0]["text"]
        )
        planned_bytes = int(fetch[0]["text"].split("(")[1].split(" bytes")[0])
        assert planned_bytes > 0 and "lpfleet-sandbox/tiny-model" in fetch[0]["lines"][0]
        assert "lpfleet-sandbox/tiny-model" in lock_text
        worker = next(n for step, n in notes.items() if step.startswith("AI worker"))
        assert worker[0]["text"].startswith("recreate the worker container livepeer_ai_worker")
        assert "aiModels.json" in worker[0]["text"]

    markdown = run([VENV_BIN / "lpfleet", "plan", inventory, "--markdown"], fleet.env)
    assert markdown.returncode == 0 and TOKEN not in markdown.stdout
    assert markdown.stdout.startswith(f"### lpfleet plan for `{inventory}`")
    assert "```diff" in markdown.stdout and "| host | step | change |" in markdown.stdout
    print("\n" + markdown.stdout)

    assert snapshot(fleet) == before  # pyinfra's dry run changed nothing
