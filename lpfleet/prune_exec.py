"""The I/O half of `lpfleet prune`: scan the repo folders the lock names, remove what the plan says.

Stdlib only and self-contained: `lpfleet prune` imports it, and the weights step sends this file's source to a
node's python3 (no runtime bundle needed). Nothing here follows a symlink: the scan uses lstat and reads link
targets as text, and a removal is refused unless every component below the models dir is a real folder, the
path stays inside the models dir and names something of a repo folder (or its lpfleet record). The models dir
itself is resolved once (it may be a symlink the operator made).

As a program: `python3 prune_exec.py scan|remove [BASE64-JSON]` reads `{"models_dir", "folders"|"paths"}` as
JSON (from the argument, else stdin) and writes JSON on stdout; `remove` exits 1 when a path was refused or
failed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import sys

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_FOLDER = re.compile(r"^models--[A-Za-z0-9][A-Za-z0-9_.-]*--[A-Za-z0-9][A-Za-z0-9_.-]*$")
RECORDS = (".lpfleet", "verified")


def _kind(path):
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return "absent"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def _listdir(path):
    try:
        return sorted(os.listdir(path)) if _kind(path) == "dir" else []
    except OSError:
        return []


def _size(path):
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


def _scan_snapshot(path):
    links, total = {}, 0
    for root, dirs, files in os.walk(path, followlinks=False):
        # a symlinked folder inside a snapshot is listed as a link, never entered
        for name in list(dirs):
            if _kind(os.path.join(root, name)) == "symlink":
                dirs.remove(name)
                files.append(name)
        for name in files:
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            if _kind(full) == "symlink":
                target = os.readlink(full)
                parts = target.split("/")
                depth = rel.count("/") + 2  # snapshots/<commit>/<rel> -> ../../blobs/<name>
                ok = (
                    len(parts) == depth + 2
                    and all(p == ".." for p in parts[:depth])
                    and parts[depth] == "blobs"
                    and parts[-1] not in ("", ".", "..")
                )
                links[rel] = parts[-1] if ok else None
            else:
                links[rel] = None
                total += _size(full)
    return {"kind": "dir", "links": links, "bytes": total}


def scan_repo(models_dir, folder):
    """One repo folder (see lpfleet.prune for the shape)."""
    repo = os.path.join(models_dir, folder)
    kind = _kind(repo)
    out = {"kind": kind}
    if kind != "dir":
        return out
    refs = {}
    refs_dir = os.path.join(repo, "refs")
    if _kind(refs_dir) == "dir":
        for root, _dirs, files in os.walk(refs_dir, followlinks=False):
            for name in files:
                full = os.path.join(root, name)
                if _kind(full) != "file":
                    continue
                try:
                    with open(full, encoding="utf-8", errors="replace") as handle:
                        refs[os.path.relpath(full, refs_dir)] = handle.read(200).strip()
                except OSError:
                    continue
    snapshots = {}
    for name in _listdir(os.path.join(repo, "snapshots")):
        full = os.path.join(repo, "snapshots", name)
        kind = _kind(full)
        snapshots[name] = _scan_snapshot(full) if kind == "dir" else {"kind": kind, "links": {}, "bytes": 0}
    blobs = {
        name: _size(os.path.join(repo, "blobs", name))
        for name in _listdir(os.path.join(repo, "blobs"))
        if _kind(os.path.join(repo, "blobs", name)) == "file"
    }
    trees = {name: _size(os.path.join(repo, "trees", name)) for name in _listdir(os.path.join(repo, "trees"))}
    no_exist = [n for n in _listdir(os.path.join(repo, ".no_exist")) if _COMMIT.match(n)]
    record_dir = os.path.join(models_dir, *RECORDS, folder)
    records = {
        name[:-5]: _size(os.path.join(record_dir, name))
        for name in _listdir(record_dir)
        if name.endswith(".json") and _COMMIT.match(name[:-5])
    }
    out.update(refs=refs, snapshots=snapshots, blobs=blobs, trees=trees, no_exist=no_exist, records=records)
    return out


def scan(models_dir, folders):
    """{"exists", "repos": {folder: scan_repo}} for the named folders only (names checked)."""
    root = os.path.realpath(models_dir)
    repos = {}
    for folder in folders:
        if _FOLDER.match(folder):
            repos[folder] = scan_repo(root, folder)
    return {"exists": os.path.isdir(root), "repos": repos}


def check_path(root, rel):
    """The absolute path of `rel` under `root`, or a reason why it may not be removed."""
    if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        return None, "not a relative path"
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None, "not a plain path"
    if parts[0] == RECORDS[0]:
        if len(parts) != 4 or parts[1] != RECORDS[1] or not _FOLDER.match(parts[2]):
            return None, "not an lpfleet record"
    elif not _FOLDER.match(parts[0]) or len(parts) < 3:
        return None, "not inside a repo folder"
    current = root
    for part in parts[:-1]:  # every folder on the way must be a real folder: no symlink is followed
        current = os.path.join(current, part)
        if _kind(current) != "dir":
            return None, f"{os.path.relpath(current, root)} is not a real folder"
    full = os.path.join(root, *parts)
    if os.path.commonpath([root, full]) != root:
        return None, "outside the models dir"
    return full, ""


def remove(models_dir, paths):
    """Remove each path (relative to the models dir); links and files are unlinked, folders removed without
    following links. Returns {"removed": [...], "refused": [[path, why]], "failed": [[path, error]]}."""
    root = os.path.realpath(models_dir)
    out = {"removed": [], "refused": [], "failed": []}
    for rel in paths:
        full, why = check_path(root, rel)
        if full is None:
            out["refused"].append([rel, why])
            continue
        kind = _kind(full)
        try:
            if kind == "absent":
                continue
            if kind == "dir":
                shutil.rmtree(
                    full
                )  # fd-based on Linux: never follows a link inside (rmtree.avoids_symlink_attacks)
            else:
                os.unlink(full)
            out["removed"].append(rel)
        except OSError as exc:
            out["failed"].append([rel, f"{exc.__class__.__name__}: {exc.strerror or exc}"])
    return out


def main(argv):
    raw = base64.b64decode(argv[1]).decode("utf-8") if len(argv) > 1 else sys.stdin.read()
    request = json.loads(raw or "{}")
    if argv[:1] == ["scan"]:
        result = scan(request["models_dir"], request.get("folders") or [])
    elif argv[:1] == ["remove"]:
        result = remove(request["models_dir"], request.get("paths") or [])
    else:
        sys.stderr.write("usage: prune_exec.py scan|remove [BASE64-JSON]\n")
        return 2
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    if result.get("refused") or result.get("failed"):
        bad = (result.get("refused") or []) + (result.get("failed") or [])
        sys.stderr.write(f"prune: {len(bad)} path(s) not removed, first: {bad[0][0]}: {bad[0][1]}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
