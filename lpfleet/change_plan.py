"""`lpfleet plan`'s model: what a converge would change, per host and step, in words; table, JSON, Markdown.

Pure: no I/O. Built from pyinfra's own dry-run plan (`pyinfra --dry --json`: per operation, the hosts it would
change) and the notes operations record while pyinfra plans (lpfleet.operations.plan_notes: package versions,
daemon.json keys, the masked aiModels.json diff, weights to fetch with their bytes, the worker to recreate and
why), joined on (host, operation hash).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

SCHEMA = "lpfleet.plan/1"


@dataclass(frozen=True)
class Note:
    text: str
    lines: tuple[str, ...] = ()


@dataclass
class StepChange:
    step: str  # pyinfra's operation name, "AI worker | Worker container livepeer_ai_worker"
    conditional: bool = False  # pyinfra: changes only if an earlier operation changes something
    notes: list[Note] = field(default_factory=list)


@dataclass
class HostPlan:
    host: str
    steps: list[StepChange] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.steps)


def build_plan(
    hosts: Sequence[str], pyinfra_plan: Sequence[Mapping], notes: Iterable[Mapping]
) -> list[HostPlan]:
    """Per host (inventory order), the operations pyinfra says would change it, with the notes they recorded.

    A note of an operation pyinfra does not list as a change for that host (an operation that explains why it
    skips something) is left out: the plan shows changes only.
    """
    by_key: dict[tuple[str, str | None], list[Note]] = {}
    for record in notes:
        key = (str(record.get("host")), record.get("op_hash"))
        by_key.setdefault(key, []).append(Note(str(record.get("text", "")), tuple(record.get("lines") or ())))
    plans = {name: HostPlan(name) for name in hosts}
    for op in pyinfra_plan:
        for conditional, names in (
            (False, op.get("hosts_with_change") or []),
            (True, op.get("hosts_with_conditional_change") or []),
        ):
            for name in names:
                if name not in plans:
                    plans[name] = HostPlan(name)
                key = (name, op.get("op_hash"))
                plans[name].steps.append(
                    StepChange(
                        str(op.get("name") or op.get("op_hash")), conditional, list(by_key.get(key, []))
                    )
                )
    return list(plans.values())


def summary_line(plans: Sequence[HostPlan]) -> str:
    changing = [p for p in plans if p.changes]
    steps = sum(len(p.steps) for p in plans)
    if not changing:
        return f"plan: no changes on any of {len(plans)} host{'s' if len(plans) != 1 else ''}"
    return (
        f"plan: {len(changing)} of {len(plans)} host{'s' if len(plans) != 1 else ''} would change "
        f"({steps} operation{'s' if steps != 1 else ''}); unchanged: "
        + (", ".join(p.host for p in plans if not p.changes) or "none")
    )


def to_text(plans: Sequence[HostPlan]) -> str:
    out = []
    for plan in plans:
        if not plan.changes:
            out.append(f"{plan.host}: no changes")
            continue
        out.append(f"{plan.host}:")
        for step in plan.steps:
            out.append(f"  {step.step}" + (" (if an earlier step changes)" if step.conditional else ""))
            if not step.notes:
                out.append("      would run (the operation says no more)")
            for note in step.notes:
                out.append(f"      {note.text}")
                out.extend(f"        {line}" for line in note.lines)
    out.append("")
    out.append(summary_line(plans))
    return "\n".join(out) + "\n"


def to_json(plans: Sequence[HostPlan], *, inventory: str = "") -> str:
    document = {
        "schema": SCHEMA,
        "inventory": inventory,
        "summary": summary_line(plans),
        "hosts": [
            {
                "host": p.host,
                "changes": p.changes,
                "steps": [
                    {
                        "step": s.step,
                        "conditional": s.conditional,
                        "notes": [{"text": n.text, "lines": list(n.lines)} for n in s.notes],
                    }
                    for s in p.steps
                ],
            }
            for p in plans
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _md(text: str) -> str:
    """Table-cell text: no pipes or newlines, no HTML."""
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def to_markdown(plans: Sequence[HostPlan], *, inventory: str = "") -> str:
    """For a pull-request comment: a table of host, step and change, diffs folded under each host."""
    out = [
        f"### lpfleet plan{(' for `' + inventory + '`') if inventory else ''}",
        "",
        summary_line(plans),
        "",
    ]
    changing = [p for p in plans if p.changes]
    if changing:
        out += ["| host | step | change |", "|---|---|---|"]
        for plan in changing:
            for step in plan.steps:
                words = "; ".join(n.text for n in step.notes) or "would run"
                if step.conditional:
                    words += " (if an earlier step changes)"
                out.append(f"| {_md(plan.host)} | {_md(step.step)} | {_md(words)} |")
        for plan in changing:
            for note in (n for s in plan.steps for n in s.notes if n.lines):
                fence = "```"
                body = "\n".join(note.lines).replace(fence, "`` `")
                out += [
                    "",
                    f"<details><summary>{_md(plan.host)}: {_md(note.text)}</summary>",
                    "",
                    f"{fence}diff" if any(x[:1] in "+-@" for x in note.lines) else fence,
                    body,
                    fence,
                    "",
                    "</details>",
                ]
    return "\n".join(out) + "\n"
