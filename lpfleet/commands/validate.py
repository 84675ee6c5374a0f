"""`lpfleet validate [INVENTORY]`: build and check every host's spec and aiModels.json without connecting.

The same loader `pyinfra INVENTORY deploy.py` uses (pyinfra's own, with group_data/), so a
clean result here means the deploy's validation passes too. Exit 0 valid (warnings allowed),
1 when any host is invalid.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from lpfleet.spec import Problem, format_problems


def data_pair(value: str) -> str:
    """A `--data` value: KEY=VALUE (a bare `--data foo` would silently change nothing)."""
    key, sep, _ = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not KEY=VALUE (e.g. --data gpus=[0,1])")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", type=data_pair,
                        help="override data as pyinfra's --data does")
    parser.add_argument("--group-data", action="append", default=[], metavar="DIR",
                        help="extra group data folder, as pyinfra's --group-data")


def override_data(args: argparse.Namespace) -> dict[str, Any]:
    from lpfleet.fleet import cli_overrides

    argv: list[str] = []
    for item in args.data:
        argv += ["--data", item]
    return cli_overrides(argv)[0]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("validate", help="validate every host's spec without connecting", description=__doc__)
    parser.add_argument("inventory", nargs="?", default="inventory.py", help="inventory file (default inventory.py)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_data_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lpfleet.fleet import check_fleet

    result = check_fleet(args.inventory, override_data(args), args.group_data)
    if args.json:
        print(json.dumps({
            "ok": not result.errors,
            "hosts": sorted(result.specs),
            "problems": [
                {**p.to_dict(), "line": p.format()} if isinstance(p, Problem)
                else {"message": p, "severity": "error", "line": p}
                for p in result.problems
            ],
        }, indent=2))
    else:
        for line in format_problems(result.problems):
            print(line)
        if result.errors:
            hosts = {p.host for p in result.errors if isinstance(p, Problem)}
            count = len(format_problems(result.errors))
            on = f" on {len(hosts)} host(s)" if hosts else ""
            print(f"{args.inventory}: {count} problem(s){on}; fix them before deploying")
        else:
            print(f"{args.inventory}: {len(result.specs)} host(s) valid")
    return 1 if result.errors else 0
