"""`lpfleet lock [INVENTORY]`: resolve every model the fleet uses to a commit and a hashed file list (models.lock).

Reads the inventory and its group data like pyinfra (every host's spec validated first), collects the models of
every managed aiModels.json entry plus the extra models their pipelines load (the catalog), asks the hub
(`hf_lock_endpoint`, else `hf_endpoint`; token from the controller env var named by `hf_token_env`), and writes
`models.lock` next to the inventory (or where `models_lock` says). Fails, naming every bad model, before any node
is touched: id not found, id differing in case from the hub's canonical id, gated without a token or access,
the endpoint unreachable or answering values that cannot be right. Writes only when every model resolved,
atomically (a synced temp file renamed over the old one), after printing every change (models added, moved,
removed); never a lock that lacks a model the inventory names; never over an existing lock it cannot parse.
Rewrites nothing when nothing changed. `--check` only says whether the lock is current (exit 1 when not).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from lpfleet.commands.validate import add_data_arguments

    parser = subparsers.add_parser("lock", help="resolve the fleet's models into models.lock",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inventory", nargs="?", default="inventory.py", help="inventory file (default inventory.py)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when models.lock is not current")
    add_data_arguments(parser)
    parser.set_defaults(func=run)


def lock_path_for(lock_file: str, inventory: str) -> Path:
    """A relative `models_lock` is relative to the inventory's folder."""
    path = Path(lock_file)
    return path if path.is_absolute() else Path(inventory).resolve().parent / path


def run(args: argparse.Namespace) -> int:
    from lpfleet.fleet import FleetError, cli_overrides, load_fleet
    from lpfleet.hub import HubError, lock_model
    from lpfleet.lock import LockError, ModelRequest, diff, dump, load, merge_for_write, requests_for_spec
    from lpfleet.weights import human_bytes

    argv = [x for pair in (("--data", d) for d in args.data) for x in pair]
    data, _ = cli_overrides(argv)
    try:
        specs = load_fleet(args.inventory, data, args.group_data)
    except FleetError as exc:
        sys.stderr.write(f"lpfleet lock: invalid fleet data in {args.inventory}; nothing was locked:\n{exc}\n")
        return 1

    # lock file -> (model, revision) -> (request, endpoint, token env, hosts asking)
    wanted: dict[Path, dict[tuple[str, str], tuple[ModelRequest, str, str, list[str]]]] = {}
    for host, spec in sorted(specs.items()):
        path = lock_path_for(spec.weights.lock_file, args.inventory)
        endpoint = spec.weights.hf_lock_endpoint or spec.weights.hf_endpoint
        for request in requests_for_spec(spec):
            slot = wanted.setdefault(path, {}).setdefault(
                request.key, (request, endpoint, spec.weights.hf_token_env, []))
            slot[3].append(host)
    if not wanted:
        wanted = {lock_path_for("models.lock", args.inventory): {}}

    status = 0
    for path, requests in wanted.items():
        resolved, errors = [], []
        for key in sorted(requests):
            request, endpoint, token_env, hosts = requests[key]
            token = os.environ.get(token_env) or None
            try:
                model = lock_model(request, endpoint, token, token_env)
            except HubError as exc:
                shown = ", ".join(hosts[:3]) + (f" and {len(hosts) - 3} more" if len(hosts) > 3 else "")
                errors.append(f"{exc} [hosts: {shown}]")
                continue
            resolved.append(model)
            for note in model.unchecked:
                print(f"note: {model.model_id}: not checked: {note}")
        if errors:
            sys.stderr.write(f"lpfleet lock: {len(errors)} of {len(requests)} model(s) cannot be locked; "
                             f"{path} left unchanged, no node touched:\n"
                             + "".join(f"  {e}\n" for e in errors))
            status = 1
            continue
        new = merge_for_write(resolved)
        dropped = sorted(set(requests) - {m.key for m in new.models})
        if dropped:  # cannot happen when every request resolved; a lock must never lose a model still named
            names = ", ".join(f"{m} ({r})" for m, r in dropped)
            sys.stderr.write(f"lpfleet lock: {path}: would drop {names} that the inventory still names; "
                             "not written\n")
            status = 1
            continue
        old = None
        if path.exists():
            try:
                old = load(path.read_text(), str(path))
            except (LockError, OSError, UnicodeDecodeError) as exc:
                sys.stderr.write(f"lpfleet lock: cannot read the existing {path} ({exc}); left untouched: "
                                 "move it away to have a new one written\n")
                status = 1
                continue
        changes = diff(old, new)
        text = dump(new)
        if not changes.changed and path.exists() and path.read_text() == text:
            print(f"{path}: up to date ({len(new.models)} models, {human_bytes(new.unique_bytes)})")
            continue
        for change in changes.changes:
            print(f"  {change.kind:8} {change.model_id} ({change.revision}) {change.detail}".rstrip())
        if args.check:
            print(f"{path}: not current; run `lpfleet lock {args.inventory}`")
            status = max(status, 1)
            continue
        try:
            _write(path, text)
        except OSError as exc:
            sys.stderr.write(f"lpfleet lock: cannot write {path}: {exc.strerror or exc}; the old lock is "
                             "left as it was (check the folder's permissions and free space)\n")
            status = 1
            continue
        print(f"{path}: written ({len(new.models)} models, {human_bytes(new.unique_bytes)})")
    return status


def _write(path: Path, text: str) -> None:
    """Atomically: a unique temp file in the same folder, synced, renamed over the old lock, folder synced."""
    from lpfleet.weights_fetch import write_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, text)
