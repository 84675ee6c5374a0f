"""The rollout plan: which hosts converge together, and when a failed batch stops the rest.

Pure: no I/O. `lpfleet rollout` (lpfleet/commands/rollout.py) drives pyinfra batch by batch with it; see
docs/rollout.md for why the batching lives outside deploy.py.

Settings come from group data (`rollout_batch_size`, `rollout_batch_percent`, `rollout_fail_threshold`,
`rollout_max_unavailable`), so different groups may ask for different values; one rollout uses the most
careful: the smallest batch any host asks for and the smallest failure tolerance. A percentage is of the hosts
being rolled (rounded up, at least one host). With neither set, the whole rollout is one batch.

Zero downtime: given which hosts serve which (pipeline, model_id) warm (`serving`), batches are composed so
that every model served warm by two or more hosts keeps at least one serving host out of the batch at every
moment (at most `rollout_max_unavailable` of its hosts in one batch, never all of them), whatever the batch
size allows. A host serving a model no other host serves cannot be changed without that model going down: such
hosts are changed last, and the plan warns about each of those models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from lpfleet.spec import RolloutSpec

ModelKey = tuple[str, str]  # (pipeline, model_id)


@dataclass(frozen=True)
class RolloutSettings:
    batch_size: int | None = None
    batch_percent: int | None = None
    fail_threshold: int = 0  # failed hosts tolerated per batch; one more stops the rollout
    max_unavailable: int | None = None  # serving hosts of one warm model down at once (None: all but one)

    def batch_for(self, hosts: int) -> int:
        """Hosts per batch for a rollout of `hosts` hosts."""
        sizes = [hosts]
        if self.batch_size:
            sizes.append(self.batch_size)
        if self.batch_percent:
            sizes.append(math.ceil(hosts * self.batch_percent / 100))
        return max(1, min(sizes))


def fleet_settings(specs: Iterable[RolloutSpec]) -> RolloutSettings:
    """The most careful of every host's settings (smallest size, smallest percentage, smallest threshold)."""
    specs = list(specs)
    sizes = [s.batch_size for s in specs if s.batch_size]
    percents = [s.batch_percent for s in specs if s.batch_percent]
    thresholds = [s.fail_threshold for s in specs]
    unavailable = [s.max_unavailable for s in specs if s.max_unavailable]
    return RolloutSettings(
        min(sizes) if sizes else None,
        min(percents) if percents else None,
        min(thresholds) if thresholds else 0,
        min(unavailable) if unavailable else None,
    )


@dataclass(frozen=True)
class Coverage:
    """Which hosts serve each warm model, and how many of them one batch may take down."""

    servers: dict[ModelKey, tuple[str, ...]]  # every host of the fleet keeping the model warm, up ones only
    max_unavailable: int | None = None

    @classmethod
    def of(
        cls,
        serving: Mapping[str, Iterable[ModelKey]],
        max_unavailable: int | None = None,
        down: Iterable[str] = (),
    ) -> Coverage:
        down = set(down)
        servers: dict[ModelKey, list[str]] = {}
        for host, keys in serving.items():
            if host in down:
                continue
            for key in dict.fromkeys(keys):
                servers.setdefault(key, []).append(host)
        return cls({key: tuple(hosts) for key, hosts in servers.items()}, max_unavailable)

    def limit(self, key: ModelKey) -> int:
        """Serving hosts of `key` one batch may hold: all but one (capped by max_unavailable); 1 when
        alone."""
        count = len(self.servers.get(key, ()))
        if count <= 1:
            return 1
        return min(count - 1, self.max_unavailable or count - 1)

    def keys_of(self, host: str) -> list[ModelKey]:
        return [key for key, hosts in self.servers.items() if host in hosts]

    def sole(self, host: str) -> list[ModelKey]:
        """Models this host alone serves: they go down while it converges, whatever the batching."""
        return [key for key, hosts in self.servers.items() if hosts == (host,)]

    def shared(self, hosts: Iterable[str]) -> list[ModelKey]:
        """Models served by two or more hosts, at least one of them in `hosts`."""
        hosts = set(hosts)
        return [key for key, servers in self.servers.items() if len(servers) > 1 and hosts & set(servers)]

    def batch_down(self, batch: Iterable[str]) -> dict[ModelKey, int]:
        """Per model: how many of its serving hosts the batch takes down."""
        counts: dict[ModelKey, int] = {}
        for host in batch:
            for key in self.keys_of(host):
                counts[key] = counts.get(key, 0) + 1
        return counts


def plan_batches(
    hosts: Sequence[str], settings: RolloutSettings, coverage: Coverage | None = None
) -> list[tuple[str, ...]]:
    """`hosts` (in the given order, duplicates dropped) cut into batches.

    Without `coverage`: consecutive runs of the batch size. With it: first fit in the given order, a host
    joining the current batch only when the batch stays within the size and within every one of its models'
    limits (`Coverage.limit`); hosts that alone serve a model come after all others.
    """
    ordered = list(dict.fromkeys(hosts))
    if not ordered:
        return []
    size = settings.batch_for(len(ordered))
    if coverage is None:
        return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]
    last = [h for h in ordered if coverage.sole(h)]
    first = [h for h in ordered if h not in last]
    return _first_fit(first, size, coverage) + _first_fit(last, size, coverage)


def _first_fit(hosts: list[str], size: int, coverage: Coverage) -> list[tuple[str, ...]]:
    batches: list[tuple[str, ...]] = []
    remaining = list(hosts)
    keys = {host: coverage.keys_of(host) for host in hosts}
    while remaining:
        batch: list[str] = []
        down: dict[ModelKey, int] = {}
        for host in remaining:
            if len(batch) >= size:
                break
            if all(down.get(key, 0) < coverage.limit(key) for key in keys[host]):
                batch.append(host)
                for key in keys[host]:
                    down[key] = down.get(key, 0) + 1
        batches.append(tuple(batch))
        remaining = [h for h in remaining if h not in batch]
    return batches


@dataclass
class BatchResult:
    index: int  # 1-based
    hosts: tuple[str, ...]
    failed: dict[str, str] = field(default_factory=dict)  # host -> why
    started_s: float | None = None  # seconds after the rollout started (for the fleet page's timeline)
    duration_s: float | None = None


@dataclass
class Rollout:
    """Progress through a plan: record each batch's failures; it stops once a batch fails beyond the
    threshold."""

    batches: list[tuple[str, ...]]
    settings: RolloutSettings
    unchanged: tuple[str, ...] = ()  # hosts with nothing to roll out (left alone)
    done: list[BatchResult] = field(default_factory=list)
    stopped: bool = False
    serving: Mapping[str, tuple[ModelKey, ...]] | None = None  # host -> warm models (zero-downtime batching)
    replanned: bool = False  # a tolerated failure changed the batches still to run

    @classmethod
    def plan(
        cls,
        hosts: Sequence[str],
        settings: RolloutSettings,
        serving: Mapping[str, Iterable[ModelKey]] | None = None,
        unchanged: Sequence[str] = (),
    ) -> Rollout:
        """Batches for `hosts`, zero-downtime when `serving` (every fleet host's warm models) is given."""
        frozen = {h: tuple(dict.fromkeys(k)) for h, k in serving.items()} if serving is not None else None
        coverage = Coverage.of(frozen, settings.max_unavailable) if frozen is not None else None
        return cls(plan_batches(hosts, settings, coverage), settings, tuple(unchanged), serving=frozen)

    @property
    def coverage(self) -> Coverage | None:
        if self.serving is None:
            return None
        failed = [h for b in self.done for h in b.failed]
        return Coverage.of(self.serving, self.settings.max_unavailable, down=failed)

    def next_batch(self) -> tuple[int, tuple[str, ...]] | None:
        if self.stopped or len(self.done) >= len(self.batches):
            return None
        index = len(self.done)
        return index + 1, self.batches[index]

    def record(
        self,
        hosts: tuple[str, ...],
        failed: dict[str, str],
        started_s: float | None = None,
        duration_s: float | None = None,
    ) -> BatchResult:
        """The outcome of the batch just run; stops the rollout when more hosts failed than tolerated."""
        result = BatchResult(
            len(self.done) + 1, hosts, {h: failed[h] for h in hosts if h in failed}, started_s, duration_s
        )
        self.done.append(result)
        if len(result.failed) > self.settings.fail_threshold:
            self.stopped = True
        elif result.failed and self.serving is not None:
            # a failed host serves nothing now: batch the rest again so its models keep a serving host
            rest = self.untouched
            self.batches = self.batches[: len(self.done)] + plan_batches(rest, self.settings, self.coverage)
            self.replanned = True
        return result

    @property
    def untouched(self) -> list[str]:
        """Hosts of batches that never ran (the rollout stopped before them)."""
        return [h for batch in self.batches[len(self.done) :] for h in batch]

    @property
    def status(self) -> str:
        if self.stopped:
            return "stopped"
        if len(self.done) < len(self.batches):
            return "in progress"
        return "completed" if not any(b.failed for b in self.done) else "completed with failures"

    def describe_plan(self) -> list[str]:
        lines = []
        total = sum(len(b) for b in self.batches)
        size = max((len(b) for b in self.batches), default=0)
        if not total:
            return ["rollout plan: nothing to roll out (every host is converged)"] + (
                [f"  no changes (left alone): {', '.join(self.unchanged)}"] if self.unchanged else []
            )
        lines.append(
            f"rollout plan: {total} host{'s' if total != 1 else ''} to converge in {len(self.batches)} "
            f"batch{'es' if len(self.batches) != 1 else ''} of up to {size}; a batch with more than "
            f"{self.settings.fail_threshold} failed host{'s' if self.settings.fail_threshold != 1 else ''} "
            "stops the rollout"
        )
        for index, batch in enumerate(self.batches, 1):
            lines.append(f"  batch {index}: {', '.join(batch)}")
        if self.unchanged:
            lines.append(f"  no changes (left alone): {', '.join(self.unchanged)}")
        lines.extend(self.describe_coverage())
        return lines

    def describe_coverage(self) -> list[str]:
        """What the batching guarantees per warm model, and a warning for each model only one host serves."""
        coverage = self.coverage
        if coverage is None:
            return []
        targets = [h for b in self.batches for h in b]
        lines = []
        for key in coverage.shared(targets):
            hosts = coverage.servers[key]
            lines.append(
                f"  zero downtime: {key[0]} {key[1]} is warm on {', '.join(hosts)}: at most "
                f"{coverage.limit(key)} of them in a batch, so one always serves"
            )
        for host in targets:
            for key in coverage.sole(host):
                lines.append(
                    f"  WARNING: {key[0]} {key[1]} is warm on {host} only: it is unavailable while {host} "
                    "converges (changed last); keep it warm on a second node to avoid that"
                )
        return lines

    def describe_outcome(self) -> list[str]:
        lines = []
        for batch in self.done:
            if batch.failed:
                failed = "; ".join(f"{h}: {why}" for h, why in batch.failed.items())
                lines.append(
                    f"batch {batch.index}/{len(self.batches)} ({', '.join(batch.hosts)}): "
                    f"{len(batch.failed)} failed - {failed}"
                )
            else:
                lines.append(
                    f"batch {batch.index}/{len(self.batches)} ({', '.join(batch.hosts)}): verified healthy"
                )
        if self.stopped:
            last = self.done[-1]
            untouched = self.untouched
            lines.append(
                f"rollout STOPPED after batch {last.index}/{len(self.batches)}: {len(last.failed)} failed "
                f"host{'s' if len(last.failed) != 1 else ''} > threshold {self.settings.fail_threshold}; "
                + (f"not touched: {', '.join(untouched)}" if untouched else "no hosts were left")
            )
        else:
            lines.append(f"rollout {self.status}: {len(self.done)}/{len(self.batches)} batches")
        return lines

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "settings": {
                "batch_size": self.settings.batch_size,
                "batch_percent": self.settings.batch_percent,
                "fail_threshold": self.settings.fail_threshold,
                "max_unavailable": self.settings.max_unavailable,
            },
            "coverage": self._coverage_dict(),
            "batches": [self._batch_dict(i, b) for i, b in enumerate(self.batches, 1)],
            "untouched": self.untouched,
            "unchanged": list(self.unchanged),
        }

    def _batch_dict(self, index: int, hosts: tuple[str, ...]) -> dict:
        out: dict = {
            "index": index,
            "hosts": list(hosts),
            "failed": (self.done[index - 1].failed if index <= len(self.done) else None),
            "ran": index <= len(self.done),
        }
        if index <= len(self.done) and self.done[index - 1].started_s is not None:
            out["started_s"] = round(self.done[index - 1].started_s or 0.0, 3)
            out["duration_s"] = round(self.done[index - 1].duration_s or 0.0, 3)
        return out

    def _coverage_dict(self) -> dict | None:
        """What the plan protected (as planned: hosts that failed later still count as serving here)."""
        if self.serving is None:
            return None
        coverage = Coverage.of(self.serving, self.settings.max_unavailable)
        targets = [h for b in self.batches for h in b]
        return {
            "shared": [
                {
                    "model": f"{k[0]} {k[1]}",
                    "hosts": list(coverage.servers[k]),
                    "max_in_batch": coverage.limit(k),
                }
                for k in coverage.shared(targets)
            ],
            "single_node": [
                {"model": f"{k[0]} {k[1]}", "host": host} for host in targets for k in coverage.sole(host)
            ],
            "replanned": self.replanned,
        }
