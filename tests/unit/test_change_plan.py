"""`lpfleet plan`'s model (lpfleet.change_plan): pyinfra's dry-run plan joined with the operations' notes."""

from __future__ import annotations

import json

from lpfleet.change_plan import build_plan, summary_line, to_json, to_markdown, to_text

PLAN = [
    {
        "op_hash": "h-apt",
        "name": "NVIDIA Container Toolkit | Toolkit packages",
        "hosts_with_change": ["n1", "n2"],
        "hosts_with_conditional_change": [],
    },
    {
        "op_hash": "h-models",
        "name": "Models config | aiModels.json",
        "hosts_with_change": ["n1"],
        "hosts_with_conditional_change": [],
    },
    {
        "op_hash": "h-restart",
        "name": "Docker | Restart dockerd",
        "hosts_with_change": [],
        "hosts_with_conditional_change": ["n2"],
    },
    {
        "op_hash": "h-worker",
        "name": "AI worker | Worker container",
        "hosts_with_change": ["n1"],
        "hosts_with_conditional_change": [],
    },
]
NOTES = [
    {
        "host": "n1",
        "op_hash": "h-apt",
        "deploy": "NVIDIA Container Toolkit",
        "text": "nvidia-container-toolkit 1.17.8-1 -> 1.18.0-1",
        "lines": [],
    },
    {
        "host": "n2",
        "op_hash": "h-apt",
        "deploy": "NVIDIA Container Toolkit",
        "text": "nvidia-container-toolkit absent -> 1.18.0-1",
        "lines": [],
    },
    {
        "host": "n1",
        "op_hash": "h-models",
        "deploy": "Models config",
        "text": "modify /root/.lpData/aiModels.json (secrets masked)",
        "lines": [
            "@@ -3,1 +3,1 @@",
            '-    "price_per_unit": 1,',
            '+    "price_per_unit": 2,',
            ' "token": "***" |x',
        ],
    },
    {
        "host": "n1",
        "op_hash": "h-worker",
        "deploy": "AI worker",
        "text": "recreate the worker container livepeer_ai_worker (livepeer/go-livepeer:v1): "
        "its image, flags, "
        "aiModels.json or secret changed",
        "lines": [],
    },
]


def test_each_host_gets_its_changing_steps_with_their_words():
    plans = build_plan(["n1", "n2", "n3"], PLAN, NOTES)
    assert [p.host for p in plans] == ["n1", "n2", "n3"]
    n1, n2, n3 = plans
    assert [s.step for s in n1.steps] == [
        "NVIDIA Container Toolkit | Toolkit packages",
        "Models config | aiModels.json",
        "AI worker | Worker container",
    ]
    assert n1.steps[1].notes[0].lines[1] == '-    "price_per_unit": 1,'
    assert [(s.step, s.conditional, [n.text for n in s.notes]) for s in n2.steps] == [
        (
            "NVIDIA Container Toolkit | Toolkit packages",
            False,
            ["nvidia-container-toolkit absent -> 1.18.0-1"],
        ),
        ("Docker | Restart dockerd", True, []),
    ]
    assert not n3.changes
    assert summary_line(plans) == "plan: 2 of 3 hosts would change (5 operations); unchanged: n3"


def test_text_json_and_markdown():
    plans = build_plan(["n1", "n2", "n3"], PLAN, NOTES)
    text = to_text(plans)
    assert "n3: no changes" in text
    assert "  Docker | Restart dockerd (if an earlier step changes)\n      would run" in text
    assert '        +    "price_per_unit": 2,' in text
    doc = json.loads(to_json(plans, inventory="inventory.py"))
    assert doc["schema"] == "lpfleet.plan/1" and doc["hosts"][2] == {
        "host": "n3",
        "changes": False,
        "steps": [],
    }
    md = to_markdown(plans, inventory="inventory.py")
    assert md.startswith("### lpfleet plan for `inventory.py`\n\nplan: 2 of 3 hosts would change")
    assert "| n1 | AI worker \\| Worker container | recreate the worker container livepeer_ai_worker" in md
    assert "| n2 | Docker \\| Restart dockerd | would run (if an earlier step changes) |" in md
    assert "<details><summary>n1: modify /root/.lpData/aiModels.json (secrets masked)</summary>" in md
    assert "```diff\n@@ -3,1 +3,1 @@" in md


def test_no_changes_anywhere():
    plans = build_plan(["n1"], [{"op_hash": "x", "name": "y", "hosts_with_change": []}], [])
    assert to_text(plans) == "n1: no changes\n\nplan: no changes on any of 1 host\n"
    assert "| host |" not in to_markdown(plans)


def test_a_note_of_an_operation_that_changes_nothing_is_left_out():
    plans = build_plan(
        ["n1"],
        [],
        [
            {
                "host": "n1",
                "op_hash": "skip",
                "deploy": "Docker",
                "text": "GPU container check skipped: no /dev/nvidiaN",
            }
        ],
    )
    assert not plans[0].changes
