"""`lpfleet diagnose [FILE|-]... [--json]`: classify runner / go-livepeer log text into known causes.

One line per finding (`cause: line` then the fix), or with `--json` a list of {"cause", "line", "hint"};
a log with no failure in it gives `[]`. With several files each is diagnosed on its own: lines start with the
file name and JSON findings carry a "file" key. Exit 0 when nothing failed, 1 when something did, 2 when an
input could not be read (the others are still diagnosed). Reads stdin when FILE is `-` or missing
(`docker logs RUNNER 2>&1 | lpfleet diagnose`).
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("diagnose", help="classify runner / go-livepeer logs into known failure causes",
                                   description=__doc__)
    parser.add_argument("files", nargs="*", default=["-"], metavar="FILE|-",
                        help="log files (default: stdin)")
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

    files = args.files or ["-"]
    several = len(files) > 1
    unreadable = failed = False
    everything: list[dict[str, str]] = []
    for name in files:
        try:
            text = read_input(name)
        except OSError as exc:
            print(f"lpfleet diagnose: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
            unreadable = True
            continue
        findings = diagnose(text)
        failed |= bool(findings)
        prefix = f"{name}: " if several else ""
        if args.json:
            everything += [{**f.to_dict(), "file": name} if several else f.to_dict() for f in findings]
        elif not findings:
            print(f"{prefix}no failure found")
        else:
            for f in findings:
                print(f"{prefix}{f.cause}: {f.line}\n  fix: {f.hint}")
    if args.json and not (unreadable and not several):
        print(json.dumps(everything, indent=2))
    return 2 if unreadable else 1 if failed else 0
