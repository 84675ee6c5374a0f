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


# --- zero downtime: batches keep every shared warm model served ---------------------------------------------

import itertools  # noqa: E402

from lpfleet.rollout import Coverage  # noqa: E402

A, B, C = ("text-to-image", "org/a"), ("upscale", "org/b"), ("llm", "org/c")


def check_plan(hosts, serving, targets, settings):
    """Every invariant a zero-downtime plan must keep; returns the batches."""
    coverage = Coverage.of(serving, settings.max_unavailable)
    batches = plan_batches(targets, settings, coverage)
    assert sorted(h for b in batches for h in b) == sorted(targets)  # every target exactly once
    assert all(batches) and all(len(b) <= settings.batch_for(len(targets)) for b in batches)
    for batch in batches:
        for key, down in coverage.batch_down(batch).items():
            servers = coverage.servers[key]
            if len(servers) >= 2:
                assert down < len(servers), (batch, key)  # one serving host is always outside the batch
                if settings.max_unavailable:
                    assert down <= settings.max_unavailable
    sole = [i for i, b in enumerate(batches) if any(coverage.sole(h) for h in b)]
    plain = [i for i, b in enumerate(batches) if not any(coverage.sole(h) for h in b)]
    assert not sole or not plain or max(plain) < min(sole)  # hosts alone serving a model go last
    if not coverage.shared(targets):  # nothing to protect: the plain cut, sole servers after the others
        first = [h for h in targets if not coverage.sole(h)]
        last = [h for h in targets if coverage.sole(h)]
        cut = RolloutSettings(batch_size=settings.batch_for(len(targets)))
        assert batches == plan_batches(first, cut) + plan_batches(last, cut)
    return batches


def test_zero_downtime_batches_exhaustively_on_small_fleets():
    """Every way 4 hosts serve 2 models warm x every subset of them rolled x batch size x max_unavailable."""
    hosts = ["h1", "h2", "h3", "h4"]
    subsets = [(), (A,), (B,), (A, B)]
    plans = 0
    for served in itertools.product(subsets, repeat=len(hosts)):
        serving = dict(zip(hosts, served))
        for r in range(1, len(hosts) + 1):
            for targets in itertools.combinations(hosts, r):
                for size in (None, 1, 2, 3):
                    for unavailable in (None, 1, 2):
                        check_plan(hosts, serving, list(targets),
                                   RolloutSettings(batch_size=size, max_unavailable=unavailable))
                        plans += 1
    assert plans == 4**4 * 15 * 4 * 3


def test_three_models_on_five_hosts_randomly():
    import random

    rng = random.Random(7)
    hosts = [f"h{i}" for i in range(5)]
    for _ in range(2000):
        serving = {h: tuple(k for k in (A, B, C) if rng.random() < 0.5) for h in hosts}
        targets = [h for h in hosts if rng.random() < 0.8] or hosts[:1]
        check_plan(hosts, serving, targets, RolloutSettings(batch_size=rng.choice([None, 1, 2, 4]),
                                                            batch_percent=rng.choice([None, 50]),
                                                            max_unavailable=rng.choice([None, 1, 2, 3])))


def test_one_batch_covering_a_group_is_split_so_its_shared_model_stays_up():
    serving = {"c1": (A,), "c2": (A,), "d1": (B,)}
    rollout = Rollout.plan(["c1", "c2"], RolloutSettings(), serving, unchanged=["d1"])
    assert rollout.batches == [("c1",), ("c2",)]  # no batch size: one batch, were it not for A
    lines = rollout.describe_plan()
    assert lines[0] == ("rollout plan: 2 hosts to converge in 2 batches of up to 1; a batch with more than 0 "
                        "failed hosts stops the rollout")
    assert (
        "  zero downtime: text-to-image org/a is warm on c1, c2: at most 1 of them in a batch, so one "
        "always serves" in lines
    )
    assert rollout.to_dict()["coverage"]["shared"] == [{"model": "text-to-image org/a", "hosts": ["c1", "c2"],
                                                         "max_in_batch": 1}]
    # a host that is not rolled but serves A lets both rolled ones go together
    rollout = Rollout.plan(["c1", "c2"], RolloutSettings(), {**serving, "c3": (A,)})
    assert rollout.batches == [("c1", "c2")]
    # ... unless max_unavailable says otherwise
    rollout = Rollout.plan(["c1", "c2"], RolloutSettings(max_unavailable=1), {**serving, "c3": (A,)})
    assert rollout.batches == [("c1",), ("c2",)]


def test_a_model_on_one_node_only_is_changed_last_with_a_warning():
    serving = {"n1": (C,), "n2": (A,), "n3": (A,)}
    rollout = Rollout.plan(["n1", "n2", "n3"], RolloutSettings(), serving)
    assert rollout.batches == [("n2",), ("n3",), ("n1",)]
    assert (
        "  WARNING: llm org/c is warm on n1 only: it is unavailable while n1 converges (changed last); "
        "keep it warm on a second node to avoid that"
    ) in rollout.describe_plan()
    assert rollout.to_dict()["coverage"]["single_node"] == [{"model": "llm org/c", "host": "n1"}]


def test_a_tolerated_failure_replans_so_the_survivors_are_not_taken_down_together():
    # A on four hosts, batches of 2: (n1, n2), (n3, n4) keeps two serving. Both of batch 1 fail (tolerated):
    # only n3 and n4 serve A now, so they must not go down together.
    serving = {"n1": (A,), "n2": (A,), "n3": (A,), "n4": (A,)}
    rollout = Rollout.plan(["n1", "n2", "n3", "n4"], RolloutSettings(batch_size=2, fail_threshold=2), serving)
    assert rollout.batches == [("n1", "n2"), ("n3", "n4")]
    rollout.record(("n1", "n2"), {"n1": "runner loading after 300 s", "n2": "restart loop"})
    assert not rollout.stopped and rollout.replanned
    assert rollout.batches == [("n1", "n2"), ("n3",), ("n4",)]
    assert rollout.next_batch() == (2, ("n3",))
    assert rollout.to_dict()["coverage"]["replanned"] is True
    # one failure of the two: n2, n3, n4 serve, two of them may go: the plan stays
    rollout = Rollout.plan(["n1", "n2", "n3", "n4"], RolloutSettings(batch_size=2, fail_threshold=2), serving)
    rollout.record(("n1", "n2"), {"n1": "unreachable"})
    assert rollout.batches == [("n1", "n2"), ("n3", "n4")]


def test_fleet_settings_take_the_smallest_max_unavailable():
    settings = fleet_settings([RolloutSpec(max_unavailable=3), RolloutSpec(max_unavailable=2), RolloutSpec()])
    assert settings.max_unavailable == 2
