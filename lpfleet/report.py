"""The three renderings of verification results: a table for people, JSON and JUnit XML for CI.

Pure: no I/O. Renders the result model of `lpfleet.checks` (re-exported here for the callers that read
results and render them in one place). Nothing here ever sees a secret: verification builds details from
facts that carry none, and masks known secret values in log lines before they become evidence.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Sequence
from xml.sax.saxutils import escape as _xml_escape
from xml.sax.saxutils import quoteattr as _xml_quoteattr

from lpfleet.checks import (
    PROBLEM_STATES,
    SCHEMA,
    STATES,
    Cause,
    Check,
    HostResult,
    exit_code,
    overall_status,
    results_from_json,
    summary,
)

__all__ = [
    "PROBLEM_STATES",
    "SCHEMA",
    "STATES",
    "Cause",
    "Check",
    "HostResult",
    "exit_code",
    "overall_status",
    "results_from_json",
    "summary",
    "to_json",
    "to_junit",
    "to_table",
    "verdict",
]


# ANSI/OSC escape sequences, then every C0/C1 control character but tab and newline: node-supplied text (log
# lines) must neither break the XML (XML 1.0 forbids them) nor drive the operator's terminal.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` without terminal escape sequences and control characters (tab and newline kept)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text))


def escape(text: str) -> str:
    return _xml_escape(printable(text))


def quoteattr(text: str) -> str:
    return _xml_quoteattr(printable(text))


def to_json(
    hosts: Sequence[HostResult],
    *,
    inventory: str = "",
    generated_at: datetime | None = None,
    elapsed_s: float | None = None,
    extra: dict | None = None,
) -> str:
    """The JSON report; its schema is documented in docs/verify.md (`schema` names the version)."""
    when = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    document = {
        "schema": SCHEMA,
        "generated_at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "inventory": inventory,
        "status": overall_status(hosts),
        "exit_code": exit_code(hosts),
        "elapsed_s": elapsed_s,
        "summary": summary(hosts),
        "hosts": [host.to_dict() for host in hosts],
    }
    if extra:
        document.update(extra)
    return json.dumps(document, indent=2, sort_keys=False) + "\n"


def to_junit(
    hosts: Sequence[HostResult], *, suite_name: str = "lpfleet verify", elapsed_s: float = 0.0
) -> str:
    """JUnit XML: one testsuite per host, one testcase per check.

    fail -> <failure>, unknown -> <error>, skip -> <skipped>; loading and warn pass with the detail in
    <system-out>, so a CI dashboard shows them without turning the build red.
    """
    total = sum(len(h.checks) for h in hosts)
    failures = sum(1 for h in hosts for c in h.checks if c.state == "fail")
    errors = sum(1 for h in hosts for c in h.checks if c.state == "unknown")
    skipped = sum(1 for h in hosts for c in h.checks if c.state == "skip")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<testsuites name={quoteattr(suite_name)} tests="{total}" failures="{failures}" '
        f'errors="{errors}" skipped="{skipped}" time="{elapsed_s:.3f}">',
    ]
    for host in hosts:
        h_fail = sum(1 for c in host.checks if c.state == "fail")
        h_err = sum(1 for c in host.checks if c.state == "unknown")
        h_skip = sum(1 for c in host.checks if c.state == "skip")
        out.append(
            f'  <testsuite name={quoteattr(host.host)} tests="{len(host.checks)}" failures="{h_fail}" '
            f'errors="{h_err}" skipped="{h_skip}">'
        )
        for check in host.checks:
            head = f"    <testcase classname={quoteattr(host.host)} name={quoteattr(check.check)}"
            body = _junit_body(check)
            out.append(head + ("/>" if not body else ">"))
            if body:
                out.extend(body)
                out.append("    </testcase>")
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def _junit_body(check: Check) -> list[str]:
    text = "\n".join([check.detail] + [f"{c.cause}: {c.line}\n  fix: {c.hint}" for c in check.causes])
    if check.state == "fail":
        return [f'      <failure message={quoteattr(check.detail)} type="fail">{escape(text)}</failure>']
    if check.state == "unknown":
        return [
            f'      <error message={quoteattr(check.detail)} type="could-not-check">{escape(text)}</error>'
        ]
    if check.state == "skip":
        return [f"      <skipped message={quoteattr(check.detail)}/>"]
    if check.state in ("loading", "warn"):
        return [f"      <system-out>{escape(check.state + ': ' + text)}</system-out>"]
    return []


_MARK = {
    "ok": "ok",
    "skip": "skip",
    "loading": "LOADING",
    "warn": "WARN",
    "fail": "FAIL",
    "unknown": "UNKNOWN",
}


def to_table(
    hosts: Sequence[HostResult], *, width: int = 160, elapsed_s: float | None = None, compact: bool = True
) -> str:
    """The table a person reads at the end of a run, and a one-line verdict.

    Compact (the default): every check that is not ok gets its row, with each diagnosed cause and its fix
    under it; the ok checks of a host are folded into one row. `compact=False` lists every check.
    """
    rows: list[tuple[str, str, str, str]] = []
    notes: dict[int, list[str]] = {}
    for host in hosts:
        folded = [check for check in host.checks if compact and check.state == "ok"]
        for check in host.checks:
            if check in folded:
                continue
            rows.append((host.host, check.check, _MARK[check.state], printable(check.detail)))
            if check.causes:
                notes[len(rows) - 1] = [
                    printable(text)
                    for c in check.causes
                    for text in (f"{c.cause}: {c.line.strip()}", f"  fix: {c.hint}")
                ]
        if folded:
            names = ", ".join(_fold_names(folded))
            label = (
                f"all {len(folded)} checks"
                if len(folded) == len(host.checks)
                else f"{len(folded)} other checks"
            )
            rows.append((host.host, label, "ok", names))
    headers = ("HOST", "CHECK", "STATE", "DETAIL")
    w_host = max([len(headers[0])] + [len(r[0]) for r in rows])
    w_check = min(64, max([len(headers[1])] + [len(r[1]) for r in rows]))
    w_state = max([len(headers[2])] + [len(r[2]) for r in rows])
    w_detail = max(20, width - w_host - w_check - w_state - 6)
    lines = [
        _row(headers, w_host, w_check, w_state, w_detail),
        _row(
            ("-" * w_host, "-" * w_check, "-" * w_state, "-" * min(w_detail, 40)),
            w_host,
            w_check,
            w_state,
            w_detail,
        ),
    ]
    indent = " " * (w_host + w_check + w_state + 6)
    for index, row in enumerate(rows):
        lines.append(_row(row, w_host, w_check, w_state, w_detail))
        for note in notes.get(index, []):
            lead = note[: len(note) - len(note.lstrip())]
            lines.append(indent + lead + _clip(note, w_detail - len(lead)))
    lines.append("")
    lines.append(verdict(hosts, elapsed_s=elapsed_s))
    return "\n".join(lines) + "\n"


def _fold_names(checks: Sequence[Check]) -> list[str]:
    """Folded ok checks by kind: "gpus, docker, worker, 2 runners, 3 weights"."""
    kinds: dict[str, int] = {}
    for check in checks:
        first = check.check.split(" ")[0]
        kind = first if first in _COUNTED else check.check
        kinds[kind] = kinds.get(kind, 0) + 1
    return [
        f"{count} {_COUNTED[kind]}" if kind in _COUNTED and count > 1 else kind
        for kind, count in kinds.items()
    ]


_COUNTED = {
    "runner": "runners",
    "weights": "weights",
    "external": "externals",
    "gateway": "gateway models",
    "worker": "workers",
}


def verdict(hosts: Sequence[HostResult], *, elapsed_s: float | None = None) -> str:
    counts = summary(hosts)
    parts = [f"{counts['hosts']} host{'s' if counts['hosts'] != 1 else ''}: {counts['healthy']} healthy"]
    if counts["problems"]:
        bad = ", ".join(h.host for h in hosts if h.status == "problems")
        parts.append(f"{counts['problems']} with problems ({bad})")
    if counts["unchecked"]:
        bad = ", ".join(h.host for h in hosts if h.status == "unchecked")
        parts.append(f"{counts['unchecked']} could not be checked ({bad})")
    loading = counts["checks"]["loading"]
    if loading:
        parts.append(f"{loading} runner{'s' if loading != 1 else ''} still loading")
    text = "verify: " + "; ".join(parts)
    if elapsed_s is not None:
        text += f" ({elapsed_s:.1f} s)"
    return text


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(0, width - 3)] + "..."


def _row(cells: tuple[str, str, str, str], w_host: int, w_check: int, w_state: int, w_detail: int) -> str:
    host, check, state, detail = cells
    return (
        f"{host:<{w_host}}  {_clip(check, w_check):<{w_check}}  {state:<{w_state}}  {_clip(detail, w_detail)}"
    ).rstrip()
