"""`lpfleet diagnose [FILE|-] [--json]`: classify runner / go-livepeer log text into known causes.

One line per finding (`cause: line` then the fix), or with `--json` a list of {"cause", "line", "hint"};
a log with no failure in it gives `[]`. Exit 0 when nothing failed, 1 when something did, 2 when the input
could not be read. Reads stdin when FILE is `-` or missing (`docker logs RUNNER 2>&1 | lpfleet diagnose`).
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("diagnose", help="classify runner / go-livepeer logs into known failure causes",
                                   description=__doc__)
    parser.add_argument("file", nargs="?", default="-", metavar="FILE|-", help="log file (default: stdin)")
    parser.add_argument("--json", action="store_true", help="print a JSON list of {cause, line, hint}")
    parser.set_defaults(func=run)


def read_input(name: str) -> str:
    if name == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(name, "rb") as fh:
            data = fh.read()
    return data.decode("utf-8", errors="replace")


def run(args: argparse.Namespace) -> int:
    from lpfleet.diagnose import diagnose

    try:
        text = read_input(args.file)
    except OSError as exc:
        print(f"lpfleet diagnose: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    findings = diagnose(text)
    if args.json:
        print(json.dumps([f.to_dict() for f in findings], indent=2))
    elif not findings:
        print("no failure found")
    else:
        for f in findings:
            print(f"{f.cause}: {f.line}\n  fix: {f.hint}")
    return 1 if findings else 0
