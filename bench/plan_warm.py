"""Benchmark: `lpfleet plan-warm`'s planner (lpfleet.placement) on a generated fleet of N nodes and M models.

    .venv/bin/python bench/plan_warm.py                       # 1000 nodes x 50 models, 5 runs
    .venv/bin/python bench/plan_warm.py --nodes 200 --models 20 --runs 3

The fleet: four GPU classes in equal parts (1x24 GB, 1 container per GPU; 2x48 GB, 2 per GPU; 4x80 GB, 2 per
GPU; 8x80 GB, 1 per GPU), each class's ai_models a random subset of the M models (the larger classes carry
more of them) in a random order, VRAM needs drawn from 4-40 GB, a quarter of the models warm now, and
Zipf-like demand. Prints min / median / max wall time of the in-process planning (the fleet's specs already
built), the covered demand against its upper bound, and whether the search proved the plan optimal.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lpfleet.placement import Candidate, PlacementNode, plan_placement  # noqa: E402

CLASSES = (  # name, gpus, containers per GPU, GB per GPU, share of the models it lists
    ("consumer_24gb", 1, 1, 24, 0.4),
    ("workstation_2x48gb", 2, 2, 48, 0.6),
    ("datacenter_4x80gb", 4, 2, 80, 0.8),
    ("datacenter_8x80gb", 8, 1, 80, 1.0),
)
PIPELINES = ("text-to-image", "image-to-image", "image-to-video", "upscale", "audio-to-text", "llm")


def generate(nodes: int, models: int, seed: int = 1):
    rng = random.Random(seed)
    keys = [(rng.choice(PIPELINES), f"org/model-{i}") for i in range(models)]
    vram = {k: rng.choice([4, 6, 8, 12, 16, 20, 24, 36, 40]) for k in keys}
    demand = {k: round(100 / (rank + 1), 3) for rank, k in enumerate(rng.sample(keys, len(keys)))}
    fleet = []
    for index, (group, gpus, per_gpu, memory, share) in enumerate(CLASSES):
        listed = rng.sample(keys, max(1, int(len(keys) * share)))
        warm_now = set(rng.sample(listed, max(1, len(listed) // 4)))
        candidates = tuple(Candidate(k, vram[k], warm_now=k in warm_now) for k in listed)
        count = nodes // len(CLASSES) + (1 if index < nodes % len(CLASSES) else 0)
        fleet += [
            PlacementNode(f"{group}-{n}", group, gpus, per_gpu, memory, candidates) for n in range(count)
        ]
    return fleet, demand


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    fleet, demand = generate(args.nodes, args.models)
    times = []
    plan = None
    for _ in range(args.runs):
        started = time.perf_counter()
        plan = plan_placement(fleet, demand)
        times.append(time.perf_counter() - started)
    assert plan is not None
    warm = sum(len(keys) for keys in plan.warm.values())
    print(
        f"plan-warm {args.nodes} nodes x {args.models} models: min {min(times):.3f} s, "
        f"median {statistics.median(times):.3f} s, max {max(times):.3f} s over {args.runs} runs; "
        f"{warm} warm runners placed; covered demand {plan.covered:.1f} of {plan.total_demand:.1f} "
        f"(bound {plan.covered_bound:.1f}); {'optimal' if plan.optimal else 'heuristic'}"
    )
    return 0 if max(times) < 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
