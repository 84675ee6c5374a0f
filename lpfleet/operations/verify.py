"""The verification operation and the run's results (table, JSON, JUnit at the end of every pyinfra run).

`node_verified` gathers the NodeVerification fact - one round-trip - evaluates it (lpfleet.verification),
records the host's result for the run, and fails the host when a check failed, with a one-line summary.
A healthy node is `host.noop`: verify.py on a healthy fleet reports 0 changes.

pyinfra runs an operation's body at prepare time (unless `-y`) and again at execute time. The execute-time
run is the truth (it follows every earlier step of deploy.py); when no earlier operation ran a command on the
host it reuses the prepare-time snapshot instead of asking the node twice.

The end-of-run table: a State callback counts host disconnects (pyinfra disconnects every host after printing
its own results) and, after the last one, prints the table to stderr (stdout stays clean for `--json`) and
writes the reports named by LPFLEET_VERIFY_JSON / LPFLEET_VERIFY_JUNIT.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.state import BaseStateCallback, State

from lpfleet import diagnose
from lpfleet.checks import Cause, Check, HostResult, exit_code, unchecked
from lpfleet.facts.batch import FactRequest, known_fact
from lpfleet.facts.verify import NodeVerification, encode_params
from lpfleet.fleet import fleet_plan
from lpfleet.lock import models_for_node
from lpfleet.operations.plan_notes import note
from lpfleet.probe import probe
from lpfleet.report import to_json, to_junit, to_table
from lpfleet.spec import NodeSpec
from lpfleet.verification import (
    ExpectedRunner,
    WeightsWanted,
    gateway_checks,
    node_params,
    verify_host,
    weights_wanted_from_spec,
)
from lpfleet.verify_snapshot import NodeSnapshot

ENV_JSON = "LPFLEET_VERIFY_JSON"
ENV_JUNIT = "LPFLEET_VERIFY_JUNIT"
ENV_TABLE = "LPFLEET_VERIFY_TABLE"  # "0": no table (lpfleet verify prints its own), "full": every check


@dataclass
class RunResults:
    """What verification found in one pyinfra run (one State)."""

    started: float = field(default_factory=time.monotonic)
    results: dict[str, HostResult] = field(default_factory=dict)  # host name -> latest result
    executed: set[str] = field(default_factory=set)  # hosts whose result came from the execute stage
    snapshots: dict[str, NodeSnapshot] = field(
        default_factory=dict
    )  # prepare-time snapshots, reused when nothing ran
    gateway_docs: dict[str, tuple[dict | None, str]] = field(default_factory=dict)
    gateway_lock: threading.Lock = field(default_factory=threading.Lock)  # gevent-aware under pyinfra's CLI
    disconnected: int = 0
    printed: bool = False


_RESULTS = "verify-results"  # the key of this run's RunResults in its FleetPlan


def run_results(state: State) -> RunResults:
    """This run's results (created, with its end-of-run callback, on first use)."""

    def first_use() -> RunResults:
        state.add_callback_handler(_EndOfRun())
        return RunResults()

    return fleet_plan(state).run_state(_RESULTS, first_use)


def _existing(state: State) -> RunResults | None:
    return fleet_plan(state).existing_run_state(_RESULTS)


def final_results(state: State) -> list[HostResult]:
    """Every targeted host's result, in inventory order; hosts never verified say why."""
    run = _existing(state) or RunResults()
    out = []
    for target in state.inventory:
        if not state.is_host_in_limit(target):
            continue
        result = run.results.get(target.name)
        if target not in state.activated_hosts:
            out.append(unchecked(target.name, "could not connect"))
        elif state.is_executing and target.name not in run.executed:
            reason = (
                "an earlier step failed on this host, so verification did not run"
                if target in state.failed_hosts
                else "verification did not run on this host"
            )
            out.append(unchecked(target.name, reason))
        elif result is not None:
            out.append(result)
    return out


class _EndOfRun(BaseStateCallback):
    @staticmethod
    def host_disconnect(state: State, host: Any) -> None:
        run = _existing(state)
        if run is None or run.printed:
            return
        run.disconnected += 1
        if run.disconnected >= len(state.activated_hosts):
            run.printed = True
            publish(state)


def publish(state: State) -> list[HostResult]:
    """Print the table (stderr) and write the reports the environment asks for; returns the results."""
    run = _existing(state) or RunResults()
    results = final_results(state)
    elapsed = time.monotonic() - run.started
    mode = os.environ.get(ENV_TABLE, "")
    if mode != "0":
        when = "" if state.is_executing else " (as the nodes are now, before this run's changes)"
        sys.stderr.write(
            f"\n--> Verification{when}:\n" + to_table(results, elapsed_s=elapsed, compact=mode != "full")
        )
        sys.stderr.flush()
    for env, render in (
        (ENV_JSON, lambda: to_json(results, elapsed_s=round(elapsed, 3))),
        (ENV_JUNIT, lambda: to_junit(results, elapsed_s=elapsed)),
    ):
        path = os.environ.get(env)
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(render())
    return results


def _earlier_command_ran(state: State, target: Any) -> bool:
    for op_hash, data in state.ops.get(target, {}).items():
        meta = data.operation_meta
        if op_hash != target.current_op_hash and meta.is_complete() and meta.executed:
            return True
    return False


def _gateway(run: RunResults, spec: NodeSpec) -> list[Check]:
    if not (spec.verify.gateway_url and spec.verify.orchestrator_address):
        return []
    url = spec.verify.gateway_url.rstrip("/") + "/getNetworkCapabilities"
    with run.gateway_lock:
        if url not in run.gateway_docs:
            run.gateway_docs[url] = _fetch_gateway(url, spec)
    doc, error = run.gateway_docs[url]
    return gateway_checks(spec, doc, error=error)


def _fetch_gateway(url: str, spec: NodeSpec) -> tuple[dict | None, str]:
    """GET the gateway's capability list from the controller: (the document or None, why not)."""
    answer = probe(url, timeout_s=max(spec.verify.health_timeout_s, 10.0))
    if answer.status is None:
        return None, answer.error
    if answer.status != 200:
        return None, f"HTTP {answer.status}"
    try:
        return json.loads(answer.body), ""
    except ValueError:
        return None, "answer is not JSON"


def weights_wanted(spec: NodeSpec, lock: Any | None) -> list[WeightsWanted]:
    """Models whose weights must be complete: what models.lock pins for this node (extra models included, each
    file at its size, refs at the locked commit); without a lock, every hub model of the config (a complete,
    non-empty snapshot of refs/<branch>).

    + spec: the host's spec
    + lock: the run's lpfleet.lock.ModelsLock, or None
    """
    if lock is None:
        return weights_wanted_from_spec(spec)
    found, missing = models_for_node(lock, spec)
    wanted = [
        WeightsWanted(m.model_id, spec.weights.branch, m.commit, tuple((f.path, f.size) for f in m.files))
        for m in found
    ]
    return wanted + [WeightsWanted(r.model_id, spec.weights.branch) for r in missing]


def verify_request(spec: NodeSpec, runners: Sequence[ExpectedRunner], weights: Sequence[WeightsWanted]) -> FactRequest:
    """The NodeVerification fact node_verified reads (also the run's batch entry)."""
    return FactRequest(NodeVerification, {"params": encode_params(node_params(spec, runners, weights))})


def diagnose_lines(lines: Sequence[str]) -> list[Cause]:
    """lpfleet.diagnose over a container's last log lines."""
    return diagnose.diagnose("\n".join(lines))


@operation()
def node_verified(
    spec: NodeSpec,
    runners: Sequence[ExpectedRunner],
    weights: Sequence[WeightsWanted],
    secrets: Sequence[str] = (),
):
    """
    Verify a node (read-only) and fail the host when a check failed.

    + spec: the host's validated spec
    + runners: the runner containers go-livepeer starts for its warm models
    + weights: the models whose files must be complete in the models dir
    + secrets: values to mask in reported log lines (the spec's own secrets are always masked)
    """
    state = host.state
    run = run_results(state)
    reuse = (
        run.snapshots.get(host.name) if state.is_executing and not _earlier_command_ran(state, host) else None
    )
    snapshot: NodeSnapshot
    if reuse is not None:
        snapshot = reuse
    else:
        request = verify_request(spec, runners, weights)
        snapshot = known_fact(host, request.cls, **request.kwargs)
    if not state.is_executing:
        run.snapshots[host.name] = snapshot
    result = verify_host(
        spec, snapshot, runners, classify=diagnose_lines, secrets=secrets, gateway=_gateway(run, spec)
    )
    run.results[host.name] = result
    if state.is_executing:
        run.executed.add(host.name)
    bad = [check for check in result.checks if check.state in ("fail", "unknown")]
    if not bad:
        loading = sum(1 for check in result.checks if check.state == "loading")
        host.noop(f"verified: {len(result.checks)} checks pass" + (f", {loading} loading" if loading else ""))
        return
    summary = "; ".join(f"{check.check}: {check.detail}" for check in bad[:3])
    if len(bad) > 3:
        summary += f"; and {len(bad) - 3} more"
    note(f"fails verification now (checked again after the steps above): {summary}")
    yield StringCommand("echo", QuoteString(f"verification failed: {summary}"[:1500]), ">&2;", "exit", "1")


__all__ = ["node_verified", "run_results", "final_results", "publish", "exit_code", "ENV_JSON", "ENV_JUNIT"]
