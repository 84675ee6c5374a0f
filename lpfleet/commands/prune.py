"""`lpfleet prune --models-dir DIR [--lock FILE] [--apply]`: snapshots and blobs the lock no longer names.

Dry run by default: lists, per repo folder the lock names, the snapshots, blobs, refs and lpfleet records that
would go, and the bytes that frees. `--apply` removes them. Only repo folders of models in the lock are looked
at; a repo whose `refs/<branch>` names a commit the lock does not is left alone (fetch the locked commit
first). Nothing is followed through a symlink and nothing outside DIR is touched. Why prune at all: the LLM
runner (vLLM) loads the first snapshot folder holding weights, whatever `refs/main` says, so an old snapshot
left after a lock change can be served; and every old commit costs its full size on disk.

Exit: 0 done (or nothing to do), 1 some path could not be removed, 2 bad input (lock, models dir).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prune",
        help="remove snapshots and blobs models.lock no longer names",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--models-dir", required=True, help="the models dir (mounted at /models in runners)")
    parser.add_argument("--lock", default="models.lock", help="the lock file (default ./models.lock)")
    parser.add_argument("--branch", default="main", help="the ref the runner reads (default main)")
    parser.add_argument("--apply", action="store_true", help="remove them (default: only show what would go)")
    parser.add_argument("--json", action="store_true", help="print the plan (and result) as JSON")
    parser.set_defaults(func=run)


def _err(message: str) -> int:
    sys.stderr.write(f"lpfleet prune: {message}\n")
    return 2


def run(args: argparse.Namespace) -> int:
    from lpfleet import prune_exec
    from lpfleet.lock import LockError, load
    from lpfleet.prune import plan_prune, scan_request
    from lpfleet.weights import human_bytes

    lock_path = Path(args.lock)
    try:
        lock = load(lock_path.read_text(encoding="utf-8"), str(lock_path))
    except FileNotFoundError:
        return _err(f"{lock_path}: not found; give the fleet's lock with --lock (written by `lpfleet lock`)")
    except (OSError, UnicodeDecodeError) as exc:
        return _err(f"{lock_path}: cannot read: {exc}")
    except LockError as exc:
        return _err(str(exc))
    models_dir = Path(args.models_dir)
    if not models_dir.is_dir():
        return _err(f"{models_dir}: not a folder; give the models dir the runners mount at /models")

    models = list(lock.models)
    scan = prune_exec.scan(str(models_dir), scan_request(models))
    plan = plan_prune(models, scan, args.branch)
    result = None
    if args.apply and not plan.empty:
        result = prune_exec.remove(str(models_dir), [r.path for r in plan.removals])

    if args.json:
        doc = {"models_dir": str(models_dir), "applied": bool(args.apply), **plan.to_dict()}
        if result is not None:
            doc["result"] = result
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        for line in plan.lines():
            print(line)
        verb = "freed" if args.apply else "would free"
        print(
            f"{verb} {human_bytes(plan.bytes)} in {models_dir}"
            + ("" if args.apply or plan.empty else " (dry run: add --apply to remove)")
        )
        if result:
            for path, why in result["refused"]:
                print(f"refused {path}: {why}", file=sys.stderr)
            for path, error in result["failed"]:
                print(f"failed {path}: {error}", file=sys.stderr)
    if result and (result["refused"] or result["failed"]):
        return 1
    return 0
