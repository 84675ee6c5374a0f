"""What `lpfleet prune` removes from a models dir: snapshots and blobs that models.lock no longer names.

Pure: no I/O. The input is a scan of the repo folders the lock names (`lpfleet.prune_exec.scan`, stdlib, run
locally or on a node), a JSON-able dict:

    {"repos": {"models--org--name": {
        "kind": "dir" | "absent" | "symlink" | "other",      # the folder itself (lstat)
        "refs": {"main": "<commit>", "pr/1": "..."},           # every file under refs/, its content stripped
        "snapshots": {"<commit>": {"kind": "dir" | "symlink" | "other",
                                   "links": {"<path>": "<blob name>" | None}, "bytes": int}},
        "blobs": {"<name>": size},                             # regular files in blobs/ (lstat sizes)
        "trees": {"<commit>.json": size}, "no_exist": ["<commit>"],
        "records": {"<commit>": size}}}}   # lpfleet's .lpfleet/verified/<folder>/<commit>.json

A snapshot link's blob name is the last part of a relative `../../blobs/<name>` target (None for anything
else: a regular file, an absolute or foreign link). What stays: for every repo the lock names, the snapshots
of its locked commits and every blob those snapshots link to or the lock names (a blob fetched but not linked
yet is kept). Everything else of that repo goes: other snapshots, the blobs only they used, their
trees/.no_exist entries, refs naming them and lpfleet's verification records of them. Temp files
(`*.incomplete`) are left to the next fetch, which deletes them. A repo the lock does not name is never looked
at. A repo whose runner-read ref (`refs/<branch>`) names a commit the lock does not is not pruned at all:
removing that snapshot would break the runner before the weights step has moved the ref back; the plan says so
instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lpfleet.lock import LockedModel
from lpfleet.weights import human_bytes, repo_folder_name

RECORDS_DIR = ".lpfleet/verified"


@dataclass(frozen=True)
class Removal:
    """One path to remove, relative to the models dir, and the bytes that frees."""

    path: str
    kind: str  # snapshot | blob | tree | no-exist | ref | record
    bytes: int
    reason: str


@dataclass(frozen=True)
class RepoPrune:
    folder: str
    keep: tuple[str, ...]  # the locked commits kept
    removals: tuple[Removal, ...] = ()
    skipped: str = ""  # why this repo is left as it is (nothing removed)

    @property
    def bytes(self) -> int:
        return sum(r.bytes for r in self.removals)

    @property
    def commits_removed(self) -> list[str]:
        return [r.path.rsplit("/", 1)[-1] for r in self.removals if r.kind == "snapshot"]

    def summary(self) -> str:
        if self.skipped:
            return f"{self.folder}: left as it is: {self.skipped}"
        if not self.removals:
            return f"{self.folder}: nothing to remove"
        blobs = sum(1 for r in self.removals if r.kind == "blob")
        commits = self.commits_removed
        parts = []
        if commits:
            shown = ", ".join(c[:12] for c in commits[:3]) + (", ..." if len(commits) > 3 else "")
            parts.append(f"{len(commits)} snapshot{'s' if len(commits) != 1 else ''} ({shown})")
        if blobs:
            parts.append(f"{blobs} blob{'s' if blobs != 1 else ''}")
        others = len(self.removals) - blobs - len(commits)
        if others:
            parts.append(f"{others} ref/record file{'s' if others != 1 else ''}")
        return f"{self.folder}: {', '.join(parts)}: {human_bytes(self.bytes)}"


@dataclass(frozen=True)
class PrunePlan:
    repos: tuple[RepoPrune, ...] = ()

    @property
    def removals(self) -> list[Removal]:
        return [r for repo in self.repos for r in repo.removals]

    @property
    def bytes(self) -> int:
        return sum(repo.bytes for repo in self.repos)

    @property
    def empty(self) -> bool:
        return not self.removals

    def lines(self) -> list[str]:
        return [repo.summary() for repo in self.repos]

    def to_dict(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "repos": [
                {
                    "folder": r.folder,
                    "keep": list(r.keep),
                    "skipped": r.skipped,
                    "bytes": r.bytes,
                    "remove": [
                        {"path": x.path, "kind": x.kind, "bytes": x.bytes, "reason": x.reason}
                        for x in r.removals
                    ],
                }
                for r in self.repos
            ],
        }


def scan_request(models: Sequence[LockedModel]) -> list[str]:
    """The repo folders a prune may look at: exactly those of the locked models (sorted, unique)."""
    return sorted({repo_folder_name(m.model_id) for m in models})


def _blob_of_link(link: Any) -> str | None:
    return link if isinstance(link, str) and link and "/" not in link and link not in (".", "..") else None


def plan_repo(
    folder: str,
    locked: Sequence[LockedModel],
    scan: Mapping[str, Any] | None,
    branch: str = "main",
    ref_follows_lock: bool = False,
) -> RepoPrune:
    """The removals in one repo folder, given the locked models that live in it.

    `ref_follows_lock`: the caller puts `refs/<branch>` on the locked commit before removing (the weights step
    fetches first), so a ref on another commit does not hold the repo back."""
    keep = tuple(sorted({m.commit for m in locked}))
    scan = scan or {}
    kind = scan.get("kind", "absent")
    if kind == "absent":
        return RepoPrune(folder, keep)
    if kind != "dir":
        return RepoPrune(folder, keep, skipped=f"{folder} is a {kind}, not a folder (never followed)")
    refs: Mapping[str, Any] = scan.get("refs") or {}
    read_ref = refs.get(branch)
    if read_ref is not None and read_ref not in keep and not ref_follows_lock:
        return RepoPrune(
            folder,
            keep,
            skipped=(
                f"refs/{branch} names {str(read_ref)[:12]}, not the locked commit "
                f"{'/'.join(c[:12] for c in keep)}: run the weights step (or `lpfleet prefetch`) first"
            ),
        )
    snapshots: Mapping[str, Any] = scan.get("snapshots") or {}
    needed: set[str] = {f.etag for m in locked for f in m.files}
    for commit in keep:
        snap = snapshots.get(commit) or {}
        for link in (snap.get("links") or {}).values():
            blob = _blob_of_link(link)
            if blob:
                needed.add(blob)
    removals: list[Removal] = []
    gone = sorted(c for c in snapshots if c not in keep)
    for commit in gone:
        snap = snapshots.get(commit) or {}
        removals.append(
            Removal(
                f"{folder}/snapshots/{commit}",
                "snapshot",
                int(snap.get("bytes") or 0),
                "not the locked commit",
            )
        )
    for name, size in sorted((scan.get("blobs") or {}).items()):
        if name in needed or name.endswith((".incomplete", ".lock")):
            continue
        removals.append(
            Removal(f"{folder}/blobs/{name}", "blob", int(size or 0), "no locked snapshot links to it")
        )
    for name, size in sorted((scan.get("trees") or {}).items()):
        if name.endswith(".json") and name[: -len(".json")] not in keep:
            removals.append(
                Removal(f"{folder}/trees/{name}", "tree", int(size or 0), "listing of an unlocked commit")
            )
    for commit in sorted(scan.get("no_exist") or []):
        if commit not in keep:
            removals.append(
                Removal(f"{folder}/.no_exist/{commit}", "no-exist", 0, "404 cache of an unlocked commit")
            )
    for ref, commit in sorted(refs.items()):
        if commit not in keep and ref != branch:  # refs/<branch> is rewritten, never removed
            removals.append(
                Removal(f"{folder}/refs/{ref}", "ref", 0, f"names {str(commit)[:12]}, which goes")
            )
    for commit, size in sorted((scan.get("records") or {}).items()):
        if commit not in keep:
            removals.append(
                Removal(
                    f"{RECORDS_DIR}/{folder}/{commit}.json",
                    "record",
                    int(size or 0),
                    "lpfleet's record of an unlocked commit",
                )
            )
    return RepoPrune(folder, keep, tuple(removals))


def plan_prune(
    models: Sequence[LockedModel],
    scan: Mapping[str, Any],
    branch: str = "main",
    ref_follows_lock: bool = False,
) -> PrunePlan:
    """Every repo folder the locked models live in, planned (see the module docstring)."""
    by_folder: dict[str, list[LockedModel]] = {}
    for model in models:
        by_folder.setdefault(repo_folder_name(model.model_id), []).append(model)
    repos = scan.get("repos") or {}
    return PrunePlan(
        tuple(
            plan_repo(folder, by_folder[folder], repos.get(folder), branch, ref_follows_lock)
            for folder in sorted(by_folder)
        )
    )


@dataclass(frozen=True)
class Drift:
    """What a repo holds beyond its locked commit: commits fetched by something other than lpfleet
    (a runner online: huggingface_hub moved refs/<branch>), and older commits lpfleet itself verified."""

    folder: str
    ref: str | None  # refs/<branch>
    foreign: tuple[str, ...] = ()  # commits of refs/snapshots lpfleet never verified
    stale: tuple[str, ...] = ()  # older commits lpfleet verified once (left after a lock change)
    notes: tuple[str, ...] = field(default=())


def repo_drift(
    folder: str, locked_commit: str, scan: Mapping[str, Any] | None, branch: str = "main"
) -> Drift:
    """Commits in a repo folder other than the locked one, split by who fetched them (pure)."""
    scan = scan or {}
    refs = scan.get("refs") or {}
    records = set((scan.get("records") or {}).keys())
    others = {c for c in (scan.get("snapshots") or {}) if c != locked_commit}
    others.update(c for c in refs.values() if isinstance(c, str) and c and c != locked_commit)
    foreign = tuple(sorted(c for c in others if c not in records))
    stale = tuple(sorted(c for c in others if c in records))
    return Drift(folder, refs.get(branch), foreign, stale)
