"""Talking to a HuggingFace-compatible hub, and filling a models dir from it with huggingface_hub.

Two jobs, both on whatever machine runs them (the controller for `lpfleet lock` / `lpfleet prefetch`, a node
for the weights step, which ships this module there):
- `lock_model`: resolve one repo to a commit and its selected files with hashes, checking the exact-case id and
  gated access (what `lpfleet lock` writes into models.lock).
- `ensure_model`: make a models dir hold exactly one locked model, verified by hash, `refs/<branch>` written
  last. huggingface_hub's `snapshot_download` does the downloading and writes the cache; this module decides
  what to fetch, checks every byte afterwards and repairs what is wrong.

Only the endpoint given is ever contacted: telemetry is switched off before huggingface_hub is imported (its
agent registry call would otherwise go to huggingface.co), and no token is read from disk (`token=False` unless
one is passed).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import fcntl  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from huggingface_hub import constants as hf_constants  # noqa: E402

from lpfleet.lock import LockedFile, LockedModel, ModelRequest, exact_patterns, select_paths  # noqa: E402
from lpfleet.weights import WeightsPlan, git_blob_header, human_bytes, plan_node, repo_folder_name  # noqa: E402

hf_constants.HF_HUB_DISABLE_TELEMETRY = True  # also when huggingface_hub was imported before us

STATE_DIR = ".lpfleet"  # inside the models dir: verification records and our lock file
HASH_CHUNK = 4 * 1024 * 1024
Log = Callable[[str], None]


class HubError(Exception):
    """A model cannot be locked or fetched; the message says what is wrong and how to fix it."""

    def __init__(self, model_id: str, message: str, fix: str = "") -> None:
        self.model_id = model_id
        self.fix = fix
        super().__init__(f"{model_id}: {message}" + (f" ({fix})" if fix else ""))


# --- locking: resolve a repo to a commit and its files


def _api(endpoint: str, token: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint.rstrip("/"), token=token or False, library_name="lpfleet")


class HubAccessError(HubError):
    """Not a transient failure (gated, not found): retrying cannot help."""


def _gated_message(model_id: str, endpoint: str, token: str | None, token_env: str) -> HubError:
    page = f"{endpoint.rstrip('/')}/{model_id}"
    if not token:
        return HubAccessError(model_id, "gated model and no token",
                        f"set {token_env} on the controller to a token of an account that accepted the terms "
                        f"on the model's page {page}")
    return HubAccessError(model_id, "gated model and the token has no access",
                    f"accept the terms on the model's page {page} with the account the token belongs to")


def lock_model(request: ModelRequest, endpoint: str, token: str | None, token_env: str = "HF_TOKEN") -> LockedModel:
    """Resolve `request` on the hub: commit, selected files with sha256 / git blob ids.

    Checks: the repo exists, its canonical id is exactly `request.model_id`, the revision exists, the include
    globs select something, and the token opens the files (a HEAD of one file: gated repos answer 401/403).
    On a mirror that lacks `/api/models/{repo}` it falls back to the revision answer and lists what it could
    not check in `unchecked` instead of failing.
    """
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.hf_api import RepoFile

    api = _api(endpoint, token)
    model_id = request.model_id
    unchecked: list[str] = []
    canonical: str | None = None
    gated: bool | None = None
    try:
        info = api.model_info(model_id)
        canonical, gated = info.id, bool(info.gated)
    except GatedRepoError:
        raise _gated_message(model_id, endpoint, token, token_env) from None
    except RepositoryNotFoundError as exc:
        if exc.response is not None and exc.response.headers.get("X-Error-Code"):
            raise HubError(model_id, f"not found on {endpoint}",
                           "check the model_id (org/name, exact case) on the model's page") from None
        unchecked.append("model info (endpoint answers no /api/models/{repo}): canonical id and gating from "
                         "the revision answer only")
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (404, 405, 501):
            unchecked.append(f"model info (HTTP {status} from /api/models/{{repo}})")
        else:
            raise HubError(model_id, f"model info failed: {exc}") from None
    except OSError as exc:
        raise HubError(model_id, f"cannot reach {endpoint}: {exc}") from None
    try:
        rev_info = api.model_info(model_id, revision=request.revision)
    except RevisionNotFoundError:
        raise HubError(model_id, f"revision {request.revision!r} not found",
                       "use a branch, tag or commit that exists in the repo") from None
    except GatedRepoError:
        raise _gated_message(model_id, endpoint, token, token_env) from None
    except RepositoryNotFoundError:
        raise HubError(model_id, f"not found on {endpoint}",
                       "check the model_id (org/name, exact case) on the model's page") from None
    except (HfHubHTTPError, OSError) as exc:
        raise HubError(model_id, f"resolving revision {request.revision!r} failed: {exc}") from None
    commit = rev_info.sha
    if not commit or len(commit) != 40:
        raise HubError(model_id, f"revision {request.revision!r} resolved to no commit ({commit!r})")
    if canonical is None:
        canonical = getattr(rev_info, "id", None)
        if not canonical:
            unchecked.append("canonical id (no `id` in the revision answer)")
        if gated is None and getattr(rev_info, "gated", None) is not None:
            gated = bool(rev_info.gated)
    if canonical is not None and canonical != model_id:
        raise HubError(model_id, f"differs from the hub's canonical id {canonical!r}",
                       f"use model_id {canonical!r}: the runner's cache lookup is case-sensitive")
    try:
        entries = [e for e in api.list_repo_tree(model_id, revision=commit, recursive=True) if isinstance(e, RepoFile)]
    except GatedRepoError:
        raise _gated_message(model_id, endpoint, token, token_env) from None
    except (HfHubHTTPError, OSError) as exc:
        raise HubError(model_id, f"listing files of {commit[:12]} failed: {exc}") from None
    by_path = {e.path: e for e in entries}
    selected = select_paths(by_path, request.include)
    if not selected:
        raise HubError(model_id, f"include patterns {list(request.include or [])} select no file of {commit[:12]}",
                       "fix the catalog's include patterns for this model")
    files = []
    for path in selected:
        entry = by_path[path]
        if entry.lfs is not None:
            files.append(LockedFile(path, int(entry.lfs.size), sha256=entry.lfs.sha256))
        else:
            files.append(LockedFile(path, int(entry.size), git_blob=entry.blob_id))
    _check_access(model_id, commit, min(files, key=lambda f: f.size), endpoint, token, token_env)
    if gated is None:
        unchecked.append("gated flag (access itself was checked with a file request)")
    return LockedModel(model_id, request.revision, commit, request.include, tuple(files), gated, tuple(unchecked))


def _check_access(model_id: str, commit: str, probe: LockedFile, endpoint: str, token: str | None,
                  token_env: str) -> None:
    """HEAD one file as the nodes will: gated repos refuse here, and the answer must match the listing."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    url = hf_hub_url(model_id, probe.path, revision=commit, endpoint=endpoint.rstrip("/"))
    try:
        meta = get_hf_file_metadata(url, token=token or False, endpoint=endpoint.rstrip("/"))
    except GatedRepoError:
        raise _gated_message(model_id, endpoint, token, token_env) from None
    except RepositoryNotFoundError:
        raise HubError(model_id, "files not accessible (repository not found when fetching a file)",
                       "check the token's access to the repo") from None
    except (HfHubHTTPError, OSError) as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise _gated_message(model_id, endpoint, token, token_env) from None
        raise HubError(model_id, f"fetching metadata of {probe.path} failed: {exc}") from None
    if meta.etag and meta.etag != probe.etag:
        raise HubError(model_id, f"{probe.path}: the file answers etag {meta.etag}, the listing says {probe.etag}",
                       "the endpoint is inconsistent (a mirror out of sync?)")


# --- the models dir on disk (shared with the node-side fact: keep scan_models_dir self-contained)


def scan_models_dir(models_dir: str, wanted: dict) -> dict:
    """Scan a models dir for the repos and commits in `wanted` ({repo folder: [commits]}); see lpfleet.weights.

    Self-contained (stdlib imports inside, no other function used): the `WeightsState` fact ships this
    function's source to nodes and runs it with the node's python3.
    """
    import json as _json
    import os as _os
    import shutil as _shutil

    result: dict = {"exists": _os.path.isdir(models_dir), "free_bytes": None, "repos": {}, "problems": []}
    if _os.path.exists(models_dir) and not result["exists"]:
        result["problems"].append(f"{models_dir} exists and is not a directory")
        return result
    probe = models_dir
    while probe and not _os.path.isdir(probe):
        probe = _os.path.dirname(probe.rstrip("/")) or "/"
    try:
        result["free_bytes"] = _shutil.disk_usage(probe or "/").free
    except OSError:
        pass
    state_dir = _os.path.join(models_dir, ".lpfleet", "verified")
    for folder, commits in sorted(wanted.items()):
        repo_dir = _os.path.join(models_dir, folder)
        if not _os.path.isdir(repo_dir):
            continue
        repo: dict = {"refs": {}, "snapshots": {}, "verified": {}, "incomplete": 0}
        refs_dir = _os.path.join(repo_dir, "refs")
        for root, _dirs, names in _os.walk(refs_dir):
            for name in names:
                try:
                    with open(_os.path.join(root, name)) as handle:
                        repo["refs"][_os.path.relpath(_os.path.join(root, name), refs_dir)] = handle.read().strip()
                except OSError:
                    pass
        try:
            repo["incomplete"] = sum(1 for n in _os.listdir(_os.path.join(repo_dir, "blobs")) if n.endswith(".incomplete"))
        except OSError:
            pass
        for commit in commits:
            snap_dir = _os.path.join(repo_dir, "snapshots", commit)
            files: dict = {}
            for root, _dirs, names in _os.walk(snap_dir):
                for name in names:
                    path = _os.path.join(root, name)
                    rel = _os.path.relpath(path, snap_dir)
                    entry: dict = {"blob": None, "relative": False, "size": None, "stamp": None}
                    if _os.path.islink(path):
                        target = _os.readlink(path)
                        entry["relative"] = not _os.path.isabs(target)
                        real = _os.path.normpath(_os.path.join(_os.path.dirname(path), target))
                        if _os.path.dirname(real) == _os.path.join(repo_dir, "blobs"):
                            entry["blob"] = _os.path.basename(real)
                        try:
                            st = _os.stat(real)
                            entry["size"] = st.st_size
                            entry["stamp"] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
                        except OSError:
                            pass
                    files[rel] = entry
            if files:
                repo["snapshots"][commit] = files
            record = _os.path.join(state_dir, folder, commit + ".json")
            try:
                with open(record) as handle:
                    repo["verified"][commit] = _json.load(handle).get("files", {})
            except (OSError, ValueError):
                pass
        result["repos"][folder] = repo
    return result


def file_digest(path: str | Path, locked: LockedFile) -> str:
    """The file's id as the lock states it: sha256 for LFS files, git blob sha1 for the others."""
    if locked.sha256:
        digest = hashlib.sha256()
    else:
        digest = hashlib.sha1(git_blob_header(os.path.getsize(path)))
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: str | Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


@contextmanager
def models_dir_lock(models_dir: Path) -> Iterator[None]:
    """One lpfleet writer per models dir at a time (a second one waits)."""
    state = models_dir / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


@dataclass
class EnsureResult:
    model: LockedModel
    fetched_files: int = 0
    fetched_bytes: int = 0  # bytes of files downloaded (what the hub served for them)
    rehashed: int = 0
    repaired: list[str] | None = None  # files found wrong and fetched again
    ref_written: bool = False
    hashed_while_downloading: int = 0  # files whose hash was done as their bytes arrived

    @property
    def changed(self) -> bool:
        return bool(self.fetched_files or self.ref_written or self.repaired)


def ensure_model(
    models_dir: str | Path,
    model: LockedModel,
    *,
    endpoint: str,
    token: str | None,
    branch: str = "main",
    attempts: int = 3,
    max_workers: int = 8,
    progress: bool = True,
    log: Log = lambda line: None,
    token_env: str = "HF_TOKEN",
) -> EnsureResult:
    """Make `models_dir` hold `model` complete and verified, `refs/<branch>` naming its commit.

    Already complete (every file's blob verified and unchanged since, ref right): no network request at all.
    Otherwise: blobs whose verification record no longer matches are hashed again (wrong ones deleted); the
    missing files are downloaded with `snapshot_download(revision=<commit>, allow_patterns=<exact paths>)`;
    every downloaded file is hashed against the lock; a wrong one is deleted and fetched again (up to
    `attempts` rounds); then the filtered tree listing, the verification record and, last, the ref are written.
    """
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    models_dir = models_dir.resolve()  # as huggingface_hub resolves cache_dir
    folder = repo_folder_name(model.model_id)
    repo_dir = models_dir / folder
    result = EnsureResult(model, repaired=[])
    last_error: HubError | None = None
    with models_dir_lock(models_dir):
        verified = _load_record(models_dir, folder, model.commit)
        for round_no in range(1, attempts + 1):
            plan = _plan(models_dir, model, branch)
            status = plan.models[0]
            for f in status.unverified:  # present at the right size: hash it, keep it or drop it
                locked = _locked(model, f.path)
                blob = repo_dir / "blobs" / locked.etag
                result.rehashed += 1
                if file_digest(blob, locked) == locked.etag:
                    verified[f.path] = {"etag": locked.etag, "stamp": _stamp(blob)}
                else:
                    log(f"{model.model_id}: {f.path}: content does not match {locked.etag[:12]}; fetching it again")
                    result.repaired.append(f.path)
                    _drop(repo_dir, model.commit, locked)
                    verified.pop(f.path, None)
            if status.unverified:
                _save_record(models_dir, folder, model, verified)
                plan = _plan(models_dir, model, branch)
                status = plan.models[0]
            missing = status.missing
            if not missing:
                break
            for f in missing:  # a stale link or a wrong-size blob would make the library skip or trip
                locked = _locked(model, f.path)
                blob = repo_dir / "blobs" / locked.etag
                wrong_size = blob.is_file() and blob.stat().st_size != locked.size
                _drop(repo_dir, model.commit, locked, blob=wrong_size)
            if plan.disk_shortfall():
                raise HubError(model.model_id,
                               f"not enough disk space in {models_dir}: {human_bytes(status.bytes_to_fetch)} to "
                               f"fetch, {human_bytes(plan.free_bytes or 0)} free",
                               f"free {human_bytes(plan.disk_shortfall())} or point the models dir elsewhere")
            log(f"{model.model_id}@{model.commit[:12]}: fetching {len(missing)} file(s), "
                f"{human_bytes(status.bytes_to_fetch)}" + (f" (round {round_no})" if round_no > 1 else ""))
            hasher = _EarlyHasher(repo_dir, model, [f.path for f in missing])
            try:
                with hasher:
                    _download(models_dir, model, [f.path for f in missing], endpoint, token, max_workers, progress,
                              token_env)
            except HubAccessError:
                hasher.close()
                raise
            except HubError as exc:  # transient (5xx, timeouts, cut connections): keep what arrived, go again
                last_error = exc
                log(f"{exc}; " + ("retrying" if round_no < attempts else "giving up"))
                if round_no < attempts:
                    time.sleep(min(2.0 ** (round_no - 1), 8.0))
            for f in missing:  # hash what arrived (mostly done during the download); the library checks sizes only
                locked = _locked(model, f.path)
                blob = repo_dir / "blobs" / locked.etag
                if not blob.exists() or not (repo_dir / "snapshots" / model.commit / f.path).is_symlink():
                    continue
                if hasher.digest(f.path, blob, locked) == locked.etag:
                    verified[f.path] = {"etag": locked.etag, "stamp": _stamp(blob)}
                    result.fetched_files += 1
                    result.fetched_bytes += locked.size
                else:
                    log(f"{model.model_id}: {f.path}: downloaded content does not match {locked.etag[:12]}")
                    result.repaired.append(f.path)
                    _drop(repo_dir, model.commit, locked)
                    verified.pop(f.path, None)
            hasher.close()
            result.hashed_while_downloading += hasher.streamed
            _save_record(models_dir, folder, model, verified)
        plan = _plan(models_dir, model, branch)
        status = plan.models[0]
        not_ok = [f for f in status.files if f.state != "ok"]
        if not_ok:
            cause = f"; last error: {last_error}" if last_error else ""
            raise HubError(model.model_id,
                           f"{len(not_ok)} file(s) still not verified after {attempts} attempt(s): "
                           + ", ".join(f"{f.path} ({f.reason})" for f in not_ok[:5]) + cause,
                           f"refs/{branch} not written, nothing marked complete; run again when the endpoint "
                           "serves the right data (verified files are kept)")
        _write_tree_listing(repo_dir, model)
        _fix_modes(repo_dir)
        ref = repo_dir / "refs" / branch
        current = ref.read_text().strip() if ref.is_file() else None
        if current != model.commit:
            _write_atomic(ref, model.commit)  # last: only now is the snapshot complete for the runner
            result.ref_written = True
    return result


def recorded_model(models_dir: str | Path, model_id: str, revision: str) -> LockedModel | None:
    """The locked model recorded by the last verification of `revision` (a branch read from refs/, or a commit)
    in this models dir; None when there is none. Lets a re-run on a complete dir skip the network entirely."""
    from lpfleet.lock import HEX40, load_model_dict

    folder = repo_folder_name(model_id)
    commit = revision
    if not HEX40.match(revision):
        ref = Path(models_dir) / folder / "refs" / revision
        try:
            commit = ref.read_text().strip()
        except OSError:
            return None
    try:
        raw = json.loads(_record_path(Path(models_dir), folder, commit).read_text()).get("model")
        return load_model_dict(raw) if raw else None
    except (OSError, ValueError):
        return None


def _locked(model: LockedModel, path: str) -> LockedFile:
    return next(f for f in model.files if f.path == path)


def _plan(models_dir: Path, model: LockedModel, branch: str) -> WeightsPlan:
    scan = scan_models_dir(str(models_dir), {repo_folder_name(model.model_id): [model.commit]})
    return plan_node([model], scan, branch)


def _record_path(models_dir: Path, folder: str, commit: str) -> Path:
    return models_dir / STATE_DIR / "verified" / folder / f"{commit}.json"


def _load_record(models_dir: Path, folder: str, commit: str) -> dict[str, Any]:
    try:
        return dict(json.loads(_record_path(models_dir, folder, commit).read_text()).get("files", {}))
    except (OSError, ValueError):
        return {}


def _save_record(models_dir: Path, folder: str, model: LockedModel, verified: dict[str, Any]) -> None:
    record = {"model": model.to_dict(), "verified_at": int(time.time()),
              "files": {p: verified[p] for p in sorted(verified)}}
    _write_atomic(_record_path(models_dir, folder, model.commit), json.dumps(record, indent=1) + "\n")


def _drop(repo_dir: Path, commit: str, locked: LockedFile, blob: bool = True) -> None:
    """Remove a file's snapshot link (and its blob, when that is wrong) so the library fetches it again."""
    paths = [repo_dir / "snapshots" / commit / locked.path]
    if blob:
        paths.append(repo_dir / "blobs" / locked.etag)
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            shutil.rmtree(path)


class _EarlyHasher:
    """Hashes the files while the library downloads them, so verification costs almost no wall time.

    huggingface_hub writes each file sequentially into `blobs/<etag>.<uuid>.incomplete`, then renames it to
    `blobs/<etag>` (same inode). A background thread follows every such temp file of a wanted etag, feeding the
    bytes to the lock's hash (sha256, or git's blob sha1) as they land. When the final blob appears with the same
    inode and the hasher has read exactly its size, the digest is ready; in every other case (a restart, a
    truncation, a blob written another way) `digest` hashes the final blob from disk. Same result, never a guess.
    """

    POLL_S = 0.05
    READ_CHUNK = 8 * 1024 * 1024

    def __init__(self, repo_dir: Path, model: LockedModel, paths: Sequence[str]) -> None:
        import threading

        self.blobs = repo_dir / "blobs"
        self.wanted = {_locked(model, p).etag: _locked(model, p) for p in paths}
        self.streams: dict[int, list] = {}  # inode -> [file object, hasher, bytes read, etag]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="lpfleet-hasher", daemon=True)

    def __enter__(self) -> _EarlyHasher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _new_hasher(self, locked: LockedFile):
        return hashlib.sha256() if locked.sha256 else hashlib.sha1(git_blob_header(locked.size))

    def _poll(self) -> None:
        try:
            names = os.listdir(self.blobs)
        except OSError:
            return
        for name in names:
            if not name.endswith(".incomplete"):
                continue
            locked = self.wanted.get(name.split(".", 1)[0])
            if locked is None:
                continue
            try:
                st = os.stat(self.blobs / name)
                if st.st_ino not in self.streams:
                    handle = open(self.blobs / name, "rb")  # noqa: SIM115 - kept open across polls
                    self.streams[st.st_ino] = [handle, self._new_hasher(locked), 0, locked.etag]
            except OSError:
                continue
        with self._lock:
            for stream in self.streams.values():
                self._drain(stream)

    def _drain(self, stream: list) -> None:
        handle, digest, done, etag = stream
        try:
            size = os.fstat(handle.fileno()).st_size
        except OSError:
            return
        if size < done:  # rewritten from the start: begin again
            stream[1], stream[2] = self._new_hasher(self.wanted[etag]), 0
            handle.seek(0)
            done = 0
        while done < size:
            chunk = handle.read(min(self.READ_CHUNK, size - done))
            if not chunk:
                break
            stream[1].update(chunk)
            done += len(chunk)
        stream[2] = done

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.POLL_S)
        self._poll()

    streamed = 0

    def digest(self, path: str, blob: Path, locked: LockedFile) -> str:
        """The blob's hash: from the stream that wrote it when it saw every byte of it, else read from disk."""
        try:
            st = os.stat(blob)
        except OSError:
            return ""
        with self._lock:
            stream = self.streams.get(st.st_ino)
            if stream is not None and stream[3] == locked.etag:
                self._drain(stream)
                if stream[2] == st.st_size:
                    self.streamed += 1
                    return stream[1].copy().hexdigest()
        return file_digest(blob, locked)

    def close(self) -> None:
        for handle, *_ in self.streams.values():
            handle.close()
        self.streams.clear()


def _download(models_dir: Path, model: LockedModel, paths: Sequence[str], endpoint: str, token: str | None,
              max_workers: int, progress: bool, token_env: str) -> None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    repo_dir = models_dir / repo_folder_name(model.model_id)
    # The library reads the commit's file listing from trees/<commit>.json when present: we write it from the
    # lock (paths, sizes, sha256 / git blob ids), so no tree request is made and the listing is the lock's.
    # Leftover temp files of a killed run go.
    _write_tree_listing(repo_dir, model)
    for leftover in (repo_dir / "blobs").glob("*.incomplete") if (repo_dir / "blobs").is_dir() else ():
        leftover.unlink(missing_ok=True)
    from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

    (enable_progress_bars if progress else disable_progress_bars)()
    try:
        snapshot_download(
            model.model_id,
            revision=model.commit,
            cache_dir=str(models_dir),
            allow_patterns=exact_patterns(paths),
            endpoint=endpoint.rstrip("/"),
            token=token or False,
            max_workers=max_workers,
        )
    except GatedRepoError:
        raise _gated_message(model.model_id, endpoint, token, token_env) from None
    except RepositoryNotFoundError:
        raise HubAccessError(model.model_id, f"not found on {endpoint}",
                             "check the model_id (org/name, exact case)") from None
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        # Partial results stay on disk unreferenced (no ref written); the next round or run re-verifies them.
        raise HubError(model.model_id, f"download from {endpoint} failed: {_short(exc)}",
                       "run again; files already verified are kept") from None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300]


def _write_tree_listing(repo_dir: Path, model: LockedModel) -> None:
    """`trees/<commit>.json` listing exactly the lock's files, so huggingface_hub's offline loader
    (`snapshot_download(..., local_files_only=True)`) checks the snapshot against what we fetched rather than
    against the whole repo (whose unselected files are never downloaded)."""
    from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

    entries = {
        f.path: TreeCacheEntry(size=f.size, blob_id=f.git_blob or "", lfs_sha256=f.sha256,
                               lfs_size=f.size if f.sha256 else None)
        for f in model.files
    }
    write_tree_cache(str(repo_dir), model.commit, entries)


def _fix_modes(repo_dir: Path) -> None:
    """Readable by runner containers whatever their user: dirs 0755, files 0644 (no-op when already so)."""
    for root, dirs, files in os.walk(repo_dir):
        for name in dirs:
            path = os.path.join(root, name)
            if os.stat(path).st_mode & 0o777 != 0o755:
                os.chmod(path, 0o755)
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            if os.stat(path).st_mode & 0o777 != 0o644:
                os.chmod(path, 0o644)
