"""Step 5: the go-livepeer AI worker container, with flags from the spec, recreated only when its config changed.

The worker's config label includes the sha256 of the aiModels.json the plan rendered for the models_config step, so
a run that changes the file also recreates the worker (decided before any command runs, as pyinfra plans).
One fact round-trip per host.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from lpfleet.facts.batch import known_fact
from lpfleet.facts.worker import worker_request
from lpfleet.fleet_plan import NodePlan
from lpfleet.operations.worker import orch_secret_file, worker_container
from lpfleet.worker_plan import worker_plan


@deploy("AI worker")
def run_ai_worker(node: NodePlan) -> None:
    spec = node.spec
    plan = worker_plan(spec, node.ai_models_sha256)
    request = worker_request(plan)
    current = known_fact(host, request.cls, **request.kwargs)
    if spec.worker.orch_secret is not None:
        orch_secret_file(
            name="Orch secret file (0600, read by -orchSecret)",
            path=plan.secret_path,
            secret=spec.worker.orch_secret,
            current_sha256=current.secret_sha256,
            current_mode=current.secret_mode,
        )
    worker_container(name=f"Worker container {plan.name}", plan=plan, current=current)
