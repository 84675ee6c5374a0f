"""`lpfleet lint FILE...`: check hand-written aiModels.json files with go-livepeer's rules.

One line per finding, `FILE: entry N (pipeline model_id): field: message` (N is the 0-based
array index: `jq '.[N]' FILE` shows the entry), `--json` for machines. The file is read as
go-livepeer reads it: strict JSON (no NaN, Infinity or number beyond a float64), UTF-8 without
a byte order mark. The warm-containers rule assumes one GPU slot unless `--gpus N` says
otherwise; the other node rules apply when their option is given (`--onchain`, `--price-feed`,
`--gpu-memory-gb`), and `-v` lists the ones skipped. At most 20 findings per rule and file are
printed, then a count of the rest. Files over 8 MiB are refused (`--max-size-mb` raises it);
an aiModels.json past 1000 entries is checked up to there (`--max-entries`). Exit 0 clean
(warnings allowed), 1 on any error. Never prints a token.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from lpfleet.rules import Finding, JSONSyntaxError, NodeContext, check_entries

DEFAULT_MAX_MB = 8.0  # a real aiModels.json is a few KB
DEFAULT_MAX_ENTRIES = 1000  # go-livepeer nodes serve dozens of models
DEFAULT_PER_RULE = 20
#: The largest magnitude Go's encoding/json decodes into a float64 (math.MaxFloat64); past it the file fails.
MAX_FLOAT64 = Decimal("1.7976931348623157e308")
_BOM = b"\xef\xbb\xbf"


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="check aiModels.json files with go-livepeer's rules",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="aiModels.json files ('-' reads stdin)")
    parser.add_argument("--json", action="store_true", help="print findings as JSON")
    parser.add_argument(
        "--gpus",
        type=positive_int,
        metavar="N",
        help="GPUs the worker uses (-nvidia); default: 1 (the warm-slots rule assumes one GPU)",
    )
    parser.add_argument(
        "--containers-per-gpu",
        type=positive_int,
        default=1,
        metavar="N",
        help="-aiRunnerContainersPerGPU (default 1)",
    )
    onchain = parser.add_mutually_exclusive_group()
    onchain.add_argument(
        "--onchain",
        dest="onchain",
        action="store_true",
        default=None,
        help="the node prices on-chain: every entry needs a price",
    )
    onchain.add_argument(
        "--offchain",
        dest="onchain",
        action="store_false",
        help="the node runs -network offchain (or is a remote worker): prices are ignored",
    )
    parser.add_argument(
        "--price-per-unit-flag",
        action="store_true",
        help="-pricePerUnit is set above 0, so entries without a price fall back to it "
        "(go-livepeer treats -pricePerUnit 0 as unset)",
    )
    feed = parser.add_mutually_exclusive_group()
    feed.add_argument(
        "--price-feed",
        dest="price_feed",
        action="store_true",
        default=None,
        help="-priceFeedAddr names a feed of its own: any currency is allowed",
    )
    feed.add_argument(
        "--no-price-feed",
        dest="price_feed",
        action="store_false",
        help="no -priceFeedAddr: go-livepeer's default ETH/USD feed, so wei, eth and USD only",
    )
    parser.add_argument(
        "--gpu-memory-gb", type=float, metavar="GB", help="GPU memory: warn when a model needs more"
    )
    parser.add_argument(
        "--max-size-mb",
        type=positive_float,
        default=DEFAULT_MAX_MB,
        metavar="MB",
        help=f"refuse files larger than this (default {DEFAULT_MAX_MB:g})",
    )
    parser.add_argument(
        "--max-entries",
        type=positive_int,
        default=DEFAULT_MAX_ENTRIES,
        metavar="N",
        help=f"check at most this many entries per file (default {DEFAULT_MAX_ENTRIES})",
    )
    parser.add_argument(
        "--max-per-rule",
        type=positive_int,
        default=DEFAULT_PER_RULE,
        metavar="N",
        help=f"findings printed per rule and file before a count of the rest (default {DEFAULT_PER_RULE})",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also list the node rules skipped")
    parser.set_defaults(func=run)


def context_from_args(args: argparse.Namespace) -> NodeContext:
    gpus = args.gpus if args.gpus is not None else 1
    return NodeContext(
        gpu_slots=gpus * args.containers_per_gpu,
        prices_onchain=args.onchain,
        fallback_price=args.price_per_unit_flag,
        price_feed=args.price_feed,
        gpu_memory_gb=args.gpu_memory_gb,
    )


class _NonJSONConstant:
    """NaN / Infinity / -Infinity found while parsing: Python's json accepts them, Go's does not."""

    def __init__(self, literal: str) -> None:
        self.literal = literal


def loads_strict(text: str) -> Any:
    """JSON as go-livepeer's decoder reads it; non-integers keep their literal (Decimal), NaN/Infinity kept as
    markers so the finding can name the entry and field they sit in."""
    return _parse_strict(text)[0]


def _parse_strict(text: str) -> tuple[Any, list[_NonJSONConstant]]:
    """`loads_strict`, plus every NaN/Infinity met while parsing: one a later duplicate key overrode, or one
    nested deeper than a field, is gone from the result, yet Go's decoder stops at it all the same."""
    constants: list[_NonJSONConstant] = []

    def constant(literal: str) -> _NonJSONConstant:
        constants.append(_NonJSONConstant(literal))
        return constants[-1]

    try:
        return json.loads(text, parse_float=Decimal, parse_constant=constant), constants
    except json.JSONDecodeError as exc:
        raise JSONSyntaxError(exc.msg, exc.lineno, exc.colno) from None
    except ValueError as exc:  # int too long to convert (Python's digit limit)
        raise JSONSyntaxError(f"a number too large for any JSON decoder ({exc})", 1, 1) from None


def _bad_number(value: Any) -> str | None:
    if isinstance(value, _NonJSONConstant):
        return f"{value.literal} is not JSON: go-livepeer cannot read the file; write a number"
    big = (isinstance(value, Decimal) and value.is_finite()) or (
        isinstance(value, int) and not isinstance(value, bool)
    )
    if big and abs(value) > MAX_FLOAT64:
        return "number beyond a float64 (about 1.8e308): go-livepeer cannot read the file; write a real value"
    return None


def _number_findings(entries: list[Any]) -> tuple[list[Any], list[Finding]]:
    """Findings for NaN/Infinity/out-of-range numbers, naming entry and field; those values are dropped so
    the rules do not report them twice."""
    findings: list[Finding] = []
    cleaned: list[Any] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            problem = _bad_number(entry)
            if problem:
                findings.append(Finding("error", "not-json-number", problem, "-", index))
                entry = None
            cleaned.append(entry)
            continue
        pipeline, model_id = entry.get("pipeline"), entry.get("model_id")
        pipeline = pipeline if isinstance(pipeline, str) else None
        model_id = model_id if isinstance(model_id, str) else None
        out = {}
        for key, value in entry.items():
            paths = [(str(key), value)]
            if isinstance(value, dict):
                paths = [(f"{key}.{k}", v) for k, v in value.items()] or paths
            bad = [(name, problem) for name, v in paths if (problem := _bad_number(v))]
            for name, problem in bad:
                findings.append(Finding("error", "not-json-number", problem, name, index, pipeline, model_id))
            if not bad:
                out[key] = value
        cleaned.append(out)
    return cleaned, findings


def lint_bytes(data: bytes, context: NodeContext, max_entries: int = DEFAULT_MAX_ENTRIES) -> list[Finding]:
    """Findings for one file's bytes, read as go-livepeer reads them."""
    if data.startswith(_BOM):
        return [
            Finding(
                "error",
                "bom",
                "starts with a byte order mark (BOM): go-livepeer's JSON decoder stops at "
                "it; save the file as UTF-8 without BOM",
                "file",
            )
        ]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [
            Finding(
                "error",
                "not-utf8",
                f"not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): save the file as UTF-8",
                "file",
            )
        ]
    return lint_text(text, context, max_entries)


def lint_text(text: str, context: NodeContext, max_entries: int = DEFAULT_MAX_ENTRIES) -> list[Finding]:
    """Findings for one file's text; invalid JSON is one finding with its line and column."""
    try:
        entries, constants = _parse_strict(text)
    except JSONSyntaxError as exc:
        if not text.strip():
            return [
                Finding(
                    "error",
                    "invalid-json",
                    "the file is empty: write [] for no models, or the entries "
                    "(go-livepeer cannot read an empty file)",
                    "json",
                )
            ]
        return [
            Finding(
                "error",
                "invalid-json",
                f"invalid JSON at line {exc.line} column {exc.column}: {str(exc).split(': ', 1)[1]} "
                "(go-livepeer cannot read the file)",
                "json",
            )
        ]
    if isinstance(entries, list):
        found: list[Finding] = []
        if len(entries) > max_entries:
            found.append(
                Finding(
                    "error",
                    "too-many-entries",
                    f"{len(entries)} entries, more than any node serves: "
                    f"checked the first {max_entries} (--max-entries raises it)",
                    "-",
                )
            )
            del entries[max_entries:]
        entries, number_findings = _number_findings(entries)
        found += number_findings
        if constants and not any(f.rule == "not-json-number" and "is not JSON" in f.message for f in found):
            found.append(Finding("error", "not-json-number", f"{constants[0].literal} is not JSON: go-livepeer "
                                 "cannot read the file; write a number", "-"))
        ordered = sorted(
            found + check_entries(entries, context), key=lambda f: -1 if f.index is None else f.index
        )
        return ordered
    problem = _bad_number(entries)
    if problem:
        return [Finding("error", "not-json-number", problem, "-")]
    return check_entries(entries, context)


class FileTooLarge(Exception):
    pass


def _read(name: str, max_bytes: int) -> bytes:
    if name == "-":
        stream = getattr(sys.stdin, "buffer", None)
        data = stream.read(max_bytes + 1) if stream is not None else sys.stdin.read(max_bytes + 1).encode()
    else:
        with open(name, "rb") as f:
            data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLarge()
    return data


def _capped(findings: list[Finding], per_rule: int) -> Iterator[Finding | tuple[str, int]]:
    """The findings, at most `per_rule` of each rule, then (rule, how many more) for each rule past it."""
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.rule] = counts.get(finding.rule, 0) + 1
        if counts[finding.rule] <= per_rule:
            yield finding
    for rule, count in counts.items():
        if count > per_rule:
            yield rule, count - per_rule


def _findings_for(name: str, args: argparse.Namespace, context: NodeContext) -> list[Finding]:
    max_bytes = int(args.max_size_mb * 1024 * 1024)
    try:
        data = _read(name, max_bytes)
    except FileTooLarge:
        return [
            Finding(
                "error",
                "too-large",
                f"larger than {args.max_size_mb:g} MB, not read (an aiModels.json is a "
                "few KB; --max-size-mb raises the limit)",
                "file",
            )
        ]
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        return [Finding("error", "unreadable", f"cannot read: {reason}", "file")]
    return lint_bytes(data, context, args.max_entries)


def run(args: argparse.Namespace) -> int:
    context = context_from_args(args)
    errors = warnings = 0
    json_findings: list[dict[str, Any]] = []
    omitted: list[dict[str, Any]] = []
    slots_assumed = False
    for name in args.files:
        findings = _findings_for(name, args, context)
        errors += sum(1 for f in findings if f.is_error)
        warnings += sum(1 for f in findings if not f.is_error)
        slots_assumed |= args.gpus is None and any(f.rule == "warm-beyond-slots" for f in findings)
        for item in _capped(findings, args.max_per_rule):
            if isinstance(item, tuple):
                rule, more = item
                if args.json:
                    omitted.append({"file": name, "rule": rule, "count": more})
                else:
                    print(
                        f"{name}: {more} more {rule} finding(s) not shown (--max-per-rule raises the limit)"
                    )
            elif args.json:
                json_findings.append({"file": name, **item.to_dict()})
            else:
                print(item.format(name), flush=False)
        if not args.json:
            sys.stdout.flush()  # each file's findings as soon as it is checked
    skipped = [s for s in context.skipped_rules() if "GPU slots" not in s]
    assumption = "warm containers vs GPU slots: assumed 1 GPU slot (give --gpus N [--containers-per-gpu N])"
    if args.json:
        out = {
            "ok": errors == 0,
            "errors": errors,
            "warnings": warnings,
            "skipped_rules": skipped,
            "assumed": [assumption] if args.gpus is None else [],
            "findings": json_findings,
            "omitted": omitted,
        }
        print(json.dumps(out, indent=2))
    else:
        if slots_assumed or (args.verbose and args.gpus is None):
            print(f"lpfleet lint: {assumption}", file=sys.stderr)
        if args.verbose and skipped:
            print(
                "lpfleet lint: node rules skipped (no node context given): " + "; ".join(skipped),
                file=sys.stderr,
            )
    return 1 if errors else 0
