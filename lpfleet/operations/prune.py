"""Remove, on a node, the snapshots and blobs models.lock no longer names (weights step, `weights_prune`)."""

from __future__ import annotations

from collections.abc import Sequence

from pyinfra import host, logger
from pyinfra.api import OperationError, QuoteString, StringCommand, operation

from lpfleet.facts.prune import PruneScan, encode_request, node_program
from lpfleet.lock import LockedModel
from lpfleet.prune import plan_prune, scan_request


@operation()
def weights_pruned(models: Sequence[LockedModel], models_dir: str, branch: str = "main"):
    """
    Remove the node's snapshots and blobs of locked repos that the lock does not name.

    Runs after the fetch, which leaves `refs/<branch>` on the locked commit (or fails the host before this
    runs), so the plan does not wait for the ref. Repo folders of models outside the lock are never read.

    + models: the locked models of the node
    + models_dir: the node's models dir
    + branch: the ref the runner reads
    """
    scan = host.get_fact(
        PruneScan, params=encode_request({"models_dir": models_dir, "folders": scan_request(models)})
    )
    if "error" in scan:
        raise OperationError(f"weights prune: cannot read {models_dir}: {scan['error']}")
    plan = plan_prune(models, scan, branch, ref_follows_lock=True)
    if plan.empty:
        host.noop(f"weights prune: nothing outside the lock in {models_dir}")
        return
    for repo in plan.repos:
        if repo.removals:
            host.log(f"weights prune: {repo.summary()}", logger.info)
    request = encode_request({"models_dir": models_dir, "paths": [r.path for r in plan.removals]})
    yield StringCommand(
        "python3", "-c", QuoteString(node_program()), "remove", QuoteString(request), ">/dev/null"
    )
