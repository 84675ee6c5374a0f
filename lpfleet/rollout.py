"""The rollout plan: which hosts converge together, and when a failed batch stops the rest.

Pure: no I/O. `lpfleet rollout` (lpfleet/commands/rollout.py) drives pyinfra batch by batch with it; see
docs/rollout.md for why the batching lives outside deploy.py.

Settings come from group data (`rollout_batch_size`, `rollout_batch_percent`, `rollout_fail_threshold`), so
different groups may ask for different values; one rollout uses the most careful: the smallest batch any
host asks for and the smallest failure tolerance. A percentage is of the hosts being rolled (rounded up,
at least one host). With neither set, the whole rollout is one batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from lpfleet.spec import RolloutSpec


@dataclass(frozen=True)
class RolloutSettings:
    batch_size: int | None = None
    batch_percent: int | None = None
    fail_threshold: int = 0  # failed hosts tolerated per batch; one more stops the rollout

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
    return RolloutSettings(
        min(sizes) if sizes else None,
        min(percents) if percents else None,
        min(thresholds) if thresholds else 0,
    )


def plan_batches(hosts: Sequence[str], settings: RolloutSettings) -> list[tuple[str, ...]]:
    """`hosts` (in the given order, duplicates dropped) cut into batches."""
    ordered = list(dict.fromkeys(hosts))
    if not ordered:
        return []
    size = settings.batch_for(len(ordered))
    return [tuple(ordered[i : i + size]) for i in range(0, len(ordered), size)]


@dataclass
class BatchResult:
    index: int  # 1-based
    hosts: tuple[str, ...]
    failed: dict[str, str] = field(default_factory=dict)  # host -> why


@dataclass
class Rollout:
    """Progress through a plan: record each batch's failures; it stops once a batch fails beyond the threshold."""

    batches: list[tuple[str, ...]]
    settings: RolloutSettings
    unchanged: tuple[str, ...] = ()  # hosts with nothing to roll out (left alone)
    done: list[BatchResult] = field(default_factory=list)
    stopped: bool = False

    def next_batch(self) -> tuple[int, tuple[str, ...]] | None:
        if self.stopped or len(self.done) >= len(self.batches):
            return None
        index = len(self.done)
        return index + 1, self.batches[index]

    def record(self, hosts: tuple[str, ...], failed: dict[str, str]) -> BatchResult:
        """The outcome of the batch just run; stops the rollout when more hosts failed than tolerated."""
        result = BatchResult(len(self.done) + 1, hosts, {h: failed[h] for h in hosts if h in failed})
        self.done.append(result)
        if len(result.failed) > self.settings.fail_threshold:
            self.stopped = True
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
            },
            "batches": [
                {
                    "index": i,
                    "hosts": list(b),
                    "failed": (self.done[i - 1].failed if i <= len(self.done) else None),
                    "ran": i <= len(self.done),
                }
                for i, b in enumerate(self.batches, 1)
            ],
            "untouched": self.untouched,
            "unchanged": list(self.unchanged),
        }
