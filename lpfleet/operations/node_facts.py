"""Every fact a converge of deploy.py reads from a node, asked for in ONE round-trip per host.

A converged node's run is then one batched command per host (lpfleet.facts.batch) instead of one per step: the
container host snapshot (docker_engine, nvidia_toolkit), aiModels.json's digest (models_config), the models dir
scan (weights), the worker container (worker) and the verify snapshot (verify). Each step still asks for its own
fact with the same arguments; it gets the batch's answer while nothing has run on the host, else the node's answer
now. The requests are built by the same functions the steps use, so they cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from lpfleet.facts.batch import FactRequest, prefetch
from lpfleet.facts.docker import snapshot_request
from lpfleet.facts.files import FileDigest
from lpfleet.facts.worker import worker_request
from lpfleet.fleet_plan import NodePlan
from lpfleet.lock import LockError
from lpfleet.operations.verify import verify_request, weights_wanted
from lpfleet.operations.weights import scan_fact_request
from lpfleet.verification import expected_runners
from lpfleet.worker_plan import worker_plan


def node_fact_requests(plan: NodePlan) -> list[FactRequest]:
    """What deploy.py's steps will read from this host, in step order."""
    spec = plan.spec
    requests = [
        snapshot_request(spec),
        FactRequest(FileDigest, {"path": spec.ai_models_path}),
    ]
    try:
        lock = plan.lock()
    except LockError:
        lock = None
    if lock is not None:
        try:
            requests.append(scan_fact_request(plan.locked_models(), spec.models_dir))
        except LockError:
            pass  # the weights step stops this host with the lock's message; nothing to read for it
    requests.append(worker_request(worker_plan(spec, plan.ai_models_sha256)))
    requests.append(verify_request(spec, expected_runners(spec), weights_wanted(spec, lock)))
    return requests


def prefetch_node_facts(host: Any, plan: NodePlan) -> int:
    """Read every step's fact of `host` in one round-trip; returns how many answers were kept."""
    return prefetch(host, node_fact_requests(plan))
