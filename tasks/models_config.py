"""Step 3: the node's aiModels.json (rendered from its group's template and checked by the plan), written atomically
with mode 0600."""

from __future__ import annotations

from pyinfra.api import deploy

from lpfleet.fleet_plan import NodePlan
from lpfleet.operations.files import hidden, secret_file
from lpfleet.secrets import secret_values


@deploy("aiModels.json")
def write_ai_models_config(plan: NodePlan) -> None:
    spec = plan.spec
    secret_file(
        name=f"Write {spec.ai_models_path} (mode 0600)",
        dest=spec.ai_models_path,
        content=hidden(plan.ai_models_json),
        mode="600",
        secrets=[hidden(s) for s in secret_values(spec)],
    )
