"""The rollout plan: batch sizes, the most careful settings across groups, stopping on a failed batch."""

from __future__ import annotations

import pytest

from lpfleet.rollout import Rollout, RolloutSettings, fleet_settings, plan_batches
from lpfleet.spec import RolloutSpec

HOSTS = [f"node-{i}" for i in range(1, 11)]


@pytest.mark.parametrize(
    "settings, sizes",
    [
        (RolloutSettings(), [10]),  # nothing set: one batch
        (RolloutSettings(batch_size=3), [3, 3, 3, 1]),
        (RolloutSettings(batch_percent=25), [3, 3, 3, 1]),  # 25% of 10 rounds up to 3
        (RolloutSettings(batch_percent=1), [1] * 10),  # never less than one host
        (RolloutSettings(batch_size=4, batch_percent=20), [2] * 5),  # both: the smaller
        (RolloutSettings(batch_size=50), [10]),
    ],
)
def test_batch_sizes(settings, sizes):
    batches = plan_batches(HOSTS, settings)
    assert [len(b) for b in batches] == sizes
    assert [h for b in batches for h in b] == HOSTS  # inventory order, every host once


def test_duplicates_and_empty():
    assert plan_batches(["a", "b", "a"], RolloutSettings(batch_size=1)) == [("a",), ("b",)]
    assert plan_batches([], RolloutSettings(batch_size=1)) == []


def test_fleet_settings_take_the_most_careful():
    settings = fleet_settings(
        [
            RolloutSpec(batch_size=5, fail_threshold=2),
            RolloutSpec(batch_size=2),
            RolloutSpec(batch_percent=30, fail_threshold=1),
        ]
    )
    assert settings == RolloutSettings(batch_size=2, batch_percent=30, fail_threshold=0)
    assert fleet_settings([]) == RolloutSettings()


def test_a_failed_batch_stops_the_rollout_and_names_what_was_not_touched():
    rollout = Rollout(
        plan_batches(HOSTS[:5], RolloutSettings(batch_size=2)),
        RolloutSettings(batch_size=2),
        unchanged=("node-9",),
    )
    assert rollout.describe_plan()[0].startswith("rollout plan: 5 hosts to converge in 3 batches of up to 2")
    assert rollout.next_batch() == (1, ("node-1", "node-2"))
    rollout.record(("node-1", "node-2"), {})
    assert rollout.next_batch() == (2, ("node-3", "node-4"))
    rollout.record(("node-3", "node-4"), {"node-4": "runner text-to-image...: restart loop"})
    assert rollout.stopped and rollout.next_batch() is None
    assert rollout.untouched == ["node-5"]
    assert rollout.status == "stopped"
    outcome = rollout.describe_outcome()
    assert outcome[0] == "batch 1/3 (node-1, node-2): verified healthy"
    assert outcome[1].startswith("batch 2/3 (node-3, node-4): 1 failed - node-4: runner")
    assert outcome[-1] == (
        "rollout STOPPED after batch 2/3: 1 failed host > threshold 0; not touched: node-5"
    )
    doc = rollout.to_dict()
    assert doc["status"] == "stopped" and doc["untouched"] == ["node-5"] and doc["unchanged"] == ["node-9"]
    assert [b["ran"] for b in doc["batches"]] == [True, True, False]


def test_failures_within_the_threshold_continue():
    settings = RolloutSettings(batch_size=2, fail_threshold=1)
    rollout = Rollout(plan_batches(HOSTS[:4], settings), settings)
    rollout.record(("node-1", "node-2"), {"node-2": "unreachable", "elsewhere": "ignored"})
    assert not rollout.stopped and rollout.done[0].failed == {"node-2": "unreachable"}
    rollout.record(("node-3", "node-4"), {})
    assert rollout.next_batch() is None and rollout.status == "completed with failures"
    assert rollout.describe_outcome()[-1] == "rollout completed with failures: 2/2 batches"


def test_nothing_to_roll_out():
    rollout = Rollout([], RolloutSettings(), unchanged=("a", "b"))
    assert rollout.describe_plan() == [
        "rollout plan: nothing to roll out (every host is converged)",
        "  no changes (left alone): a, b",
    ]
    assert rollout.next_batch() is None and rollout.status == "completed"
