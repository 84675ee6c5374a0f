"""Warm placement: which models to keep warm on which nodes so the fleet serves the most demand.

Pure: no I/O. `lpfleet plan-warm` (lpfleet/commands/plan_warm.py) builds `PlacementNode`s from the fleet's
specs and prints the result; `lpfleet validate` uses `overcommitted_gpus` to warn about a warm set that does
not fit a node's GPU memory. docs/plan-warm.md describes the model below for operators.

The model:
- A node may keep warm any managed entry of its own `ai_models` (not an external `url` entry). A warm entry
  takes `capacity` (default 1) runner containers, each needing the entry's VRAM (`ai_model_vram_gb` in group
  data, else the catalog's estimate, else unknown = 0).
- go-livepeer puts warm containers on GPU slots in file order, slot-major (`colocated-<i>-<gpu>`: the first
  container of every GPU, then the second of every GPU; lpfleet.runners): container number p of the node's
  warm set lands on GPU `p % len(gpus)`. A warm set *fits* a node when it has no more containers than slots
  (GPUs x `runner_containers_per_gpu`) and, placed that way, no GPU holds more than `gpu_memory_gb` (no limit
  when unset). go-livepeer also panics when a model id is warm in one entry and cold in another, so entries
  sharing a model id are warm together or not at all.
- Demand: a weight per (pipeline, model_id) (a CSV or `ai_model_demand`; without any, every model weighs 1;
  with one, an unlisted model weighs 0).
- The objective, compared in this order: (1) covered demand: the summed weight of models warm on at least one
  node; (2) replicated demand: the sum over models of weight x nodes keeping it warm (spare slots go to what
  is asked for most); (3) churn: the number of nodes whose warm set stays as it is now.

Search: branch and bound over nodes, each node taking one of its inclusion-maximal fitting warm sets (adding a
model never lowers the objective), identical nodes taken in a fixed order, an incumbent from the greedy
heuristic and an upper bound per branch (plus the node's current warm set: keeping it may beat a larger set
that adds no demand). It is exact when it finishes within `max_expansions` (small fleets
always do; the exact search is tried for up to 200 nodes of up to 12 candidate entries each, and at most 64
distinct node shapes of that size); larger fleets get the best plan found, which is at least the greedy
heuristic's:
  1. coverage: models by weight (heaviest first), each onto the node that can take it with the most free
     slots (a node keeping it warm now first);
  2. replicas: every node fills its remaining slots with its heaviest candidates that still fit.
and the report states the upper bound on covered demand (every fitting model, heaviest first, as many as the
fleet has slots) so the gap is known.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from lpfleet import catalog

if TYPE_CHECKING:
    from lpfleet.spec import NodeSpec

ModelKey = tuple[str, str]  # (pipeline, model_id)

#: Weights are compared as integers of this many units, so sums are exact whatever the order.
WEIGHT_SCALE = 1_000_000
DEFAULT_MAX_EXPANSIONS = 50_000


def key_text(key: ModelKey) -> str:
    """ "pipeline model_id", the form `ai_models_warm` and `ai_model_demand` use."""
    return f"{key[0]} {key[1]}"


def parse_key(text: str) -> ModelKey | None:
    """ "pipeline model_id" back into a key; None when it is not two words."""
    parts = text.split()
    if len(parts) != 2:
        return None
    return parts[0], parts[1]


@dataclass(frozen=True)
class Candidate:
    """One managed entry a node could keep warm."""

    key: ModelKey
    vram_gb: float | None  # per container; None: unknown (counts as 0)
    containers: int = 1  # the entry's capacity
    warm_now: bool = False


@dataclass(frozen=True)
class PlacementNode:
    name: str
    group: str  # the group whose file the change goes to
    gpus: int
    containers_per_gpu: int
    gpu_memory_gb: float | None
    candidates: tuple[Candidate, ...]  # in ai_models order (go-livepeer's slot order follows it)

    @property
    def slots(self) -> int:
        return self.gpus * self.containers_per_gpu

    def shape(self) -> tuple:
        """Nodes with the same shape are interchangeable in the search."""
        return (self.gpus, self.containers_per_gpu, self.gpu_memory_gb, self.candidates)


def node_from_spec(spec: NodeSpec, ai_models_source: str | None = None) -> PlacementNode:
    """The node as the planner sees it: its managed entries in file order, VRAM from group data or the
    catalog.

    `ai_models_source` is the data layer `ai_models` came from ("group consumer_24gb", "host data"): the
    change goes to that group's file, or to the host's data when it is not a group; without it, the node's
    last group.
    """
    candidates = []
    for entry in spec.models:
        if entry.is_external or not catalog.is_pipeline(entry.pipeline):
            continue
        need = spec.placement.vram_gb.get(entry.model_id, catalog.vram_gb(entry.model_id))
        candidates.append(Candidate((entry.pipeline, entry.model_id), need, entry.capacity or 1, entry.warm))
    groups = [g for g in spec.groups if g != "all"]
    if ai_models_source is not None:
        group = ai_models_source[len("group ") :] if ai_models_source.startswith("group ") else ""
    else:
        group = groups[-1] if groups else "all"
    return PlacementNode(
        spec.host,
        group,
        len(spec.gpus),
        spec.containers_per_gpu,
        spec.gpu_memory_gb,
        tuple(candidates),
    )


def fleet_demand(specs: Iterable[NodeSpec]) -> tuple[dict[ModelKey, float] | None, list[str]]:
    """`ai_model_demand` of the fleet (None when no host sets it) and a line per key hosts disagree on."""
    demand: dict[ModelKey, float] = {}
    first: dict[ModelKey, str] = {}
    conflicts: list[str] = []
    for spec in specs:
        for text, weight in spec.placement.demand.items():
            key = parse_key(text)
            if key is None:
                continue
            if key in demand and demand[key] != weight:
                conflicts.append(
                    f'ai_model_demand: "{text}" weighs {demand[key]:g} on {first[key]} but {weight:g} on '
                    f"{spec.host}; set it once (group_data/all.py)"
                )
                continue
            demand.setdefault(key, float(weight))
            first.setdefault(key, spec.host)
    return (demand or None), conflicts


def gpu_loads(node: PlacementNode, chosen: Iterable[int]) -> list[float] | None:
    """VRAM per GPU when the candidates at `chosen` (indices) are warm, go-livepeer's way; None: too many."""
    loads = [0.0] * max(node.gpus, 1)
    position = 0
    for index in sorted(chosen):
        cand = node.candidates[index]
        for _ in range(cand.containers):
            if position >= node.slots:
                return None
            loads[position % len(loads)] += cand.vram_gb or 0.0
            position += 1
    return loads


def fits(node: PlacementNode, chosen: Iterable[int]) -> bool:
    """Whether the warm set fits the node's slots and GPU memory and keeps each model id all-warm or
    all-cold."""
    chosen = set(chosen)
    loads = gpu_loads(node, chosen)
    if loads is None:
        return False
    if node.gpu_memory_gb is not None and any(load > node.gpu_memory_gb + 1e-9 for load in loads):
        return False
    by_model: dict[str, set[bool]] = {}
    for index, cand in enumerate(node.candidates):
        by_model.setdefault(cand.key[1], set()).add(index in chosen)
    return all(len(states) == 1 for states in by_model.values())


def maximal_fitting_sets(node: PlacementNode) -> list[frozenset[int]]:
    """Every fitting warm set to which no further entry (with its model id's other entries) can be added.

    Exhaustive over the node's candidates: for nodes with few of them. Fitting is not downward-closed
    (dropping an entry moves the later ones to other GPUs), so this may keep a few sets that are contained in
    others; that only costs search time. Every fitting set is contained in one of these, and adding a model
    never lowers the objective, so searching these alone loses nothing.
    """
    n = len(node.candidates)
    groups = [frozenset(_group_of(node, i)) for i in range(n)]
    out = []
    for r in range(min(n, node.slots) + 1):  # more entries than slots never fit
        for combo in itertools.combinations(range(n), r):
            chosen = frozenset(combo)
            if not fits(node, chosen):
                continue
            if any(not g <= chosen and fits(node, chosen | g) for g in groups):
                continue
            out.append(chosen)
    return out


@dataclass
class Placement:
    """The plan: each node's warm set, how much demand it serves and whether it is proven best."""

    warm: dict[str, tuple[ModelKey, ...]]  # node -> warm keys in ai_models order
    weights: dict[ModelKey, float]
    covered: float
    replicated: float
    kept: int  # nodes whose warm set is unchanged
    optimal: bool
    covered_bound: float  # no placement covers more
    expansions: int = 0
    unhostable: tuple[ModelKey, ...] = ()  # demanded models no node can keep warm

    @property
    def total_demand(self) -> float:
        return sum(self.weights.values())

    def replicas(self) -> dict[ModelKey, int]:
        counts = {key: 0 for key in self.weights}
        for keys in self.warm.values():
            for key in keys:
                counts[key] = counts.get(key, 0) + 1
        return counts


@dataclass
class _Problem:
    nodes: list[PlacementNode]
    weights: dict[ModelKey, int]  # scaled
    models: list[ModelKey] = field(default_factory=list)  # global index -> key

    def __post_init__(self) -> None:
        seen: dict[ModelKey, None] = {}
        for node in self.nodes:
            for cand in node.candidates:
                seen.setdefault(cand.key)
        self.models = list(seen)
        self.index = {key: i for i, key in enumerate(self.models)}
        shapes: dict[tuple, int] = {}
        self.shape_of = {node.name: shapes.setdefault(node.shape(), len(shapes)) for node in self.nodes}
        self._groups: dict[int, list[frozenset[int]]] = {}
        self._fits: dict[tuple[int, frozenset[int]], bool] = {}

    def fits(self, node: PlacementNode, chosen: frozenset[int]) -> bool:
        """`fits`, remembered per node shape (a fleet has few shapes and many nodes)."""
        key = (self.shape_of[node.name], chosen)
        known = self._fits.get(key)
        if known is None:
            known = self._fits[key] = fits(node, chosen)
        return known

    def group(self, node: PlacementNode, index: int) -> frozenset[int]:
        shape = self.shape_of[node.name]
        if shape not in self._groups:
            self._groups[shape] = [frozenset(_group_of(node, i)) for i in range(len(node.candidates))]
        return self._groups[shape][index]

    def weight(self, key: ModelKey) -> int:
        return self.weights.get(key, 0)

    def score(self, warm: Mapping[str, frozenset[int]]) -> tuple[int, int, int]:
        covered: set[ModelKey] = set()
        replicated = 0
        kept = 0
        for node in self.nodes:
            chosen = warm.get(node.name, frozenset())
            keys = {node.candidates[i].key for i in chosen}
            covered |= keys
            replicated += sum(self.weight(k) for k in keys)
            now = {i for i, c in enumerate(node.candidates) if c.warm_now}
            kept += int(now == set(chosen))
        return sum(self.weight(k) for k in covered), replicated, kept


def demand_weights(
    nodes: Sequence[PlacementNode], demand: Mapping[ModelKey, float] | None
) -> dict[ModelKey, float]:
    """Every candidate model's weight: the demand given (unlisted: 0), or 1 each without any demand."""
    keys = list(dict.fromkeys(c.key for node in nodes for c in node.candidates))
    if demand is None:
        return {key: 1.0 for key in keys}
    weights = {key: float(demand.get(key, 0.0)) for key in keys}
    for key, value in demand.items():
        weights.setdefault(key, float(value))
    return weights


def plan_placement(
    nodes: Sequence[PlacementNode],
    demand: Mapping[ModelKey, float] | None = None,
    *,
    max_expansions: int = DEFAULT_MAX_EXPANSIONS,
    max_exact_candidates: int = 12,
    max_exact_nodes: int = 200,
) -> Placement:
    """The placement serving the most demand (see the module docstring for the objective and the search)."""
    nodes = list(nodes)
    weights = demand_weights(nodes, demand)
    problem = _Problem(nodes, {k: round(v * WEIGHT_SCALE) for k, v in weights.items()})
    greedy = _greedy(problem)
    best = greedy
    optimal = False
    expansions = 0
    shapes = {n.shape(): len(n.candidates) for n in nodes}
    if (
        len(nodes) <= max_exact_nodes
        and all(count <= max_exact_candidates for count in shapes.values())
        and sum(2**count for count in shapes.values()) <= 64 * 2**max_exact_candidates
    ):
        found, expansions, finished = _branch_and_bound(problem, greedy, max_expansions)
        best, optimal = found, finished
    covered, replicated, kept = problem.score(best)
    bound = covered if optimal else _covered_bound(problem)
    hostable = _hostable(problem)
    unhostable = tuple(k for k, w in weights.items() if w > 0 and k not in hostable)
    return Placement(
        warm={n.name: tuple(n.candidates[i].key for i in sorted(best.get(n.name, ()))) for n in nodes},
        weights=weights,
        covered=covered / WEIGHT_SCALE,
        replicated=replicated / WEIGHT_SCALE,
        kept=kept,
        optimal=optimal,
        covered_bound=bound / WEIGHT_SCALE,
        expansions=expansions,
        unhostable=unhostable,
    )


def _group_of(node: PlacementNode, index: int) -> set[int]:
    """The candidate and every other entry of the node with the same model id (warm together)."""
    model_id = node.candidates[index].key[1]
    return {i for i, c in enumerate(node.candidates) if c.key[1] == model_id}


def _greedy(problem: _Problem) -> dict[str, frozenset[int]]:
    nodes = problem.nodes
    warm: dict[str, frozenset[int]] = {n.name: frozenset() for n in nodes}
    used: dict[str, int] = {n.name: 0 for n in nodes}
    where: dict[ModelKey, list[tuple[PlacementNode, int]]] = {}
    for node in nodes:
        for index, cand in enumerate(node.candidates):
            where.setdefault(cand.key, []).append((node, index))
    order = sorted(problem.models, key=lambda k: (-problem.weight(k), len(where[k]), k))
    covered: set[ModelKey] = set()
    for key in order:
        if key in covered:
            continue
        options = []
        for position, (node, index) in enumerate(where[key]):
            group = problem.group(node, index)
            if group <= warm[node.name]:
                continue
            trial = frozenset(warm[node.name] | group)
            if problem.fits(node, trial):
                extra = sum(node.candidates[i].containers for i in group - warm[node.name])
                free = node.slots - used[node.name] - extra
                options.append((not node.candidates[index].warm_now, -free, position, node, trial, extra))
        if not options:
            continue
        *_, node, trial, extra = min(options, key=lambda o: o[:3])
        warm[node.name] = trial
        used[node.name] += extra
        covered |= {node.candidates[i].key for i in trial}
    for node in nodes:
        ranked = sorted(
            range(len(node.candidates)),
            key=lambda i: (-problem.weight(node.candidates[i].key), not node.candidates[i].warm_now, i),
        )
        for index in ranked:
            if index in warm[node.name]:
                continue
            trial = warm[node.name] | problem.group(node, index)
            if problem.fits(node, trial):
                warm[node.name] = trial
    return warm


def _hostable(problem: _Problem) -> set[ModelKey]:
    """Models some node can keep warm (alone, with its model id's other entries)."""
    hostable: set[ModelKey] = set()
    for node in problem.nodes:
        for index, cand in enumerate(node.candidates):
            if cand.key not in hostable and problem.fits(node, problem.group(node, index)):
                hostable.add(cand.key)
    return hostable


def _covered_bound(problem: _Problem) -> int:
    """No placement covers more: the heaviest models that fit some node alone, as many as there are slots."""
    hostable = _hostable(problem)
    slots = sum(n.slots for n in problem.nodes)
    heaviest = sorted((problem.weight(k) for k in hostable), reverse=True)
    return sum(heaviest[:slots])


def _branch_and_bound(
    problem: _Problem, incumbent: dict[str, frozenset[int]], max_expansions: int
) -> tuple[dict[str, frozenset[int]], int, bool]:
    """Exact search; returns (best, expansions, finished). Falls back to the incumbent's best when cut off."""
    nodes = sorted(problem.nodes, key=lambda n: (repr(n.shape()), n.name))
    weight = [problem.weight(k) for k in problem.models]
    option_cache: dict[tuple, list[tuple[frozenset[int], int, int, int, bool]]] = {}
    options: list[list[tuple[frozenset[int], int, int, int, bool]]] = []
    for node in nodes:
        shape = node.shape()
        if shape not in option_cache:
            now = frozenset(i for i, c in enumerate(node.candidates) if c.warm_now)
            built = []
            sets = maximal_fitting_sets(node)
            if now not in sets and fits(node, now):
                sets.append(now)  # keeping the current set may beat a bigger one that adds no demand
            for chosen in sets:
                mask = 0
                for i in chosen:
                    mask |= 1 << problem.index[node.candidates[i].key]
                built.append((chosen, mask, _mask_weight(mask, weight), 0, chosen == now))
            # the most valuable sets first: good incumbents early
            built.sort(key=lambda o: (-o[2], not o[4], sorted(o[0])))
            option_cache[shape] = built
        options.append(option_cache[shape])
    count = len(nodes)
    # suffix bounds: models any later node could host, the most replicated weight and keep a later node adds
    reach = [0] * (count + 1)
    rep_max = [0] * (count + 1)
    keep_max = [0] * (count + 1)
    for i in range(count - 1, -1, -1):
        union = 0
        for _, mask, _, _, _ in options[i]:
            union |= mask
        reach[i] = reach[i + 1] | union
        rep_max[i] = rep_max[i + 1] + max((o[2] for o in options[i]), default=0)
        keep_max[i] = keep_max[i + 1] + int(any(o[4] for o in options[i]))
    same_as_previous = [i > 0 and nodes[i].shape() == nodes[i - 1].shape() for i in range(count)]

    best_score = problem.score(incumbent)
    best_choice = {n.name: incumbent.get(n.name, frozenset()) for n in nodes}
    choice: list[int] = [0] * count
    expansions = 0
    finished = True

    def search(i: int, covered: int, cov_w: int, rep: int, kept: int) -> None:
        nonlocal best_score, best_choice, expansions, finished
        if not finished:
            return
        if i == count:
            score = (cov_w, rep, kept)
            if score > best_score:
                best_score = score
                best_choice = {nodes[j].name: options[j][choice[j]][0] for j in range(count)}
            return
        expansions += 1
        if expansions > max_expansions:
            finished = False
            return
        bound = (cov_w + _mask_weight(reach[i] & ~covered, weight), rep + rep_max[i], kept + keep_max[i])
        if bound <= best_score:
            return
        start = choice[i - 1] if same_as_previous[i] else 0
        for k in range(start, len(options[i])):
            chosen, mask, keys_rep, _, is_now = options[i][k]
            choice[i] = k
            new = mask & ~covered
            search(
                i + 1, covered | mask, cov_w + _mask_weight(new, weight), rep + keys_rep, kept + int(is_now)
            )
        choice[i] = 0

    search(0, 0, 0, 0, 0)
    return best_choice, expansions, finished


def _mask_weight(mask: int, weight: Sequence[int]) -> int:
    total = 0
    while mask:
        low = mask & -mask
        total += weight[low.bit_length() - 1]
        mask ^= low
    return total


# --- what the plan means for group data ------------------------------------------------------------


@dataclass(frozen=True)
class WarmChange:
    """Set `ai_models_warm` to `warm` in one place: a group's file (every node of it) or one host's data."""

    where: str  # "group" or "host"
    name: str  # group or host name
    warm: tuple[ModelKey, ...]
    hosts: tuple[str, ...]

    def snippet(self) -> str:
        items = ", ".join(f'"{key_text(k)}"' for k in self.warm)
        if self.where == "group":
            return f"group_data/{self.name}.py:  ai_models_warm = [{items}]"
        return f'inventory host data of {self.name}:  "ai_models_warm": [{items}]'


def warm_changes(nodes: Sequence[PlacementNode], placement: Placement) -> list[WarmChange]:
    """The group data edits that apply the plan: one per group whose nodes all get the same warm set,
    otherwise one per host whose warm set changes. Nothing for a node that already has its planned set."""
    changes: list[WarmChange] = []
    by_group: dict[str, list[PlacementNode]] = {}
    for node in nodes:
        by_group.setdefault(node.group, []).append(node)
    for group, members in by_group.items():
        own_data = not group  # ai_models comes from host data: each host is its own change
        planned = {n.name: placement.warm.get(n.name, ()) for n in members}
        current = {n.name: tuple(c.key for c in n.candidates if c.warm_now) for n in members}
        if all(planned[n.name] == current[n.name] for n in members):
            continue
        distinct = set(planned.values())
        if len(distinct) == 1 and not own_data:
            changes.append(WarmChange("group", group, next(iter(distinct)), tuple(n.name for n in members)))
            continue
        for node in members:
            if planned[node.name] != current[node.name]:
                changes.append(WarmChange("host", node.name, planned[node.name], (node.name,)))
    return changes


# --- overcommit of the current warm set ---------------------------------------------------------------


def overcommitted_gpus(node: PlacementNode) -> list[tuple[int, float]]:
    """(GPU position, GB) for every GPU the node's current warm set puts more than gpu_memory_gb on."""
    if node.gpu_memory_gb is None:
        return []
    chosen = [i for i, c in enumerate(node.candidates) if c.warm_now]
    loads = [0.0] * max(node.gpus, 1)
    position = 0
    for index in chosen:
        cand = node.candidates[index]
        for _ in range(cand.containers):
            if position >= node.slots:
                break  # beyond the slots: the spec's own rule reports that
            loads[position % len(loads)] += cand.vram_gb or 0.0
            position += 1
    return [(gpu, load) for gpu, load in enumerate(loads) if load > node.gpu_memory_gb + 1e-9]
