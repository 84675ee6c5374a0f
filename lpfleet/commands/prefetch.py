"""`lpfleet prefetch MODEL_ID... --models-dir DIR`: weights into DIR in the runner's HF cache layout, verified.

The single-machine "manual pre-download" of Livepeer's docs, done so that it can be trusted: only the files the
include globs select (the catalog's, unless `--include` is given), every file hashed against the hub's sha256 /
git blob id, a disk-space check first, `refs/<branch>` written last (also when `--revision` pins a commit), exit 0
only when everything is there and verified. A re-run on a complete dir makes no network request.

Endpoint: $HF_ENDPOINT (default https://huggingface.co). Token: $HF_TOKEN, or one line on stdin with
`--token-stdin` (never on the command line). The weights step runs `--plan-stdin` on nodes: a JSON document on
stdin carrying the locked models, the endpoint and the token.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("prefetch", help="fetch model weights into a models dir (HF cache layout)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_ids", nargs="*", metavar="MODEL_ID", help="org/name, exact case")
    parser.add_argument("--models-dir", required=True, help="the models dir (mounted at /models in runners)")
    parser.add_argument("--revision", default=None, help="branch, tag or commit (default: the branch)")
    parser.add_argument("--branch", default="main", help="the ref the runner reads (default main)")
    parser.add_argument("--include", action="append", default=None, metavar="GLOB",
                        help="only files matching (repeatable; default: the catalog's patterns, else all)")
    parser.add_argument("--token-stdin", action="store_true", help="read the HF token from stdin's first line")
    parser.add_argument("--plan-stdin", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="no per-file progress lines")
    parser.add_argument("--min-rate", type=float, default=1_000_000.0, metavar="BYTES_PER_S",
                        help="each file's deadline is max(--deadline-floor, size / this); default 1000000")
    parser.add_argument("--attempts", type=int, default=3, metavar="N",
                        help="rounds over the files that are still missing (default 3)")
    parser.add_argument("--deadline-floor", type=float, default=120.0, metavar="SECONDS",
                        help="the shortest per-file deadline (default 120)")
    parser.set_defaults(func=run)


def _err(message: str) -> None:
    sys.stderr.write(f"lpfleet prefetch: {message}\n")
    sys.stderr.flush()


def _limits(args: argparse.Namespace, plan: dict | None = None):
    from lpfleet.weights_fetch import FetchLimits

    base = FetchLimits.from_plan(plan or {})
    if plan is None:
        base = FetchLimits.from_plan({"min_rate": args.min_rate, "deadline_floor": args.deadline_floor})
    return base


def run(args: argparse.Namespace) -> int:
    os.umask(0o022)  # files readable by runner containers whatever user they run as
    if args.plan_stdin:
        try:
            plan = json.loads(sys.stdin.read() or "{}")
        except ValueError as exc:
            _err(f"the plan on stdin is not JSON: {exc}")
            return 2
        if not isinstance(plan, dict):
            _err("the plan on stdin is not a JSON object")
            return 2
        return _run_plan(args, plan)
    if not args.model_ids:
        _err("give at least one MODEL_ID")
        return 2
    if not (args.min_rate > 0 and args.deadline_floor > 0 and 1 <= args.attempts <= 20):
        _err("--min-rate and --deadline-floor must be positive numbers, --attempts from 1 to 20")
        return 2
    token = os.environ.get("HF_TOKEN") or None
    if args.token_stdin:
        token = sys.stdin.readline().strip() or None
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    from lpfleet import catalog
    from lpfleet.hub import HubError, display_url, endpoint_problem, ensure_model, lock_model, recorded_model
    from lpfleet.lock import ModelRequest, model_id_problem
    from lpfleet.weights import human_bytes
    from lpfleet.weights_fetch import branch_problem

    problem = endpoint_problem(endpoint)
    if problem:
        _err(f"HF_ENDPOINT {display_url(endpoint)!r}: {problem} (set it to an http(s) URL such as "
             "https://huggingface.co, or unset it)")
        return 2
    if branch_problem(args.branch) or (args.revision is not None and branch_problem(args.revision)):
        _err("--branch/--revision: expected a ref name or a commit (letters, digits, '_', '-', '.', '/')")
        return 2
    bad = [(m, model_id_problem(m)) for m in args.model_ids if model_id_problem(m)]
    if bad:
        for model_id, why in bad:
            _err(f"{model_id[:100]!r}: not a model id: {why} (use the id as the model's page shows it)")
        return 2
    if os.path.exists(args.models_dir) and not os.path.isdir(args.models_dir):
        _err(f"--models-dir {args.models_dir}: exists and is not a directory (give a directory)")
        return 2
    limits = _limits(args)
    revision = args.revision or args.branch
    failed = 0
    for model_id in args.model_ids:
        include = tuple(args.include) if args.include else catalog.download_patterns(model_id)
        for extra in catalog.extra_models(model_id):
            if extra not in args.model_ids:
                print(f"note: {model_id} also loads {extra}; add it to the command to fetch it too")
        try:
            model = recorded_model(args.models_dir, model_id, revision)
            if model is None or model.include != include:
                model = lock_model(ModelRequest(model_id, revision, include), endpoint, token)
            result = ensure_model(args.models_dir, model, endpoint=endpoint, token=token, branch=args.branch,
                                  progress=not args.quiet, log=print, limits=limits, attempts=args.attempts)
        except HubError as exc:
            _err(str(exc))
            failed += 1
            continue
        for note in result.notes:
            print(f"note: {note}")
        what = (f"fetched {result.fetched_files} file(s), {human_bytes(result.fetched_bytes)}"
                if result.fetched_files else "already complete")
        print(f"{model_id}@{model.commit[:12]}: {len(model.files)} files verified ({what}); "
              f"refs/{args.branch} -> {model.commit[:12]}")
    return 1 if failed else 0


def _model_sources(plan: dict, n: int) -> list[tuple[str, str | None, str]]:
    """(endpoint, token, token_env) to try in order for the plan's n-th model: its own list (fan-out: the
    chain's peers, nearest first), else the plan's endpoint."""
    default = (plan.get("endpoint") or "https://huggingface.co", plan.get("token") or None,
               plan.get("token_env") or "HF_TOKEN")
    lists = plan.get("model_sources")
    own = lists[n] if isinstance(lists, list) and n < len(lists) and isinstance(lists[n], list) else []
    out = [(str(s.get("endpoint") or ""), s.get("token") or None, str(s.get("token_env") or "HF_TOKEN"))
           for s in own if isinstance(s, dict)]
    return out or [default]


def _model_wait(plan: dict, n: int) -> float:
    """Fan-out chain: how long the plan's n-th model's peer may take to get to it (added to each file's
    deadline)."""
    waits = plan.get("model_waits")
    wait = waits[n] if isinstance(waits, list) and n < len(waits) else 0
    return float(wait) if isinstance(wait, (int, float)) and not isinstance(wait, bool) and 0 <= wait < 1e7 else 0.0


def _run_plan(args: argparse.Namespace, plan: dict) -> int:
    """Node mode: {"endpoint", "token", "branch", "min_rate", "models": [LockedModel dicts]} on stdin, and in
    fan-out mode "model_sources" (per model, the endpoints to try in order) and "relay_board" (this node's
    mirror forwards the files as they arrive: lpfleet.weights_relay). One JSON line out, always (every model
    is attempted; each failure is one line in "errors")."""
    from lpfleet.weights_relay import RelayBoard

    branch = plan.get("branch") or args.branch
    limits = _limits(args, plan)
    attempts = plan.get("attempts")
    attempts = attempts if isinstance(attempts, int) and 1 <= attempts <= 20 else 3
    report: dict = {"models": [], "errors": []}
    relay = None
    if plan.get("relay_board"):
        try:
            relay = RelayBoard(str(plan["relay_board"]))
        except ValueError as exc:  # its peers fall back along their chain; this node still fetches
            print(f"note: not forwarding files to peers as they arrive: {exc}")
    try:
        _fetch_plan_models(args, plan, branch, limits, attempts, relay, report)
    finally:
        if relay is not None:
            relay.finished()
    print("@@lpfleet-weights " + json.dumps(report, sort_keys=True), flush=True)
    for error in report["errors"]:
        _err(error)
    return 1 if report["errors"] else 0


def _fetch_plan_models(args: argparse.Namespace, plan: dict, branch: str, limits: Any, attempts: int,
                       relay: Any, report: dict) -> None:
    from lpfleet.lock import LockError, load_model_dict
    from lpfleet.weights_fetch import HubError, ensure_model

    for n, raw in enumerate(plan.get("models") or []):
        name = raw.get("id", f"models[{n}]") if isinstance(raw, dict) else f"models[{n}]"
        try:
            where = f"plan models[{n}] {str(name)[:100]}"
            model = load_model_dict(raw if isinstance(raw, dict) else {}, where)
            (endpoint, token, token_env), *more = _model_sources(plan, n)
            result = ensure_model(args.models_dir, model, endpoint=endpoint, token=token, branch=branch,
                                  progress=False, log=print, token_env=token_env,
                                  limits=replace(limits, wait=_model_wait(plan, n)),
                                  attempts=attempts, fallbacks=[(e, t) for e, t, _ in more], relay=relay)
        except (HubError, LockError) as exc:
            report["errors"].append(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001 - one model's surprise must not cost the others their fetch
            text = " ".join(str(exc).split())[:300]
            report["errors"].append(f"{str(name)[:100]}: unexpected {type(exc).__name__}: {text}")
            continue
        report["models"].append({"id": model.model_id, "commit": model.commit, "fetched_files": result.fetched_files,
                                 "fetched_bytes": result.fetched_bytes, "repaired": result.repaired,
                                 "ref_written": result.ref_written,
                                 "hashed_while_downloading": result.hashed_while_downloading})


def main(argv: list[str] | None = None) -> int:
    """`python3 -m lpfleet.commands.prefetch ...`: how nodes run it (no console script, no other command loaded)."""
    parser = argparse.ArgumentParser(prog="lpfleet")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["prefetch", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
