"""`lpfleet verify INVENTORY [--json FILE] [--junit FILE] [--html FILE] [--wait S]`: read-only verification.

Runs `pyinfra -y INVENTORY verify.py` - the same verification as a plain pyinfra run, one code path - with
its table turned off and its JSON report written to a temporary file, then prints the table itself and
writes the reports asked for. Exit 0 healthy, 1 problems found, 2 could not check (a host unreachable, or
pyinfra stopped before verifying: its output is shown then).

`--wait S` re-checks hosts with runners still LOADING (every 5 s, only those hosts) until they settle or S
seconds pass: right after a deploy the runners load their models, and a gate wants the settled answer.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from lpfleet.report import HostResult, exit_code, results_from_json, to_json, to_junit, to_table

RECHECK_EVERY_S = 5.0


@dataclass
class VerifyRun:
    results: list[HostResult]
    elapsed_s: float
    output: str  # pyinfra's own output (shown when it produced no report)
    ok: bool  # a report was produced


def pyinfra_command() -> list[str]:
    """The pyinfra CLI beside this Python (the script, by name: lpfleet.fleet's inventory guard looks for it)."""
    script = Path(sys.executable).parent / "pyinfra"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pyinfra"]


def default_verify_deploy() -> Path:
    """verify.py in the working directory, else the one beside the lpfleet package (a source checkout)."""
    here = Path.cwd() / "verify.py"
    if here.is_file():
        return here
    checkout = Path(__file__).resolve().parents[2] / "verify.py"
    # a pip-installed lpfleet has no checkout: the starter's verify.py (the same file) runs its steps
    return checkout if checkout.is_file() else Path(__file__).resolve().parents[1] / "starter" / "verify.py"


def run_pyinfra_verify(
    inventory: str,
    deploy: Path,
    limit: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    timeout_s: float = 900,
    pyinfra_args: list[str] | None = None,
) -> VerifyRun:
    """One `pyinfra -y INVENTORY verify.py` run; its results read back from the JSON report it writes."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lpfleet-verify-") as tmp:
        report = os.path.join(tmp, "report.json")
        env = dict(os.environ)
        env.update(extra_env or {})
        env.update({"LPFLEET_VERIFY_JSON": report, "LPFLEET_VERIFY_TABLE": "0"})
        env.pop("LPFLEET_VERIFY_JUNIT", None)
        command = [*pyinfra_command(), "-y", *(pyinfra_args or []), inventory, str(deploy)]
        for name in limit or []:
            command += ["--limit", name]
        try:
            proc = subprocess.run(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout_s,
            )
            output = proc.stdout
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or "") if isinstance(exc.stdout, str) else ""
            output += f"\npyinfra did not finish within {timeout_s:.0f} s"
        elapsed = time.monotonic() - started
        if not os.path.exists(report):
            return VerifyRun([], elapsed, output, False)
        with open(report, encoding="utf-8") as handle:
            return VerifyRun(results_from_json(handle.read()), elapsed, output, True)


def verify_fleet(
    inventory: str, deploy: Path, limit: list[str] | None = None, wait_s: float = 0.0, say=lambda text: None
) -> VerifyRun:
    """Verify, then re-verify the hosts whose runners are still loading until they settle or wait_s passes."""
    started = time.monotonic()
    run = run_pyinfra_verify(inventory, deploy, limit)
    if not run.ok:
        return run
    results = {r.host: r for r in run.results}
    while True:
        loading = [name for name, r in results.items() if any(c.state == "loading" for c in r.checks)]
        left = wait_s - (time.monotonic() - started)
        if not loading or left <= 0:
            break
        say(
            f"{len(loading)} host(s) still loading ({', '.join(loading)}); "
            f"re-checking in {RECHECK_EVERY_S:.0f} s ({left:.0f} s left)"
        )
        time.sleep(min(RECHECK_EVERY_S, left))
        again = run_pyinfra_verify(inventory, deploy, loading)
        if not again.ok:
            return VerifyRun(list(results.values()), time.monotonic() - started, again.output, False)
        results.update({r.host: r for r in again.results})
    return VerifyRun(list(results.values()), time.monotonic() - started, run.output, True)


def last_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


#: pyinfra's per-host connection failures: `[host] Could not connect (...)`, `[host] Could not resolve ...`
_CONNECT_FAILED = re.compile(
    r"^\s*\[(?P<host>[^\]]+)\]\s+(?P<reason>Could not (?:connect|resolve|authenticate).*)$"
)


def connection_errors(output: str) -> dict[str, str]:
    """Host -> why pyinfra could not reach it, from pyinfra's own output."""
    found: dict[str, str] = {}
    for line in output.splitlines():
        match = _CONNECT_FAILED.match(line)
        if match:
            found[match["host"]] = match["reason"].strip()[:300]
    return found


def unchecked_hosts(
    inventory: str, reason: str, limit: list[str] | None = None, output: str = ""
) -> list[HostResult]:
    """Every host of the inventory as "could not check" (so CI still gets a report), or [] if it cannot load.

    A host pyinfra could not reach says why (its connection error); the others get `reason`.
    """
    from lpfleet.verification import unchecked_host

    try:
        from lpfleet.fleet import load_fleet

        specs = load_fleet(inventory)
    except Exception:  # noqa: BLE001 - an inventory that does not load has no hosts to report
        return []
    unreachable = connection_errors(output)
    return [
        unchecked_host(spec, unreachable.get(spec.host) or f"pyinfra stopped before verifying: {reason}")
        for spec in specs.values()
        if not limit or spec.host in limit or set(spec.groups) & set(limit)
    ]


def write_reports(
    results: list[HostResult], elapsed_s: float, inventory: str, json_path: str | None, junit_path: str | None
) -> None:
    if json_path:
        Path(json_path).write_text(to_json(results, inventory=inventory, elapsed_s=round(elapsed_s, 3)))
    if junit_path:
        Path(junit_path).write_text(to_junit(results, elapsed_s=elapsed_s))


def write_html(
    path: str,
    results: list[HostResult],
    inventory: str,
    elapsed_s: float,
    rollout: dict | None = None,
    title: str = "lpfleet verify",
) -> None:
    """The fleet page (lpfleet.fleet_page) to `path`, and its location on stderr."""
    from lpfleet.fleet_page import render_fleet_page

    Path(path).write_text(
        render_fleet_page(results, inventory=inventory, elapsed_s=elapsed_s, rollout=rollout, title=title),
        encoding="utf-8",
    )
    print(f"--> fleet page: {Path(path).resolve()}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    deploy = Path(args.deploy) if args.deploy else default_verify_deploy()
    if not Path(args.inventory).is_file():
        print(f"lpfleet verify: inventory {args.inventory} not found", file=sys.stderr)
        return 2
    from lpfleet.fleet import check_fleet

    loaded = check_fleet(args.inventory)
    # no host in it, or it raises: nothing to verify (pyinfra would only say "no hosts remaining")
    if loaded.load_failed:
        for problem in loaded.errors:
            print(f"lpfleet verify: {problem}", file=sys.stderr)
        return 2
    if not deploy.is_file():
        print(f"lpfleet verify: {deploy} not found (give --deploy PATH to verify.py)", file=sys.stderr)
        return 2
    outcome = verify_fleet(
        args.inventory, deploy, args.limit, args.wait, say=lambda text: print(f"--> {text}", file=sys.stderr)
    )
    if not outcome.ok:
        sys.stderr.write(outcome.output)
        print(
            "lpfleet verify: pyinfra stopped before verifying any host (its output is above)", file=sys.stderr
        )
        outcome.results = unchecked_hosts(
            args.inventory, last_line(outcome.output), args.limit, outcome.output
        )
        if not outcome.results:
            return 2
    elif args.verbose:
        sys.stderr.write(outcome.output)
    sys.stdout.write(to_table(outcome.results, elapsed_s=outcome.elapsed_s, compact=not args.all))
    write_reports(outcome.results, outcome.elapsed_s, args.inventory, args.json, args.junit)
    if args.html:
        write_html(args.html, outcome.results, args.inventory, outcome.elapsed_s)
    return exit_code(outcome.results)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "verify",
        help="read-only verification of a fleet: table, JSON, JUnit; exit 0 healthy, 1 problems, 2 unchecked",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("inventory", help="pyinfra inventory file (e.g. inventories/sandbox.py)")
    parser.add_argument("--json", metavar="FILE", help="write the JSON report (schema: docs/verify.md)")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testsuite per host)")
    parser.add_argument(
        "--html", metavar="FILE", help="write the fleet page: one self-contained HTML file (docs/verify.md)"
    )
    parser.add_argument(
        "--wait",
        metavar="SECONDS",
        type=float,
        default=0.0,
        help="re-check hosts with runners still loading for up to SECONDS",
    )
    parser.add_argument(
        "--limit", action="append", metavar="HOST_OR_GROUP", help="only these hosts (repeatable)"
    )
    parser.add_argument(
        "--deploy", metavar="PATH", help="verify.py to run (default: ./verify.py or the project's)"
    )
    parser.add_argument(
        "--all", action="store_true", help="list every check, not only the ones that are not ok"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show pyinfra's own output too")
    parser.set_defaults(func=run)
