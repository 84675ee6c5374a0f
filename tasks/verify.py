"""Step 6: verify the node, read-only: GPUs, runtime, worker, runners and their /health, external URLs, weights.

Last step of deploy.py and the whole of verify.py. One round-trip per host; a healthy node is "No changes",
a failed check fails the host. The table of every host's checks is printed when pyinfra is done.
"""

from __future__ import annotations

import os

from pyinfra.api import deploy

from lpfleet.fleet_plan import NodePlan
from lpfleet.lock import LockError, ModelsLock
from lpfleet.operations.verify import node_verified, weights_wanted
from lpfleet.verification import expected_runners


@deploy("Verify")
def verify_node(plan: NodePlan) -> None:
    spec = plan.spec
    lock: ModelsLock | None
    try:
        lock = plan.lock()
    except LockError:  # no models.lock: check the snapshots the config names (verification never stops on it)
        lock = None
    token = os.environ.get(spec.weights.hf_token_env, "")
    node_verified(
        name="Verify the node (read-only)",
        spec=spec,
        runners=expected_runners(spec),
        weights=weights_wanted(spec, lock),
        secrets=[token] if token else [],
    )
