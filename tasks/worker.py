"""Step 5: the go-livepeer AI worker container, with flags from the spec, recreated only when its config changed.

The aiModels.json content it reads is rendered here exactly as the models_config step renders it, so a run
that changes the file also recreates the worker (decided before any command runs, as pyinfra plans).
One fact round-trip per host.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from lpfleet.facts.worker import WorkerContainer
from lpfleet.fleet import FleetError, template_root_for, template_roots
from lpfleet.operations.worker import orch_secret_file, sha256_text, worker_container, worker_plan
from lpfleet.render import RenderError, render_ai_models
from lpfleet.spec import NodeSpec


def ai_models_text(spec: NodeSpec) -> str:
    """The aiModels.json the node gets, rendered as tasks/models_config.py renders it (only its sha256 is used)."""
    try:
        return render_ai_models(spec, template_root_for(spec, template_roots()))
    except RenderError as exc:
        raise FleetError([str(exc)]) from None


@deploy("AI worker")
def run_ai_worker(spec: NodeSpec) -> None:
    plan = worker_plan(spec, sha256_text(ai_models_text(spec)))
    current = host.get_fact(
        WorkerContainer,
        container=plan.name,
        image=plan.image,
        ai_models_path=plan.ai_models_path,
        secret_path=plan.secret_path,
    )
    if spec.worker.orch_secret is not None:
        orch_secret_file(
            name="Orch secret file (0600, read by -orchSecret)",
            path=plan.secret_path,
            secret=spec.worker.orch_secret,
            current_sha256=current.secret_sha256,
            current_mode=current.secret_mode,
        )
    worker_container(name=f"Worker container {plan.name}", plan=plan, current=current)
