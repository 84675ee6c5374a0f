"""Step 3: the node's aiModels.json, rendered from its group's template, checked, written atomically with mode 0600."""

from __future__ import annotations

from pyinfra.api import deploy

from lpfleet.fleet import FleetError, template_root_for, template_roots
from lpfleet.operations.files import secret_file
from lpfleet.render import RenderError, render_ai_models
from lpfleet.secrets import hidden, secret_values
from lpfleet.spec import NodeSpec


@deploy("aiModels.json")
def write_ai_models_config(spec: NodeSpec) -> None:
    try:
        text = render_ai_models(spec, template_root_for(spec, template_roots()))
    except RenderError as exc:  # already caught by the inventory guard when it runs; stop cleanly if not
        raise FleetError([str(exc)]) from None
    secret_file(
        name=f"Write {spec.ai_models_path} (mode 0600)",
        dest=spec.ai_models_path,
        content=hidden(text),
        mode="600",
        secrets=[hidden(s) for s in secret_values(spec)],
    )
