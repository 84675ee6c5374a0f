"""`lpfleet` command line: one sub-command per module in `lpfleet.commands`.

Each command module exposes `register(subparsers)` (adds its parser and sets `func`)
and keeps heavy imports (pyinfra, huggingface_hub, docker) inside the function it runs,
so `lpfleet lint` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = ("lint", "validate", "render", "lock", "prefetch", "verify", "rollout", "bootstrap", "diagnose",
            "sandbox")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lpfleet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"lpfleet.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lpfleet.commands.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
