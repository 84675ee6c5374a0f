"""Warm placement (lpfleet.placement): the plan matches brute force on hundreds of random small fleets, every
plan fits, and the group data change and the overcommit warning say what they should."""

from __future__ import annotations

import itertools
import random

import pytest

from lpfleet.placement import (
    Candidate,
    PlacementNode,
    fits,
    gpu_loads,
    overcommitted_gpus,
    plan_placement,
    warm_changes,
)

PIPES = ("text-to-image", "image-to-image", "upscale")


def brute_force(nodes, weights):
    """Best (covered, replicated, kept) over every combination of every node's fitting warm sets."""
    per_node = []
    for node in nodes:
        n = len(node.candidates)
        sets = [
            frozenset(c) for r in range(n + 1) for c in itertools.combinations(range(n), r) if fits(node, c)
        ]
        per_node.append(sets)
    best = None
    for combo in itertools.product(*per_node):
        covered, replicated, kept = set(), 0, 0
        for node, chosen in zip(nodes, combo):
            keys = {node.candidates[i].key for i in chosen}
            covered |= keys
            replicated += sum(weights.get(k, 0) for k in keys)
            kept += int(set(chosen) == {i for i, c in enumerate(node.candidates) if c.warm_now})
        score = (sum(weights.get(k, 0) for k in covered), replicated, kept)
        if best is None or score > best:
            best = score
    return best


def random_fleet(rng: random.Random):
    models = [(rng.choice(PIPES), f"org/m{i}") for i in range(rng.randint(1, 5))]
    vram = {m: rng.choice([None, 4, 8, 12, 20, 30]) for m in models}
    nodes = []
    for n in range(rng.randint(1, 3)):
        count = rng.randint(1, min(4, len(models)))
        chosen = rng.sample(models, count)
        if rng.random() < 0.2:  # the same model id in a second pipeline: warm together or not at all
            pipeline, model_id = chosen[0]
            other = next(p for p in PIPES if p != pipeline)
            chosen.append((other, model_id))
        candidates = tuple(
            Candidate(
                key,
                vram[(key[0], key[1])] if key in vram else vram[chosen[0]],
                containers=rng.choice([1, 1, 1, 2]),
                warm_now=rng.random() < 0.4,
            )
            for key in chosen
        )
        nodes.append(
            PlacementNode(
                f"node-{n}",
                rng.choice(["a", "b"]),
                gpus=rng.randint(1, 2),
                containers_per_gpu=rng.randint(1, 2),
                gpu_memory_gb=rng.choice([None, 16, 24, 40]),
                candidates=candidates,
            )
        )
    if rng.random() < 0.5:
        demand = None
        weights = {c.key: 1 for node in nodes for c in node.candidates}
    else:
        every = sorted({c.key for node in nodes for c in node.candidates})
        demand = {k: rng.randint(0, 9) for k in every if rng.random() < 0.8}
        weights = {k: demand.get(k, 0) for k in every}
    return nodes, demand, weights


@pytest.mark.parametrize("seed", range(300))
def test_the_plan_matches_brute_force(seed):
    rng = random.Random(seed)
    nodes, demand, weights = random_fleet(rng)
    plan = plan_placement(nodes, demand)
    assert plan.optimal
    by_name = {n.name: n for n in nodes}
    for name, keys in plan.warm.items():
        node = by_name[name]
        chosen = {i for i, c in enumerate(node.candidates) if c.key in keys}
        assert fits(node, chosen), (name, keys)
    got = (plan.covered, plan.replicated, plan.kept)
    assert got == tuple(float(x) if i < 2 else x for i, x in enumerate(brute_force(nodes, weights)))
    assert plan.covered <= plan.covered_bound


@pytest.mark.parametrize("seed", range(40))
def test_the_heuristic_alone_fits_and_stays_under_its_bound(seed):
    rng = random.Random(1000 + seed)
    nodes, demand, weights = random_fleet(rng)
    plan = plan_placement(nodes, demand, max_exact_candidates=0)  # greedy only
    assert not plan.optimal
    best = brute_force(nodes, weights)
    assert plan.covered <= best[0] <= plan.covered_bound
    by_name = {n.name: n for n in nodes}
    for name, keys in plan.warm.items():
        node = by_name[name]
        assert fits(node, {i for i, c in enumerate(node.candidates) if c.key in keys})


def test_go_livepeer_slot_order_decides_which_gpu_holds_what():
    # two GPUs, two containers each: file order 0,1,2,3 lands on GPU 0,1,0,1
    node = PlacementNode(
        "n",
        "g",
        2,
        2,
        24,
        tuple(Candidate(("text-to-image", f"org/m{i}"), v) for i, v in enumerate([20, 20, 4, 4])),
    )
    assert gpu_loads(node, [0, 1, 2, 3]) == [24.0, 24.0]
    assert fits(node, [0, 1, 2, 3])
    swapped = PlacementNode(
        "n",
        "g",
        2,
        2,
        24,
        tuple(Candidate(("text-to-image", f"org/m{i}"), v) for i, v in enumerate([20, 4, 20, 4])),
    )
    assert gpu_loads(swapped, [0, 1, 2, 3]) == [40.0, 8.0]
    assert not fits(swapped, [0, 1, 2, 3])
    assert not fits(node, [0, 1, 2, 3, 3]) or len(node.candidates) == 4  # sets, not lists
    single = PlacementNode(
        "n", "g", 1, 1, 24, (Candidate(("llm", "org/a"), 8), Candidate(("llm", "org/b"), 8))
    )
    assert not fits(single, [0, 1])  # one slot


def test_a_model_id_in_two_pipelines_is_warm_in_both_or_neither():
    node = PlacementNode(
        "n",
        "g",
        2,
        1,
        None,
        (
            Candidate(("text-to-image", "org/x"), 8),
            Candidate(("image-to-image", "org/x"), 8),
        ),
    )
    assert not fits(node, [0]) and fits(node, [0, 1]) and fits(node, [])


def test_demand_spreads_models_and_keeps_what_is_warm():
    # three one-slot nodes, three models: each node keeps a different one (coverage first)
    models = [("text-to-image", f"org/m{i}") for i in range(3)]
    nodes = [
        PlacementNode(
            f"n{i}", "g", 1, 1, 24, tuple(Candidate(m, 8, warm_now=(m == models[0])) for m in models)
        )
        for i in range(3)
    ]
    plan = plan_placement(nodes)
    assert plan.optimal and plan.covered == 3
    assert sorted(k for keys in plan.warm.values() for k in keys) == sorted(models)
    assert plan.kept == 1  # one node keeps m0, as it has it now
    # the heaviest model gets the spare slots once every model is covered
    plan = plan_placement(
        nodes + [PlacementNode("n3", "g", 1, 1, 24, tuple(Candidate(m, 8) for m in models))],
        {models[2]: 5, models[0]: 1, models[1]: 1},
    )
    assert plan.replicas()[models[2]] == 2


def test_already_optimal_fleet_gets_no_change_and_a_group_change_when_nodes_agree():
    models = [("text-to-image", "org/a"), ("upscale", "org/b")]
    nodes = [
        PlacementNode(
            f"n{i}",
            "consumer",
            1,
            1,
            24,
            (Candidate(models[0], 8, warm_now=(i == 0)), Candidate(models[1], 8, warm_now=(i == 1))),
        )
        for i in range(2)
    ]
    plan = plan_placement(nodes)
    assert plan.kept == 2 and warm_changes(nodes, plan) == []
    # two-GPU nodes of one group: both models fit on every node, so the change is one group edit
    big = [
        PlacementNode(f"d{i}", "datacenter", 2, 1, 80, (Candidate(models[0], 8), Candidate(models[1], 8)))
        for i in range(3)
    ]
    plan = plan_placement(big)
    changes = warm_changes(big, plan)
    assert [(c.where, c.name) for c in changes] == [("group", "datacenter")]
    assert changes[0].snippet() == (
        'group_data/datacenter.py:  ai_models_warm = ["text-to-image org/a", "upscale org/b"]'
    )


def test_nodes_of_a_group_that_differ_get_host_data():
    models = [("text-to-image", "org/a"), ("upscale", "org/b")]
    nodes = [
        PlacementNode(f"n{i}", "consumer", 1, 1, 24, tuple(Candidate(m, 8) for m in models)) for i in range(2)
    ]
    changes = warm_changes(nodes, plan_placement(nodes))
    assert sorted(c.where for c in changes) == ["host", "host"]
    assert {c.warm for c in changes} == {(models[0],), (models[1],)}
    assert changes[0].snippet().startswith("inventory host data of n")


def test_unknown_vram_counts_as_zero_and_a_model_too_big_for_any_gpu_is_reported():
    nodes = [
        PlacementNode(
            "n", "g", 1, 2, 24, (Candidate(("llm", "org/huge"), 40), Candidate(("llm", "org/u"), None))
        )
    ]
    plan = plan_placement(nodes, {("llm", "org/huge"): 3, ("llm", "org/u"): 1})
    assert plan.warm["n"] == (("llm", "org/u"),)
    assert plan.unhostable == (("llm", "org/huge"),)


def test_overcommit_of_the_current_warm_set():
    node = PlacementNode(
        "n",
        "g",
        1,
        2,
        24,
        (
            Candidate(("text-to-image", "org/a"), 20, warm_now=True),
            Candidate(("upscale", "org/b"), 10, warm_now=True),
        ),
    )
    assert overcommitted_gpus(node) == [(0, 30.0)]
    two = PlacementNode("n", "g", 2, 1, 24, node.candidates)
    assert overcommitted_gpus(two) == []
    assert overcommitted_gpus(PlacementNode("n", "g", 1, 2, None, node.candidates)) == []


# --- the group data keys behind plan-warm and rollout ------------------------------------------------------

from lpfleet.spec import SpecError, build_node_spec  # noqa: E402

SDXL = {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "warm": True}
PIX = {"pipeline": "image-to-image", "model_id": "timbrooks/instruct-pix2pix"}
URL = {"pipeline": "llm", "model_id": "org/llm", "url": "http://llm.lan:8000", "warm": True}


def spec_problems(data):
    with pytest.raises(SpecError) as exc:
        build_node_spec("gpu-1", [("group g", data)], ("g",))
    return [p.format() for p in exc.value.problems]


def test_ai_models_warm_sets_exactly_the_listed_managed_entries_warm():
    spec = build_node_spec(
        "gpu-1",
        [
            ("host data", {"ai_models_warm": ["image-to-image timbrooks/instruct-pix2pix"]}),
            ("group g", {"ai_models": [SDXL, PIX, URL]}),
        ],
        ("g",),
    )
    assert [(e.model_id, e.warm) for e in spec.models] == [
        ("ByteDance/SDXL-Lightning", False),
        ("timbrooks/instruct-pix2pix", True),
        ("org/llm", True),
    ]
    assert spec.placement.warm == ("image-to-image timbrooks/instruct-pix2pix",)


def test_bad_placement_keys_name_the_key_and_the_fix():
    assert spec_problems(
        {"ai_models": [SDXL], "ai_models_warm": "text-to-image ByteDance/SDXL-Lightning"}
    ) == [
        'gpu-1 (group g): ai_models_warm: must be a list of "pipeline model_id" strings '
        "(lpfleet plan-warm prints it)"
    ]
    assert spec_problems({"ai_models": [SDXL, URL], "ai_models_warm": ["llm org/llm"]}) == [
        'gpu-1 (group g): ai_models_warm: "llm org/llm" is no managed entry of ai_models '
        '(write "pipeline model_id" '
        "of an entry without url)"
    ]
    assert spec_problems({"ai_models": [SDXL], "ai_model_vram_gb": {"org/a": -1}}) == [
        "gpu-1 (group g): ai_model_vram_gb: must map model ids to GB of GPU memory >= 0, "
        'e.g. {"org/name": 14}'
    ]
    assert spec_problems({"ai_models": [SDXL], "ai_model_demand": {"text-to-img org/a": 1}}) == [
        "gpu-1 (group g): ai_model_demand: key 'text-to-img org/a' is not "
        '"pipeline model_id" with a known pipeline'
    ]
    assert spec_problems({"ai_models": [SDXL], "ai_model_demand": {"llm org/a": "high"}}) == [
        'gpu-1 (group g): ai_model_demand: the weight of "llm org/a" must be a number >= 0'
    ]
    assert any(
        "rollout_max_unavailable" in line
        for line in spec_problems({"ai_models": [SDXL], "rollout_max_unavailable": 0})
    )


def test_node_from_spec_uses_the_vram_override_and_skips_external_entries():
    from lpfleet.placement import node_from_spec

    spec = build_node_spec(
        "gpu-1",
        [
            (
                "group g",
                {
                    "ai_models": [SDXL, PIX, URL],
                    "gpus": [0, 1],
                    "ai_model_vram_gb": {"timbrooks/instruct-pix2pix": 3.5},
                },
            )
        ],
        ("g",),
    )
    node = node_from_spec(spec, "group g")
    assert node.group == "g" and node.gpus == 2 and node.slots == 2
    assert [(c.key[1], c.vram_gb, c.warm_now) for c in node.candidates] == [
        ("ByteDance/SDXL-Lightning", 12, True),
        ("timbrooks/instruct-pix2pix", 3.5, False),
    ]
    assert node_from_spec(spec, "host data").group == ""
