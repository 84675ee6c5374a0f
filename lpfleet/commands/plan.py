"""`lpfleet plan INVENTORY [--json|--markdown]`: what a converge would change, per host and step, in words.

Runs pyinfra's own dry run of deploy.py (`pyinfra --dry --json INVENTORY deploy.py`: facts are gathered,
nothing is changed) with LPFLEET_PLAN_NOTES set, so lpfleet's operations record what they would do (package
versions, daemon.json keys, a masked diff of aiModels.json, weights to fetch with their bytes, the worker to
recreate and why); then prints it per host and step (lpfleet.change_plan). `--markdown` is for a pull-request
comment. Exit 0 when planned (changes or not), 2 when the specs are invalid or pyinfra could not plan.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lpfleet.change_plan import build_plan, to_json, to_markdown, to_text
from lpfleet.commands.verify import pyinfra_command


def failure_lines(output: str) -> list[str]:
    """What to show of a failed pyinfra run: its own error lines, else the last lines that are not a
    traceback."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    errors = [
        line.strip()
        for line in lines
        if "pyinfra error" in line
        or line.lstrip().startswith("lpfleet")
        or (line.lstrip().startswith("[") and any(w in line for w in ("Could not", "rror", "ailed")))
    ]
    if errors:
        return list(dict.fromkeys(errors))
    plain = [
        line
        for line in lines
        if not line.startswith(("Traceback", "  File ", "    ")) and "Error" not in line[:1]
    ]
    return plain[-12:]


def run(args: argparse.Namespace) -> int:
    from lpfleet.commands.rollout import default_deploy

    deploy = Path(args.deploy) if args.deploy else default_deploy()
    for path, what in ((Path(args.inventory), "inventory"), (deploy, "deploy.py")):
        if not path.is_file():
            print(f"lpfleet plan: {what} {path} not found", file=sys.stderr)
            return 2
    from lpfleet.fleet import FleetError, load_fleet

    try:
        specs = load_fleet(args.inventory)
    except FleetError as exc:
        print(f"lpfleet plan: invalid specs, nothing was planned:\n{exc}", file=sys.stderr)
        return 2
    if not specs:
        print(f"lpfleet plan: {args.inventory} holds no host", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="lpfleet-plan-") as tmp:
        notes_path = os.path.join(tmp, "notes.jsonl")
        env = dict(os.environ, LPFLEET_PLAN_NOTES=notes_path, LPFLEET_VERIFY_TABLE="0")
        env.pop("LPFLEET_VERIFY_JSON", None)
        env.pop("LPFLEET_VERIFY_JUNIT", None)
        command = [*pyinfra_command(), "--dry", "--json", args.inventory, str(deploy)]
        for name in args.limit or []:
            command += ["--limit", name]
        proc = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            plan = json.loads(proc.stdout)["plan"]
        except (ValueError, KeyError, TypeError):
            for line in failure_lines(proc.stderr + proc.stdout):
                print(f"  {line}", file=sys.stderr)
            print(
                "lpfleet plan: pyinfra could not plan the deploy (why is above); nothing was changed",
                file=sys.stderr,
            )
            return 2
        notes = []
        if os.path.exists(notes_path):
            with open(notes_path, encoding="utf-8") as handle:
                notes = [json.loads(line) for line in handle if line.strip()]
    hosts = [h for h in specs if not args.limit or h in args.limit or set(specs[h].groups) & set(args.limit)]
    plans = build_plan(hosts, plan, notes)
    if args.json:
        sys.stdout.write(to_json(plans, inventory=args.inventory))
    elif args.markdown:
        sys.stdout.write(to_markdown(plans, inventory=args.inventory))
    else:
        sys.stdout.write(to_text(plans))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="what a converge would change, per host and step, in words (pyinfra's dry run)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("inventory", help="pyinfra inventory file")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print the plan as JSON (schema lpfleet.plan/1)")
    form.add_argument(
        "--markdown", action="store_true", help="print the plan as Markdown (a pull-request comment)"
    )
    parser.add_argument(
        "--limit", action="append", metavar="HOST_OR_GROUP", help="only these hosts (repeatable)"
    )
    parser.add_argument(
        "--deploy", metavar="PATH", help="deploy.py to plan (default: ./deploy.py or the project's)"
    )
    parser.set_defaults(func=run)
