"""`lpfleet plan-warm INVENTORY [--demand FILE] [--json]`: which models to keep warm on which nodes.

Reads every host's spec (GPUs, GPU memory, containers per GPU, its ai_models), each model's VRAM need
(`ai_model_vram_gb`, else the catalog's estimate) and the demand per (pipeline, model_id) (a CSV given with
`--demand`, else `ai_model_demand` in group data, else every model the same), and prints the placement serving
the most demand within every node's slots and GPU memory (lpfleet.placement; docs/plan-warm.md), then the
group data change that applies it (`ai_models_warm`). Connects to nothing. Exit 0 planned, 2 when the fleet or
the demand file is invalid (nothing is planned then).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lpfleet.commands.validate import add_data_arguments, override_data
from lpfleet.placement import (
    ModelKey,
    Placement,
    PlacementNode,
    WarmChange,
    fleet_demand,
    gpu_loads,
    key_text,
    node_from_spec,
    plan_placement,
    warm_changes,
)


class DemandError(ValueError):
    pass


def read_demand(path: str, known_pipelines) -> dict[ModelKey, float]:
    """A demand CSV: a header `pipeline,model_id,weight`, then one row per model."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DemandError(f"{path}: cannot read the demand file: {exc.__class__.__name__}: {exc}") from None
    rows = list(
        csv.reader(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))
    )
    if not rows or [c.strip() for c in rows[0]] != ["pipeline", "model_id", "weight"]:
        raise DemandError(f"{path}: line 1: the header must be `pipeline,model_id,weight`")
    demand: dict[ModelKey, float] = {}
    for number, row in enumerate(rows[1:], 2):
        if len(row) != 3:
            raise DemandError(
                f"{path}: row {number}: expected 3 columns (pipeline,model_id,weight), got {len(row)}"
            )
        pipeline, model_id, weight = (c.strip() for c in row)
        if pipeline not in known_pipelines:
            raise DemandError(f"{path}: row {number}: pipeline: unknown pipeline {pipeline!r}")
        if not model_id:
            raise DemandError(f"{path}: row {number}: model_id: empty")
        try:
            value = float(weight)
        except ValueError:
            raise DemandError(f"{path}: row {number}: weight: {weight!r} is not a number") from None
        if not value >= 0 or value == float("inf"):
            raise DemandError(f"{path}: row {number}: weight: must be a finite number >= 0")
        if (pipeline, model_id) in demand:
            raise DemandError(f"{path}: row {number}: {pipeline} {model_id} is listed twice")
        demand[(pipeline, model_id)] = value
    return demand


def _loads_text(node: PlacementNode, keys: tuple[ModelKey, ...]) -> str:
    chosen = [i for i, c in enumerate(node.candidates) if c.key in keys]
    loads = gpu_loads(node, chosen) or []
    used = "+".join(f"{load:g}" for load in loads)
    return f"{used} of {node.gpu_memory_gb:g} GB" if node.gpu_memory_gb is not None else f"{used} GB"


def _containers(node: PlacementNode, keys: tuple[ModelKey, ...]) -> int:
    return sum(c.containers for c in node.candidates if c.key in keys)


def to_table(nodes: list[PlacementNode], plan: Placement, changes: list[WarmChange]) -> str:
    rows = [("NODE", "GROUP", "SLOTS", "GPU MEMORY", "WARM NOW", "WARM PLANNED")]
    for node in nodes:
        now = tuple(c.key for c in node.candidates if c.warm_now)
        planned = plan.warm.get(node.name, ())
        rows.append(
            (
                node.name,
                node.group or "(host data)",
                f"{_containers(node, planned)}/{node.slots}",
                _loads_text(node, planned),
                ", ".join(key_text(k) for k in now) or "-",
                ("(same) " if planned == now else "") + (", ".join(key_text(k) for k in planned) or "-"),
            )
        )
    out = _columns(rows)
    out.append("")
    replicas_now: dict[ModelKey, int] = {}
    for node in nodes:
        for c in node.candidates:
            if c.warm_now:
                replicas_now[c.key] = replicas_now.get(c.key, 0) + 1
    planned_replicas = plan.replicas()
    model_rows = [("MODEL", "DEMAND", "WARM NODES NOW", "PLANNED")]
    for key in sorted(plan.weights, key=lambda k: (-plan.weights[k], k)):
        model_rows.append(
            (
                key_text(key),
                f"{plan.weights[key]:g}",
                str(replicas_now.get(key, 0)),
                str(planned_replicas.get(key, 0)),
            )
        )
    out += _columns(model_rows)
    out.append("")
    out.append(verdict(plan))
    for key in plan.unhostable:
        out.append(
            f"warning: {key_text(key)} fits no node (GPU memory or slots): it cannot be kept warm anywhere"
        )
    out.append("")
    if not changes:
        out.append("change to apply: none (every node already keeps its planned warm set)")
    else:
        out.append("change to apply (then `lpfleet rollout`):")
        out += [f"  {change.snippet()}" for change in changes]
    return "\n".join(out) + "\n"


def verdict(plan: Placement) -> str:
    total = plan.total_demand
    share = f" ({100 * plan.covered / total:.0f}%)" if total else ""
    text = f"covered demand {plan.covered:g} of {total:g}{share}"
    if plan.optimal:
        return text + "; optimal (exhaustive search)"
    gap = plan.covered_bound - plan.covered
    return text + (
        f"; heuristic plan (fleet too large for the exact search): no placement covers more than "
        f"{plan.covered_bound:g}"
        + (f" (gap {gap:g})" if gap > 0 else ", so its coverage is the best possible")
    )


def to_json(nodes: list[PlacementNode], plan: Placement, changes: list[WarmChange]) -> str:
    document: dict[str, Any] = {
        "schema": "lpfleet.plan-warm/1",
        "optimal": plan.optimal,
        "covered_demand": plan.covered,
        "total_demand": plan.total_demand,
        "covered_bound": plan.covered_bound,
        "nodes": [
            {
                "host": node.name,
                "group": node.group,
                "slots": node.slots,
                "gpu_memory_gb": node.gpu_memory_gb,
                "warm_now": [key_text(c.key) for c in node.candidates if c.warm_now],
                "warm_planned": [key_text(k) for k in plan.warm.get(node.name, ())],
                "gpu_load_gb": gpu_loads(
                    node, [i for i, c in enumerate(node.candidates) if c.key in plan.warm.get(node.name, ())]
                ),
            }
            for node in nodes
        ],
        "models": [
            {"model": key_text(key), "demand": weight, "warm_nodes": plan.replicas().get(key, 0)}
            for key, weight in plan.weights.items()
        ],
        "unhostable": [key_text(k) for k in plan.unhostable],
        "changes": [
            {
                "where": c.where,
                "name": c.name,
                "hosts": list(c.hosts),
                "ai_models_warm": [key_text(k) for k in c.warm],
            }
            for c in changes
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _columns(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]


def run(args: argparse.Namespace) -> int:
    from lpfleet.catalog import PIPELINES
    from lpfleet.fleet import check_fleet
    from lpfleet.spec import format_problems

    if not Path(args.inventory).is_file():
        print(f"lpfleet plan-warm: inventory {args.inventory} not found", file=sys.stderr)
        return 2
    result = check_fleet(args.inventory, override_data(args), args.group_data)
    if result.errors or not result.specs:
        for line in format_problems(result.errors):  # one line per mistake, its hosts named together
            print(line, file=sys.stderr)
        print(
            f"lpfleet plan-warm: {args.inventory}: "
            + ("fix the problems above first" if result.errors else "the inventory holds no host"),
            file=sys.stderr,
        )
        return 2
    specs = list(result.specs.values())
    if args.demand:
        try:
            demand: dict[ModelKey, float] | None = read_demand(args.demand, PIPELINES)
        except DemandError as exc:
            print(f"lpfleet plan-warm: {exc}", file=sys.stderr)
            return 2
    else:
        demand, conflicts = fleet_demand(specs)
        if conflicts:
            for line in conflicts:
                print(f"lpfleet plan-warm: {line}", file=sys.stderr)
            return 2
    nodes = [node_from_spec(spec, result.sources.get(spec.host, {}).get("ai_models")) for spec in specs]
    plan = plan_placement(nodes, demand)
    changes = warm_changes(nodes, plan)
    sys.stdout.write(to_json(nodes, plan, changes) if args.json else to_table(nodes, plan, changes))
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "plan-warm",
        help="which models to keep warm on which nodes, and the group data change that does it",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("inventory", help="inventory file")
    parser.add_argument(
        "--demand",
        metavar="FILE",
        help="CSV `pipeline,model_id,weight` (default: ai_model_demand, else every model the same)",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_data_arguments(parser)
    parser.set_defaults(func=run)
