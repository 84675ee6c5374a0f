"""aiModels.json from a validated spec: rendered with Jinja2, parsed back and checked again.

Pure apart from reading the template file. The template decides the file's layout; the
spec decides its content: the rendered entries must parse back to exactly the spec's
entries and pass the same rules (`lpfleet.rules.check_entries`) before the file is used.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2

from lpfleet.rules import check_entries, has_errors, loads_preserving
from lpfleet.spec import NodeSpec, node_context


class RenderError(ValueError):
    """The template cannot be rendered, or its output is not what the spec says."""


@functools.lru_cache(maxsize=8)
def _environment(root: str) -> jinja2.Environment:
    # one per project root: a fleet of 1000 hosts compiles each template once (the loader still
    # notices an edited template by its mtime)
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(root),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def template_context(spec: NodeSpec, masked: bool = False) -> dict[str, Any]:
    """What a template sees: `entries` (set fields only), `host`, `groups`. No other secret."""
    entries = [e.masked_dict() if masked else e.to_json_dict() for e in spec.models]
    return {"entries": entries, "host": spec.host, "groups": list(spec.groups)}


def _template_name(spec: NodeSpec) -> str:
    path = PurePosixPath(spec.ai_models_template)
    if path.is_absolute() or ".." in path.parts:
        raise RenderError(
            f"{spec.host}: ai_models_template: {spec.ai_models_template!r} must be a path inside the project"
        )
    return str(path)


def render_ai_models(spec: NodeSpec, project_root: str | Path, masked: bool = False) -> str:
    """The aiModels.json text for the node, checked: tokens revealed unless `masked`.

    Raises RenderError naming the host and template when rendering fails, the output is not
    JSON, breaks a rule, or does not hold exactly the spec's entries.
    """
    name = _template_name(spec)
    env = _environment(str(project_root))
    context = template_context(spec, masked=masked)
    try:
        text = env.get_template(name).render(**context)
    except jinja2.TemplateNotFound:
        raise RenderError(f"{spec.host}: ai_models_template: {name} not found under {project_root}") from None
    except jinja2.TemplateError as exc:
        # the message may quote template source, never values: StrictUndefined names the variable
        raise RenderError(f"{spec.host}: {name}: {exc.__class__.__name__}: {exc.message}") from None
    if not text.endswith("\n"):
        text += "\n"
    check_rendered(spec, name, text, context["entries"])
    return text


def check_rendered(spec: NodeSpec, template: str, text: str, expected: list[dict[str, Any]]) -> None:
    """Parse the rendered text back and check it as go-livepeer would read it."""
    try:
        parsed = loads_preserving(text)
    except ValueError as exc:
        raise RenderError(f"{spec.host}: {template} rendered invalid JSON: {exc}") from None
    findings = check_entries(parsed, node_context(spec))
    if has_errors(findings):
        lines = [f.format(f"{spec.host}: {template} output") for f in findings if f.is_error]
        raise RenderError("\n".join(lines))
    plain = json.loads(text)
    if plain != expected:
        for index in range(max(len(plain), len(expected))):
            got = plain[index] if index < len(plain) else None
            want = expected[index] if index < len(expected) else None
            if got != want:
                raise RenderError(
                    f"{spec.host}: {template} output differs from the spec at entry {index}: "
                    "a template may change the layout, not the entries"
                )
