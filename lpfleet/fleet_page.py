"""The fleet page: one self-contained HTML file of a verification (and a rollout), for people and CI
artifacts.

Pure: no I/O. `lpfleet verify --html FILE` and `lpfleet rollout --html FILE` write what `render_fleet_page`
returns. The page needs nothing but itself: CSS inline, no script, no font, image or link to fetch, so it
opens offline from a CI artifact store. Every value that reaches it is escaped: evidence lines are log text
from nodes and may hold anything.

Layout: a header (inventory, verdict, when it was taken and how long it took), the grid of hosts by checks
coloured by state, every check that is not ok with its detail and each diagnosed cause (evidence line, cause,
fix), and for a rollout its batches as a timeline. Stable hooks for tests and scrapers: `data-host` on grid
rows, `data-check` / `data-state` on cells and problem entries, `data-batch` on timeline bars.
"""

from __future__ import annotations

from datetime import datetime, timezone
from html import escape
from typing import Mapping, Sequence

from lpfleet.checks import STATES, Check, HostResult, overall_status, summary

# state -> (background, text colour, label)
_COLOURS = {
    "ok": ("#1f883d", "#ffffff", "ok"),
    "skip": ("#d0d7de", "#24292f", "skip"),
    "loading": ("#0969da", "#ffffff", "loading"),
    "warn": ("#bf8700", "#ffffff", "warn"),
    "fail": ("#cf222e", "#ffffff", "FAIL"),
    "unknown": ("#6e40c9", "#ffffff", "unknown"),
}
_PROBLEM_ORDER = ("fail", "unknown", "warn", "loading")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px;color:#24292f;
background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de;
padding-bottom:4px}
.meta{color:#57606a;font-size:13px} .verdict{display:inline-block;padding:3px 10px;border-radius:12px;
font-weight:600;margin:8px 0}
.v-healthy{background:#1f883d;color:#fff} .v-problems{background:#cf222e;color:#fff}
.v-unchecked{background:#6e40c9;color:#fff}
.counts span{margin-right:14px;font-size:13px}
.grid{border-collapse:collapse;font-size:12px} .grid th,.grid td{border:1px solid #d0d7de;padding:4px 6px}
.grid th.check{vertical-align:bottom;font-weight:500;padding:4px 2px}
.grid th.check div{writing-mode:vertical-rl;transform:rotate(180deg);max-height:230px;overflow:hidden;
text-overflow:ellipsis;white-space:nowrap;margin:0 auto}
.grid th.host{text-align:left;white-space:nowrap}
.cell{text-align:center;font-weight:600;min-width:28px} .none{background:#f6f8fa;color:#8c959f}
.problem{border:1px solid #d0d7de;border-left:6px solid;border-radius:6px;padding:8px 12px;margin:8px 0}
.problem h3{font-size:14px;margin:0 0 4px} .problem .detail{font-size:13px}
.cause{margin:6px 0 0 0;font-size:13px} .cause code{font-weight:600}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:4px;padding:6px 8px;margin:4px 0;
white-space:pre-wrap;word-break:break-all;font-size:12px}
.fix{color:#1a7f37} .legend span{display:inline-block;padding:1px 8px;margin-right:6px;border-radius:3px;
font-size:12px}
.timeline{position:relative;border:1px solid #d0d7de;border-radius:6px;padding:8px;font-size:12px}
.lane{position:relative;height:30px;margin:4px 0} .lane .label{position:absolute;left:0;width:250px;
line-height:30px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.lane .track{position:absolute;left:260px;right:0;top:0;bottom:0;background:#f6f8fa;border-radius:3px}
.bar{position:absolute;box-sizing:border-box;top:3px;bottom:3px;border-radius:3px;color:#fff;padding:0 6px;
line-height:24px;
white-space:nowrap;overflow:hidden;text-overflow:ellipsis;min-width:4px}
.notes{font-size:13px} .notes li{margin:2px 0}
"""


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _when(generated_at: datetime | None) -> str:
    when = (generated_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


def _columns(hosts: Sequence[HostResult]) -> list[str]:
    names: dict[str, None] = {}
    for host in hosts:
        for check in host.checks:
            names.setdefault(check.check)
    return list(names)


def _grid(hosts: Sequence[HostResult]) -> list[str]:
    columns = _columns(hosts)
    out = ['<table class="grid" id="grid">', '<thead><tr><th class="host">host</th><th>status</th>']
    out += [f'<th class="check" title="{_e(c)}"><div>{_e(c)}</div></th>' for c in columns]
    out.append("</tr></thead><tbody>")
    for host in hosts:
        by_name = {c.check: c for c in host.checks}
        status_colour = {"healthy": "ok", "problems": "fail", "unchecked": "unknown"}[host.status]
        bg, fg, _ = _COLOURS[status_colour]
        out.append(
            f'<tr data-host="{_e(host.host)}" data-status="{_e(host.status)}">'
            f'<th class="host">{_e(host.host)}</th>'
            f'<td class="cell" style="background:{bg};color:{fg}">{_e(host.status)}</td>'
        )
        for name in columns:
            check = by_name.get(name)
            if check is None:
                out.append('<td class="cell none" title="not checked on this host">&middot;</td>')
                continue
            bg, fg, label = _COLOURS[check.state]
            out.append(
                f'<td class="cell" data-check="{_e(name)}" data-state="{_e(check.state)}" '
                f'style="background:{bg};color:{fg}" '
                f'title="{_e(name + ": " + check.detail)}">{_e(label)}</td>'
            )
        out.append("</tr>")
    out.append("</tbody></table>")
    return out


def _problem(check: Check) -> list[str]:
    colour = _COLOURS[check.state][0]
    out = [
        f'<div class="problem" data-host="{_e(check.host)}" data-check="{_e(check.check)}" '
        f'data-state="{_e(check.state)}" style="border-left-color:{colour}">',
        f"<h3>{_e(check.host)} &middot; {_e(check.check)} &middot; "
        f'<span style="color:{colour}">{_e(_COLOURS[check.state][2])}</span></h3>',
        f'<div class="detail">{_e(check.detail)}</div>',
    ]
    for cause in check.causes:
        out += [
            f'<div class="cause" data-cause="{_e(cause.cause)}">'
            f"cause <code>{_e(cause.cause)}</code>, evidence:",
            f"<pre>{_e(cause.line.rstrip())}</pre>",
            f'<div class="fix">fix: {_e(cause.hint)}</div></div>',
        ]
    out.append("</div>")
    return out


def _problems(hosts: Sequence[HostResult]) -> list[str]:
    checks = [c for state in _PROBLEM_ORDER for h in hosts for c in h.checks if c.state == state]
    if not checks:
        return ["<p>Every check is ok.</p>"]
    out: list[str] = []
    for check in checks:
        out += _problem(check)
    return out


def _timeline(rollout: Mapping) -> list[str]:
    batches = list(rollout.get("batches") or [])
    total = max([b.get("started_s", 0) + (b.get("duration_s") or 0) for b in batches] + [0.0])
    out = [
        f'<p class="meta">status <b>{_e(rollout.get("status", ""))}</b>; '
        f"{len(batches)} batch{'es' if len(batches) != 1 else ''}"
        + (f", {total:.0f} s" if total else "")
        + "</p>",
        '<div class="timeline" id="timeline">',
    ]
    for batch in batches:
        index = batch.get("index")
        hosts = ", ".join(batch.get("hosts") or [])
        failed = batch.get("failed") or {}
        if not batch.get("ran"):
            state, label = "skip", "not run"
        elif failed:
            state, label = "fail", f"{len(failed)} failed"
        else:
            state, label = "ok", "verified healthy"
        start = batch.get("started_s")
        duration = batch.get("duration_s")
        if total and start is not None and duration is not None:
            left, width = 100 * start / total, max(0.5, 100 * duration / total)
            timing = f"{start:.0f} s + {duration:.0f} s"
        else:
            left, width, timing = 0.0, 100.0, ""
        bg, fg, _ = _COLOURS[state]
        out.append(
            f'<div class="lane"><div class="label" title="{_e(hosts)}">batch {_e(index)}: {_e(hosts)}</div>'
            f'<div class="track"><div class="bar" data-batch="{_e(index)}" data-state="{_e(state)}" '
            f'style="left:{left:.2f}%;width:{width:.2f}%;background:{bg};color:{fg}" '
            f'title="{_e(label + (" (" + timing + ")" if timing else ""))}">{_e(label)}'
            f"{_e(' - ' + timing) if timing else ''}</div></div></div>"
        )
        for host, why in failed.items():
            out.append(f'<div class="meta" style="margin-left:260px">{_e(host)}: {_e(why)}</div>')
    out.append("</div>")
    notes = []
    coverage = rollout.get("coverage") or {}
    for item in coverage.get("shared") or []:
        notes.append(
            f"zero downtime: {item['model']} warm on {', '.join(item['hosts'])}; at most "
            f"{item['max_in_batch']} of them in a batch"
        )
    for item in coverage.get("single_node") or []:
        notes.append(
            f"{item['model']} is warm on {item['host']} only: down while it converges (changed last)"
        )
    if rollout.get("untouched"):
        notes.append("not touched: " + ", ".join(rollout["untouched"]))
    if rollout.get("unchanged"):
        notes.append("no changes (left alone): " + ", ".join(rollout["unchanged"]))
    if notes:
        out.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")
    return out


def render_fleet_page(
    hosts: Sequence[HostResult],
    *,
    inventory: str = "",
    generated_at: datetime | None = None,
    elapsed_s: float | None = None,
    rollout: Mapping | None = None,
    title: str = "lpfleet fleet page",
) -> str:
    """The whole page as one string (UTF-8 HTML5, nothing external)."""
    status = overall_status(hosts) if hosts else "unchecked"
    counts = summary(hosts)
    when = _when(generated_at)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # nothing may be fetched: the page is opened offline from CI artifacts
        "<meta http-equiv=\"Content-Security-Policy\" "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
        f"<title>{_e(title)}{(' - ' + _e(inventory)) if inventory else ''}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<div class="meta">inventory <b>{_e(inventory or "-")}</b> &middot; taken <time id="taken" '
        f'datetime="{_e(when)}">{_e(when)}</time>'
        + (f" &middot; took {elapsed_s:.1f} s" if elapsed_s is not None else "")
        + "</div>",
        f'<div class="verdict v-{_e(status)}" id="verdict">{_e(status)}: {counts["hosts"]} hosts, '
        f"{counts['healthy']} healthy, {counts['problems']} with problems, "
        f"{counts['unchecked']} unchecked</div>",
        '<div class="counts">'
        + "".join(f"<span>{_e(state)}: {counts['checks'][state]}</span>" for state in STATES)
        + "</div>",
        '<div class="legend meta">'
        + "".join(
            f'<span style="background:{bg};color:{fg}">{_e(label)}</span>'
            for bg, fg, label in _COLOURS.values()
        )
        + "</div>",
        "<h2>Hosts by checks</h2>",
        *_grid(hosts),
        '<h2 id="problems">Problems</h2>',
        *_problems(hosts),
    ]
    if rollout is not None:
        parts += ['<h2 id="rollout">Rollout</h2>', *_timeline(rollout)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
