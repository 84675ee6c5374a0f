"""The result model of verification: checks, diagnosed causes, host results, the exit-code policy.

Pure: no I/O, imports nothing of lpfleet. Verification (`lpfleet.verification`) and diagnosis
(`lpfleet.diagnose`) produce these values; `lpfleet.report` only renders them (table, JSON, JUnit).
The JSON report is a data contract: `SCHEMA` names its version, `results_from_json` reads it back
(docs/verify.md documents it).

States, worst last: ok, skip, loading, warn, fail, unknown ("could not check"). Exit codes: 1 when any
check failed, else 2 when any could not be checked, else 0 (loading and warnings do not fail a run).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Literal, Sequence, get_args

SCHEMA = "lpfleet.verify/1"
CheckState = Literal["ok", "skip", "loading", "warn", "fail", "unknown"]
STATES: tuple[CheckState, ...] = get_args(CheckState)
PROBLEM_STATES: tuple[CheckState, ...] = ("fail",)


@dataclass(frozen=True)
class Cause:
    """A diagnosed cause (lpfleet.diagnose ids: `cuda-oom`, ...), the log line that shows it and what to do."""

    cause: str
    line: str
    hint: str

    def to_dict(self) -> dict:
        return {"cause": self.cause, "line": self.line, "hint": self.hint}


@dataclass(frozen=True)
class Check:
    """One verified property of one host."""

    host: str
    check: str  # "gpus", "runner text-to-image_..._8000", "weights org/name", ...
    state: CheckState
    detail: str
    causes: tuple[Cause, ...] = ()
    data: dict = field(default_factory=dict, compare=False)  # machine-readable facts behind the detail

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown check state {self.state!r}")

    def to_dict(self) -> dict:
        out: dict = {
            "check": self.check,
            "state": self.state,
            "detail": self.detail,
            "causes": [cause.to_dict() for cause in self.causes],
        }
        if self.data:
            out["data"] = self.data
        return out


@dataclass(frozen=True)
class HostResult:
    host: str
    groups: tuple[str, ...]
    checks: tuple[Check, ...]

    @property
    def status(self) -> str:
        """healthy, problems or unchecked (the host's worst state mapped onto the exit code's terms)."""
        states = {check.state for check in self.checks}
        if "fail" in states:
            return "problems"
        if "unknown" in states or not self.checks:
            return "unchecked"
        return "healthy"

    def to_dict(self) -> dict:
        return {
            "host": self.host,
            "groups": list(self.groups),
            "status": self.status,
            "checks": [check.to_dict() for check in self.checks],
        }


def results_from_json(text: str) -> list[HostResult]:
    """HostResults back from a JSON report (what `lpfleet verify` reads from the pyinfra run it starts)."""
    document = json.loads(text)
    if document.get("schema") != SCHEMA:
        raise ValueError(f"not a {SCHEMA} report (schema {document.get('schema')!r})")
    hosts = []
    for item in document.get("hosts") or []:
        checks = tuple(
            Check(
                item["host"],
                c["check"],
                c["state"],
                c["detail"],
                tuple(Cause(x["cause"], x["line"], x["hint"]) for x in c.get("causes") or []),
                c.get("data") or {},
            )
            for c in item.get("checks") or []
        )
        hosts.append(HostResult(item["host"], tuple(item.get("groups") or ()), checks))
    return hosts


def exit_code(hosts: Iterable[HostResult]) -> int:
    statuses = {host.status for host in hosts}
    if "problems" in statuses:
        return 1
    if "unchecked" in statuses:
        return 2
    return 0


def overall_status(hosts: Sequence[HostResult]) -> str:
    return {0: "healthy", 1: "problems", 2: "unchecked"}[exit_code(hosts)]


def summary(hosts: Sequence[HostResult]) -> dict:
    counts = {state: 0 for state in STATES}
    for host in hosts:
        for check in host.checks:
            counts[check.state] += 1
    by_status = {
        status: sum(1 for h in hosts if h.status == status) for status in ("healthy", "problems", "unchecked")
    }
    return {"hosts": len(hosts), **by_status, "checks": counts}


def unchecked(host: str, reason: str, groups: Sequence[str] = ()) -> HostResult:
    """A host that could not be checked at all (not connected, an earlier step failed, the fact failed)."""
    return HostResult(host, tuple(groups), (Check(host, "node", "unknown", f"could not check: {reason}"),))
