"""What a node's models dir lacks, given models.lock: the weights plan, and the fleet's fan-out plan.

Pure: no I/O. Its input is a scan of a models dir (`lpfleet.weights_fetch.scan_models_dir`, run on the node by
the `WeightsState` fact or locally by `lpfleet prefetch`), a JSON-able dict:

    {"exists": bool, "free_bytes": int, "repos": {"models--org--name": {
        "refs": {"main": "<commit>"},
        "snapshots": {"<commit>": {"<path>": {"blob": "<blob file name the link points at>",
                                              "relative": bool, "size": int | None, "stamp": [..] | None}}},
        "verified": {"<commit>": {"<path>": {"etag": "...", "stamp": [..]}}},
        "incomplete": int}}}

A file counts as present only when everything agrees: the snapshot entry is a relative symlink to
`blobs/<etag>` of the locked etag, the blob has the locked size, and lpfleet's verification record says that
exact blob (same stamp: size, mtime, ctime, inode) hashed to the locked etag. Anything else (a blob rewritten in
place, a copy without the record, a missing link) is re-verified or re-fetched. A model is complete only when,
in addition, `refs/<branch>` names the locked commit: that ref is written last, so an interrupted run is never
mistaken for a complete one, by lpfleet or by the runner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lpfleet.lock import LockedFile, LockedModel

# Headroom a download needs beyond the files' sizes (temp files are renamed, never copied).
DISK_MARGIN_BYTES = 64 * 1024 * 1024


def repo_folder_name(model_id: str) -> str:
    """`org/name` -> `models--org--name`, the HF cache folder (case kept: the runner's lookup is exact)."""
    return "models--" + model_id.replace("/", "--")


def git_blob_header(size: int) -> bytes:
    """What git hashes before a blob's content: sha1(b"blob <size>\\0" + content) is its id."""
    return b"blob %d\0" % size


@dataclass(frozen=True)
class FileStatus:
    path: str
    size: int
    state: str  # ok | unverified (present, needs hashing) | missing (fetch it)
    reason: str = ""


@dataclass(frozen=True)
class ModelStatus:
    model: LockedModel
    files: tuple[FileStatus, ...]
    ref_ok: bool

    @property
    def complete(self) -> bool:
        return self.ref_ok and all(f.state == "ok" for f in self.files)

    @property
    def missing(self) -> list[FileStatus]:
        return [f for f in self.files if f.state == "missing"]

    @property
    def unverified(self) -> list[FileStatus]:
        return [f for f in self.files if f.state == "unverified"]

    @property
    def bytes_to_fetch(self) -> int:
        return sum(f.size for f in self.missing)

    def summary(self) -> str:
        if self.complete:
            return f"{self.model.model_id}@{self.model.commit[:12]}: complete"
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_human(self.bytes_to_fetch)})")
        if self.unverified:
            parts.append(f"{len(self.unverified)} to re-verify")
        if not self.ref_ok:
            parts.append("ref not at the locked commit")
        return f"{self.model.model_id}@{self.model.commit[:12]}: " + ", ".join(parts)


@dataclass(frozen=True)
class WeightsPlan:
    """A node's models dir against the models it needs."""

    models: tuple[ModelStatus, ...]
    free_bytes: int | None = None
    problems: tuple[str, ...] = ()  # things no fetch can fix (models dir is a file, ...)

    @property
    def complete(self) -> bool:
        return not self.problems and all(m.complete for m in self.models)

    @property
    def incomplete(self) -> list[ModelStatus]:
        return [m for m in self.models if not m.complete]

    @property
    def bytes_to_fetch(self) -> int:
        return sum(m.bytes_to_fetch for m in self.models)

    def disk_shortfall(self) -> int:
        """Bytes missing on the disk for this plan (0 when it fits, or when free space is unknown)."""
        if self.free_bytes is None or not self.bytes_to_fetch:
            return 0
        need = self.bytes_to_fetch + DISK_MARGIN_BYTES
        return max(0, need - self.free_bytes)


def file_status(locked: LockedFile, snapshot: Mapping[str, Any], verified: Mapping[str, Any]) -> FileStatus:
    entry = snapshot.get(locked.path)
    if entry is None:
        return FileStatus(locked.path, locked.size, "missing", "not in the snapshot")
    if entry.get("blob") != locked.etag:
        return FileStatus(locked.path, locked.size, "missing", f"links to blob {entry.get('blob')!r}, not {locked.etag}")
    if not entry.get("relative", False):
        return FileStatus(locked.path, locked.size, "missing", "not a relative symlink into blobs/")
    if entry.get("size") is None:
        return FileStatus(locked.path, locked.size, "missing", "blob missing")
    if entry.get("size") != locked.size:
        return FileStatus(locked.path, locked.size, "missing", f"blob has {entry.get('size')} bytes, not {locked.size}")
    record = verified.get(locked.path)
    if record is None or record.get("etag") != locked.etag:
        return FileStatus(locked.path, locked.size, "unverified", "never verified")
    if list(record.get("stamp") or []) != list(entry.get("stamp") or [None]):
        return FileStatus(locked.path, locked.size, "unverified", "blob changed since it was verified")
    return FileStatus(locked.path, locked.size, "ok")


def model_status(model: LockedModel, repo_scan: Mapping[str, Any] | None, branch: str) -> ModelStatus:
    repo_scan = repo_scan or {}
    snapshot = (repo_scan.get("snapshots") or {}).get(model.commit) or {}
    verified = (repo_scan.get("verified") or {}).get(model.commit) or {}
    files = tuple(file_status(f, snapshot, verified) for f in model.files)
    ref_ok = (repo_scan.get("refs") or {}).get(branch) == model.commit
    return ModelStatus(model, files, ref_ok)


def plan_node(models: Sequence[LockedModel], scan: Mapping[str, Any], branch: str) -> WeightsPlan:
    """The node's weights plan from its scan (see the module docstring for the scan's shape)."""
    problems = tuple(scan.get("problems") or ())
    repos = scan.get("repos") or {}
    statuses = tuple(model_status(m, repos.get(repo_folder_name(m.model_id)), branch) for m in models)
    return WeightsPlan(statuses, scan.get("free_bytes"), problems)


def scan_request(models: Sequence[LockedModel]) -> dict[str, list[str]]:
    """What the scan must look at: repo folder -> the locked commits (only those snapshots are listed)."""
    wanted: dict[str, list[str]] = {}
    for m in models:
        commits = wanted.setdefault(repo_folder_name(m.model_id), [])
        if m.commit not in commits:
            commits.append(m.commit)
    return wanted


# --- fan-out: upstream once per fleet, copies multiplied along a chain of peers

FALLBACK_ANCESTORS = 2  # how many nodes further up its chain a node may fall back to (plus the chain's root)


@dataclass(frozen=True)
class ModelSource:
    """Where one node gets one model in fan-out mode: upstream (it is the seed) or the peer before it in the
    model's chain, then `fallbacks` (further up the chain, nearest first) when that peer fails or lies."""

    model: LockedModel
    peer: str | None  # None: fetch from upstream
    fallbacks: tuple[str, ...] = ()

    @property
    def upstream(self) -> bool:
        return self.peer is None


@dataclass
class FanoutPlan:
    """Per host, per model it lacks: its source. Each model's nodes form a chain from a node that has it (or
    the seed, which fetches it upstream): every node copies from the one before it while that one is still
    receiving the bytes, so each node uploads about one copy and the fleet is ready in about the time one node
    takes."""

    sources: dict[str, list[ModelSource]] = field(default_factory=dict)
    order: list[tuple[tuple[str, str], int]] = field(default_factory=list)  # models fetched, in order; bytes

    def fetched_before(self, model: LockedModel) -> tuple[int, int]:
        """(models, bytes) fetched somewhere in the fleet before `model`: every node fetches in this one order,
        so a peer may have to get through these before it has `model` to forward (bounds the wait for it)."""
        before = [size for key, size in self.order if key < (model.model_id, model.commit)]
        return len(before), sum(before)

    def seeds(self, host: str) -> list[LockedModel]:
        return [s.model for s in self.sources.get(host, []) if s.upstream]

    def from_peers(self, host: str) -> dict[str, list[LockedModel]]:
        out: dict[str, list[LockedModel]] = {}
        for s in self.sources.get(host, []):
            if s.peer is not None:
                out.setdefault(s.peer, []).append(s.model)
        return out

    def serving(self, host: str) -> list[LockedModel]:
        """Models this host serves to peers (it has them, or receives them in this run and forwards them)."""
        served: dict[tuple[str, str], LockedModel] = {}
        for sources in self.sources.values():
            for s in sources:
                if s.peer == host or host in s.fallbacks:
                    served[(s.model.model_id, s.model.commit)] = s.model
        return list(served.values())

    def relaying(self, host: str) -> list[LockedModel]:
        """Served models this host receives in this run itself: its mirror forwards them as they arrive."""
        own = {(s.model.model_id, s.model.commit) for s in self.sources.get(host, [])}
        return [m for m in self.serving(host) if (m.model_id, m.commit) in own]

    def peers_of(self, host: str) -> int:
        """How many nodes may copy from this host (sizes its mirror's maximum life)."""
        return sum(1 for h, ss in self.sources.items() if any(s.peer == host or host in s.fallbacks for s in ss))

    @property
    def upstream_models(self) -> list[tuple[str, LockedModel]]:
        return [(h, s.model) for h, ss in sorted(self.sources.items()) for s in ss if s.upstream]


def plan_fanout(plans: Mapping[str, WeightsPlan]) -> FanoutPlan:
    """For every (model, commit) some node lacks, chains of the nodes that need it (sorted host names: stable
    across runs). A chain starts at a node that already has the model complete (no upstream traffic at all;
    the needing nodes are dealt round-robin over every such node), else at the seed: the first node needing it,
    which fetches it upstream. Upstream bytes are therefore at most one copy of each model, whatever the node
    count, and each node forwards to one successor per model (docs/weights.md, "Fleet-ready time")."""
    complete_on: dict[tuple[str, str], list[str]] = {}
    needed_by: dict[tuple[str, str], list[tuple[str, LockedModel]]] = {}
    for host in sorted(plans):
        for status in plans[host].models:
            key = (status.model.model_id, status.model.commit)
            if status.complete:
                complete_on.setdefault(key, []).append(host)
            else:
                needed_by.setdefault(key, []).append((host, status.model))
    fanout = FanoutPlan()
    for key, hosts in sorted(needed_by.items()):
        fanout.order.append((key, sum(f.size for f in hosts[0][1].files)))
        chains = [[holder] for holder in complete_on.get(key, [])] or [[]]
        for n, (host, model) in enumerate(hosts):
            chain = chains[n % len(chains)]
            if not chain:  # nobody has it: the first node needing it is the seed
                source = ModelSource(model, None)
            else:
                ancestors = list(reversed(chain[:-1]))
                fallbacks = ancestors[:FALLBACK_ANCESTORS] + [a for a in ancestors[-1:] if a not in
                                                              ancestors[:FALLBACK_ANCESTORS]]
                source = ModelSource(model, chain[-1], tuple(fallbacks))
            fanout.sources.setdefault(host, []).append(source)
            chain.append(host)
    return fanout


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def human_bytes(n: int) -> str:
    return _human(n)
