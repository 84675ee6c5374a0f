"""`lpfleet lint FILE...`: check hand-written aiModels.json files with go-livepeer's rules.

One line per finding, `FILE: entry N (pipeline model_id): field: message` (N is the 0-based
array index: `jq '.[N]' FILE` shows the entry), `--json` for machines. Rules that need the
node's context apply only when it is given (`--gpus`, `--onchain`, `--price-feed`,
`--gpu-memory-gb`); the ones skipped are listed on stderr. Exit 0 clean (warnings allowed),
1 on any error. Never prints a token: no message carries a token or an unknown key's value.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from lpfleet.rules import Finding, JSONSyntaxError, NodeContext, check_entries, loads_preserving


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="check aiModels.json files with go-livepeer's rules",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="aiModels.json files ('-' reads stdin)")
    parser.add_argument("--json", action="store_true", help="print findings as JSON")
    parser.add_argument("--gpus", type=int, metavar="N", help="GPUs the worker uses (-nvidia): enables the warm-slots rule")
    parser.add_argument("--containers-per-gpu", type=int, default=1, metavar="N",
                        help="-aiRunnerContainersPerGPU (default 1)")
    onchain = parser.add_mutually_exclusive_group()
    onchain.add_argument("--onchain", dest="onchain", action="store_true", default=None,
                         help="the node prices on-chain: every entry needs a price")
    onchain.add_argument("--offchain", dest="onchain", action="store_false",
                         help="the node runs -network offchain (or is a remote worker): prices are ignored")
    parser.add_argument("--price-per-unit-flag", action="store_true",
                        help="-pricePerUnit is set, so entries without a price fall back to it")
    feed = parser.add_mutually_exclusive_group()
    feed.add_argument("--price-feed", dest="price_feed", action="store_true", default=None,
                      help="-priceFeedAddr is set: non-wei currencies are allowed")
    feed.add_argument("--no-price-feed", dest="price_feed", action="store_false",
                      help="no -priceFeedAddr: non-wei currencies fail")
    parser.add_argument("--gpu-memory-gb", type=float, metavar="GB", help="GPU memory: warn when a model needs more")
    parser.set_defaults(func=run)


def context_from_args(args: argparse.Namespace) -> NodeContext:
    slots = args.gpus * args.containers_per_gpu if args.gpus is not None else None
    return NodeContext(
        gpu_slots=slots,
        prices_onchain=args.onchain,
        fallback_price=args.price_per_unit_flag,
        price_feed=args.price_feed,
        gpu_memory_gb=args.gpu_memory_gb,
    )


def lint_text(text: str, context: NodeContext) -> list[Finding]:
    """Findings for one file's text; invalid JSON is one finding with its line and column."""
    try:
        entries = loads_preserving(text)
    except JSONSyntaxError as exc:
        return [
            Finding(
                "error",
                "invalid-json",
                f"invalid JSON at line {exc.line} column {exc.column}: {str(exc).split(': ', 1)[1]} "
                "(go-livepeer cannot read the file)",
                "json",
            )
        ]
    return check_entries(entries, context)


def _read(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    with open(name, encoding="utf-8") as f:
        return f.read()


def run(args: argparse.Namespace) -> int:
    context = context_from_args(args)
    results: list[tuple[str, Finding]] = []
    for name in args.files:
        try:
            text = _read(name)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc.__class__.__name__
            results.append((name, Finding("error", "unreadable", f"cannot read: {reason}", "file")))
            continue
        results.extend((name, f) for f in lint_text(text, context))
    skipped = context.skipped_rules()
    errors = sum(1 for _, f in results if f.is_error)
    if args.json:
        out = {
            "ok": errors == 0,
            "errors": errors,
            "warnings": len(results) - errors,
            "skipped_rules": skipped,
            "findings": [{"file": name, **f.to_dict()} for name, f in results],
        }
        print(json.dumps(out, indent=2))
    else:
        for name, finding in results:
            print(finding.format(name))
        if skipped:
            print("lpfleet lint: node rules skipped (no node context given): " + "; ".join(skipped), file=sys.stderr)
    return 1 if errors else 0
