"""`models.lock`: every model the fleet needs, pinned to a commit and a file list with hashes.

Pure: no I/O, no network, no pyinfra (it runs on nodes too, inside the weights runtime, where only the standard
library and PyYAML are shipped). `lpfleet lock` fills it from the hub (`lpfleet.hub`); the
weights step fetches exactly what it lists; verification checks nodes against it. Format: docs/weights.md.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

LOCK_VERSION = 1
# Always used with `fullmatch` (a bare `$` also matches before a trailing newline).
HEX40 = re.compile(r"[0-9a-f]{40}")
HEX64 = re.compile(r"[0-9a-f]{64}")
# huggingface_hub's repo id grammar (`validate_repo_id`): org/name, word characters, "-" and ".", at most 96
# each, no "--" or ".." anywhere, not starting or ending with "-" or ".".
_ID_PART = r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
MODEL_ID = re.compile(rf"{_ID_PART}/{_ID_PART}")
MAX_PATH = 4096
MAX_FILE_SIZE = 1 << 50  # 1 PiB: more than any model file; a bigger size is a broken or hostile listing
HEADER = "# models.lock: written by `lpfleet lock`, read by the weights step. Do not edit; see docs/weights.md.\n"


class LockError(ValueError):
    """models.lock is unreadable or inconsistent; the message names the entry and field."""


# --- the one check of every value a hub, a mirror, a peer or a lock file hands us (paths on nodes)


def model_id_problem(model_id: object) -> str | None:
    """Why `model_id` is not a hub repo id (org/name), or None."""
    if not isinstance(model_id, str) or not MODEL_ID.fullmatch(model_id):
        return "expected org/name (letters, digits, '_', '-', '.'; at most 96 characters each)"
    if "--" in model_id or ".." in model_id:
        return "'--' and '..' are not allowed in a repo id"
    return None


def commit_problem(commit: object) -> str | None:
    if not isinstance(commit, str) or not HEX40.fullmatch(commit):
        return "expected 40 lowercase hex digits"
    return None


def path_problem(path: object) -> str | None:
    """Why a file path of a repo listing cannot become a path under `snapshots/<commit>/`, or None.

    Relative, normalised, no empty, "." or ".." segment, no backslash, no NUL or other control character."""
    if not isinstance(path, str) or not path:
        return "expected a non-empty string"
    if len(path) > MAX_PATH:
        return f"longer than {MAX_PATH} characters"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return "contains a control character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/"):
        return "is absolute"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "has an empty, '.' or '..' segment"
    if posixpath.normpath(path) != path:
        return "is not normalised"
    return None


def file_problem(path: object, size: object, sha256: object, git_blob: object) -> str | None:
    """Why one listed file is unusable, naming the field; None when it is fine."""
    problem = path_problem(path)
    if problem:
        return f"path {path!r}: {problem}"
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_FILE_SIZE:
        return f"{path}: size: expected an integer from 0 to {MAX_FILE_SIZE}, got {size!r}"
    if (sha256 is None) == (git_blob is None):
        return f"{path}: exactly one of sha256 / git_blob"
    if sha256 is not None and not (isinstance(sha256, str) and HEX64.fullmatch(sha256)):
        return f"{path}: sha256: expected 64 lowercase hex digits, got {str(sha256)[:80]!r}"
    if git_blob is not None and not (isinstance(git_blob, str) and HEX40.fullmatch(git_blob)):
        return f"{path}: git_blob: expected 40 lowercase hex digits, got {str(git_blob)[:80]!r}"
    return None


@dataclass(frozen=True)
class LockedFile:
    """One file of a locked model: an LFS file has a sha256, any other file its git blob id."""

    path: str
    size: int
    sha256: str | None = None
    git_blob: str | None = None

    @property
    def etag(self) -> str:
        """The name of its blob in the HF cache (`blobs/<etag>`)."""
        return self.sha256 or self.git_blob or ""

    def to_dict(self) -> dict:
        out: dict = {"path": self.path, "size": self.size}
        if self.sha256:
            out["sha256"] = self.sha256
        else:
            out["git_blob"] = self.git_blob
        return out


@dataclass(frozen=True)
class ModelRequest:
    """What the fleet asks for: a repo, a revision (branch, tag or commit) and include globs (None = all)."""

    model_id: str
    revision: str = "main"
    include: tuple[str, ...] | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.model_id, self.revision)


@dataclass(frozen=True)
class LockedModel:
    model_id: str
    revision: str
    commit: str
    include: tuple[str, ...] | None
    files: tuple[LockedFile, ...]
    gated: bool | None = None  # None: the hub did not say (a mirror without model info)
    unchecked: tuple[str, ...] = ()  # what the endpoint could not confirm (said, never silently skipped)

    @property
    def key(self) -> tuple[str, str]:
        return (self.model_id, self.revision)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def request(self) -> ModelRequest:
        return ModelRequest(self.model_id, self.revision, self.include)

    def to_dict(self) -> dict:
        out: dict = {
            "id": self.model_id,
            "revision": self.revision,
            "commit": self.commit,
            "include": list(self.include) if self.include is not None else None,
        }
        if self.gated is not None:
            out["gated"] = self.gated
        if self.unchecked:
            out["unchecked"] = list(self.unchecked)
        out["files"] = [f.to_dict() for f in self.files]
        return out


@dataclass(frozen=True)
class ModelsLock:
    models: tuple[LockedModel, ...] = ()
    version: int = LOCK_VERSION

    def get(self, model_id: str, revision: str) -> LockedModel | None:
        return next((m for m in self.models if m.key == (model_id, revision)), None)

    @property
    def unique_bytes(self) -> int:
        """Bytes of every distinct blob the lock names (what a fleet must fetch upstream at least once)."""
        blobs: dict[tuple[str, str], int] = {}
        for m in self.models:
            for f in m.files:
                blobs[(m.model_id, f.etag)] = f.size
        return sum(blobs.values())


# --- selection, as huggingface_hub's filter_repo_objects does it


def pattern_matches(path: str, pattern: str) -> bool:
    """fnmatch like huggingface_hub: a pattern ending in "/" selects everything below that folder."""
    if pattern.endswith("/"):
        pattern += "*"
    return fnmatch.fnmatch(path, pattern)


def select_paths(paths: Iterable[str], include: Sequence[str] | None) -> list[str]:
    """The paths the include globs select (all when `include` is None), sorted."""
    if include is None:
        return sorted(paths)
    return sorted(p for p in paths if any(pattern_matches(p, pat) for pat in include))


def exact_patterns(paths: Iterable[str]) -> list[str]:
    """fnmatch patterns matching exactly these paths (so a download takes the lock's list, nothing more)."""
    return [re.sub(r"([*?\[])", r"[\1]", p) for p in sorted(paths)]


# --- what a fleet needs


def requests_for_entries(entries: Iterable[tuple[str, str]], revision: str) -> list[ModelRequest]:
    """(pipeline, model_id) pairs of managed entries -> the repos to lock, extras included, deduplicated.

    The catalog knows include patterns and extra models; unknown models take every file.
    """
    from lpfleet import catalog

    seen: dict[tuple[str, str], ModelRequest] = {}
    for pipeline, model_id in entries:
        for wanted in catalog.weights_for(pipeline, model_id):
            request = ModelRequest(wanted.model_id, revision, wanted.include)
            seen.setdefault(request.key, request)
    return list(seen.values())


def managed_entries(spec) -> list[tuple[str, str]]:  # spec: lpfleet.spec.NodeSpec (not imported: runs on nodes)
    """The (pipeline, model_id) of every entry whose weights lpfleet puts in the models dir."""
    return [(e.pipeline, e.model_id) for e in spec.models if not e.is_external]


def requests_for_spec(spec) -> list[ModelRequest]:
    return requests_for_entries(managed_entries(spec), spec.weights.branch)


def models_for_node(lock: ModelsLock, spec) -> tuple[list[LockedModel], list[ModelRequest]]:
    """(the locked models this node needs, the requests the lock does not cover: run `lpfleet lock`)."""
    found, missing = [], []
    for request in requests_for_spec(spec):
        locked = lock.get(request.model_id, request.revision)
        if locked is None or locked.include != request.include:
            missing.append(request)
        else:
            found.append(locked)
    return found, missing


# --- YAML


def dump(lock: ModelsLock) -> str:
    import yaml  # here, not at the top: the node-side weights runtime imports this module and never parses YAML

    models = sorted(lock.models, key=lambda m: m.key)
    body = yaml.safe_dump(
        {"version": lock.version, "models": [m.to_dict() for m in models]},
        sort_keys=False,
        default_flow_style=False,
        width=200,
    )
    return HEADER + body


def load(text: str, source: str = "models.lock") -> ModelsLock:
    """Parse and check a lock; LockError names the entry (`models[N] <id>`) and the field."""
    import yaml

    # libyaml's parser when PyYAML has it (the same YAML, several times faster than the pure-Python one: a run
    # parses the lock before its first fact); the pure-Python SafeLoader otherwise
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        raw = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)
    except yaml.YAMLError as exc:
        raise LockError(f"{source}: not YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise LockError(f"{source}: expected a mapping with 'version' and 'models'")
    if raw.get("version") != LOCK_VERSION:
        raise LockError(f"{source}: version: expected {LOCK_VERSION}, got {raw.get('version')!r}")
    models_raw = raw.get("models") or []
    if not isinstance(models_raw, list):
        raise LockError(f"{source}: models: expected a list")
    models = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(models_raw):
        where = f"{source}: models[{index}]"
        if not isinstance(item, dict):
            raise LockError(f"{where}: expected a mapping")
        where = f"{where} {item.get('id', '?')}"
        model = _model_from_dict(item, where)
        if model.key in seen:
            raise LockError(f"{where}: id/revision: listed twice")
        seen.add(model.key)
        models.append(model)
    return ModelsLock(tuple(models))


def load_model_dict(item: dict, where: str = "model") -> LockedModel:
    """One model entry (as `LockedModel.to_dict` writes it) back; LockError naming the field."""
    return _model_from_dict(item, where)


def _model_from_dict(item: dict, where: str) -> LockedModel:
    def need(key: str, kind: type) -> object:
        value = item.get(key)
        if not isinstance(value, kind):
            raise LockError(f"{where}: {key}: expected {kind.__name__}, got {value!r}")
        return value

    unknown = set(item) - {"id", "revision", "commit", "include", "gated", "unchecked", "files"}
    if unknown:
        raise LockError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    model_id = str(need("id", str))
    problem = model_id_problem(model_id)
    if problem:
        raise LockError(f"{where}: id: {problem}")
    commit = str(need("commit", str))
    if commit_problem(commit):
        raise LockError(f"{where}: commit: expected 40 hex digits, got {commit!r}")
    include = item.get("include")
    if include is not None and (not isinstance(include, list) or not all(isinstance(p, str) for p in include)):
        raise LockError(f"{where}: include: expected a list of globs or null")
    files = []
    seen: set[str] = set()
    for n, f in enumerate(need("files", list)):  # type: ignore[arg-type]
        fwhere = f"{where}: files[{n}]"
        if not isinstance(f, dict) or not isinstance(f.get("path"), str) or not isinstance(f.get("size"), int):
            raise LockError(f"{fwhere}: expected path (string) and size (integer)")
        unknown_keys = set(f) - {"path", "size", "sha256", "git_blob"}
        if unknown_keys:
            raise LockError(f"{fwhere}: unknown field(s) {', '.join(sorted(unknown_keys))}")
        sha256, blob = f.get("sha256"), f.get("git_blob")
        problem = file_problem(f["path"], f["size"], sha256, blob)
        if problem:
            named = problem.startswith(f["path"])
            raise LockError(f"{fwhere} {problem}" if named else f"{fwhere}: {problem}")
        path = f["path"]
        if path in seen or any(p.startswith(path + "/") or path.startswith(p + "/") for p in seen):
            raise LockError(f"{fwhere} {f['path']}: listed twice, or both a file and a folder")
        seen.add(f["path"])
        files.append(LockedFile(f["path"], f["size"], sha256, blob))
    gated = item.get("gated")
    return LockedModel(
        model_id=model_id,
        revision=str(need("revision", str)),
        commit=commit,
        include=tuple(include) if include is not None else None,
        files=tuple(sorted(files, key=lambda f: f.path)),
        gated=gated if isinstance(gated, bool) else None,
        unchecked=tuple(item.get("unchecked") or ()),
    )


# --- changes


@dataclass(frozen=True)
class LockChange:
    model_id: str
    revision: str
    kind: str  # added | removed | moved (new commit) | files (same commit, other selection)
    detail: str = ""


@dataclass
class LockDiff:
    changes: list[LockChange] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def diff(old: ModelsLock | None, new: ModelsLock) -> LockDiff:
    """What `lpfleet lock` changed (nothing: the file is left untouched)."""
    result = LockDiff()
    old_models = {m.key: m for m in (old.models if old else ())}
    new_models = {m.key: m for m in new.models}
    for key in sorted(set(old_models) | set(new_models)):
        before, after = old_models.get(key), new_models.get(key)
        if before is None and after is not None:
            result.changes.append(LockChange(*key, "added", f"{after.commit[:12]}, {len(after.files)} files"))
        elif after is None and before is not None:
            result.changes.append(LockChange(*key, "removed"))
        elif before is not None and after is not None:
            if before.commit != after.commit:
                result.changes.append(LockChange(*key, "moved", f"{before.commit[:12]} -> {after.commit[:12]}"))
            elif before.to_dict() != after.to_dict():
                result.changes.append(LockChange(*key, "files", "same commit, other file selection or metadata"))
    if old is not None and old.version != new.version:
        result.changes.append(LockChange("*", "*", "format", f"version {old.version} -> {new.version}"))
    return result


def merge_for_write(new_models: Sequence[LockedModel]) -> ModelsLock:
    """The lock to write: the models resolved now, sorted (models nobody asks for any more drop out)."""
    return ModelsLock(tuple(sorted(new_models, key=lambda m: m.key)))
