"""Filling a models dir with locked weights, verified: the node side of the weights step and of `lpfleet
prefetch`.

Runs where the models dir is (a node, shipped in the weights runtime; the controller for `lpfleet prefetch`).
Standard library only, plus lpfleet's pure `lock` and `weights` modules.

What is trusted (docs/weights.md, "What is trusted and why"): only models.lock. A hub, a mirror or a peer
supplies bytes and nothing else. No value it sends (ETag, file name, redirect, Content-Length) chooses a path
or a size: each file is streamed into a private staging folder under a name lpfleet makes, hashed as it is
written, cut at the locked size, bounded by a deadline, and only when its hash is the locked one is it moved
to
`blobs/<locked hash>` and linked from `snapshots/<commit>/<locked path>`. Every path written or removed is
built from validated lock values and proven to lie inside the repo's folder (no symlinked folder on the way);
nothing here removes a folder tree. The cache layout is huggingface_hub's, unchanged: its offline loader and
the runner read the result.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import http.client
import json
import os
import re
import secrets
import socket
import stat
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from lpfleet.lock import LockedFile, LockedModel, commit_problem, file_problem, model_id_problem
from lpfleet.weights import WeightsPlan, git_blob_header, human_bytes, plan_node, repo_folder_name
from lpfleet.weights_relay import NOT_YET, RelayBoard, blob_stamp, remove_own_folder

STATE_DIR = ".lpfleet"  # inside the models dir: verification records, our lock file, staging folders
HASH_CHUNK = 4 * 1024 * 1024
READ_CHUNK = 1024 * 1024
DEADLINE_FLOOR = 120.0  # seconds: the least time a file's transfer gets (FetchLimits)
MAX_REDIRECTS = 5
USER_AGENT = "lpfleet-weights"
Log = Callable[[str], None]


class HubError(Exception):
    """A model cannot be locked or fetched; the message says what is wrong and how to fix it."""

    def __init__(self, model_id: str, message: str, fix: str = "") -> None:
        self.model_id = model_id
        self.fix = fix
        super().__init__(f"{model_id}: {message}" + (f" ({fix})" if fix else ""))


class HubAccessError(HubError):
    """Not a transient failure (gated, not found, no write access): retrying cannot help."""


def display_url(url: str) -> str:
    """A URL as it may be printed: no user info (credentials), no query."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return f"{parts.scheme}://{host}{parts.path}".rstrip("/") if parts.scheme else url.split("@")[-1]
    except ValueError:
        return "<unparsable URL>"


def gated_message(model_id: str, endpoint: str, token: str | None, token_env: str) -> HubError:
    page = f"{display_url(endpoint)}/{model_id}"
    if not token:
        return HubAccessError(
            model_id,
            "gated model and no token",
            f"set {token_env} on the controller to a token of an account that accepted the terms "
            f"on the model's page {page}",
        )
    return HubAccessError(
        model_id,
        "gated model and the token has no access",
        f"accept the terms on the model's page {page} with the account the token belongs to",
    )


BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9_][A-Za-z0-9._-]{0,99}){0,4}")


def branch_problem(branch: object) -> str | None:
    """Why a branch name cannot be a file under `refs/`, or None."""
    if not isinstance(branch, str) or not BRANCH.fullmatch(branch) or ".." in branch or branch.endswith("."):
        return "expected a ref name such as main (letters, digits, '_', '-', '.', '/')"
    return None


def endpoint_problem(endpoint: object) -> str | None:
    """Why `endpoint` is not a usable http(s) base URL, or None."""
    if not isinstance(endpoint, str) or not endpoint:
        return "empty"
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in endpoint):
        return "contains a space or a control character"
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not parts.hostname:
        return "no host name"
    if parts.query or parts.fragment:
        return "a base URL takes no query or fragment"
    return None


def check_model(model: LockedModel) -> None:
    """Every value of a locked model that becomes a path, checked again where it is used (HubError)."""
    problem = model_id_problem(model.model_id)
    if problem:
        raise HubError(str(model.model_id)[:100], f"id: {problem}")
    if commit_problem(model.commit):
        raise HubError(model.model_id, f"commit: expected 40 hex digits, got {str(model.commit)[:80]!r}")
    for f in model.files:
        problem = file_problem(f.path, f.size, f.sha256, f.git_blob)
        if problem:
            raise HubError(model.model_id, f"file {problem}")


# --- the models dir on disk (shared with the node-side fact: keep scan_models_dir self-contained)


def scan_models_dir(models_dir: str, wanted: dict) -> dict:
    """Scan a models dir for the repos and commits in `wanted` ({repo folder: [commits]}); see
    lpfleet.weights.

    Self-contained (stdlib imports inside, no other function used): the `WeightsState` fact ships this
    function's source to nodes and runs it with the node's python3. It only reads.
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
        if _os.path.islink(repo_dir) or not _os.path.isdir(repo_dir):
            continue
        repo: dict = {"refs": {}, "snapshots": {}, "verified": {}, "incomplete": 0}
        refs_dir = _os.path.join(repo_dir, "refs")
        for root, _dirs, names in _os.walk(refs_dir):
            for name in names:
                try:
                    with open(_os.path.join(root, name)) as handle:
                        repo["refs"][_os.path.relpath(_os.path.join(root, name), refs_dir)] = handle.read(
                            100
                        ).strip()
                except OSError:
                    pass
        blobs_dir = _os.path.join(repo_dir, "blobs")
        try:
            repo["incomplete"] = sum(1 for n in _os.listdir(blobs_dir) if n.endswith(".incomplete"))
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
                        if _os.path.dirname(real) == blobs_dir and not _os.path.islink(blobs_dir):
                            entry["blob"] = _os.path.basename(real)
                            try:
                                st = _os.lstat(real)  # the blob itself, never what a link there points to
                                if (st.st_mode & 0o170000) == 0o100000:
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


def _new_digest(locked: LockedFile):
    return hashlib.sha256() if locked.sha256 else hashlib.sha1(git_blob_header(locked.size))


def file_digest(path: str | Path, locked: LockedFile) -> str:
    """The file's id as the lock states it: sha256 for LFS files, git blob sha1 (of the locked size)
    otherwise.

    Reads at most the locked size plus one byte: a longer file never matches and is never read whole."""
    digest = _new_digest(locked)
    seen = 0
    with open(path, "rb") as handle:
        while seen <= locked.size:
            chunk = handle.read(min(HASH_CHUNK, locked.size + 1 - seen))
            if not chunk:
                break
            seen += len(chunk)
            digest.update(chunk)
    return digest.hexdigest() if seen == locked.size else ""


def _stamp(path: str | Path) -> list[int]:
    return blob_stamp(os.lstat(path))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _real_dir(path: Path, create: bool, model_id: str) -> bool:
    """True when `path` is a real folder (created 0755 when `create`); HubError when something else is
    there."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            return False
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a folder"
        raise HubError(
            model_id,
            f"{path} is {kind}; lpfleet writes only into real folders of the models dir",
            "remove it by hand, then run again",
        )
    return True


def inside(base: Path, parts: list[str], model_id: str, create: bool = False) -> Path | None:
    """`base/parts...`, proven inside `base`: every folder on the way is a real folder (no symlink), created
    when `create`; None when one is missing and not created. The last part itself is not looked at."""
    current = base
    for part in parts[:-1]:
        if part in ("", ".", "..") or "/" in part or "\0" in part:
            raise HubError(model_id, f"refusing the path segment {part!r}")
        current = current / part
        if not _real_dir(current, create, model_id):
            return None
    if parts[-1] in ("", ".", "..") or "/" in parts[-1]:
        raise HubError(model_id, f"refusing the path segment {parts[-1]!r}")
    return current / parts[-1]


def _remove_file(path: Path | None, model_id: str) -> None:
    """Unlink a file or symlink (never follows it, never removes a folder)."""
    if path is None:
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise HubError(
            model_id, f"{path} is a folder where a file belongs", "remove it by hand, then run again"
        )
    os.unlink(path)


@contextmanager
def models_dir_lock(models_dir: Path) -> Iterator[None]:
    """One lpfleet writer per models dir at a time (a second one waits)."""
    state = models_dir / STATE_DIR
    _real_dir(state, True, str(models_dir))
    fd = os.open(state / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` to `path` through a unique temp file in the same folder, synced, then renamed."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


# --- fetching one file: bounded, hashed in the write path, renamed into place only when it matches the lock


@dataclass(frozen=True)
class FetchLimits:
    """Bounds of one file's transfer: a deadline of max(floor, size / min_rate), a read timeout, resumes."""

    min_rate: float = 1_000_000.0  # bytes/s (group data `weights_min_rate`)
    deadline_floor: float = DEADLINE_FLOOR  # seconds
    read_timeout: float = 10.0  # seconds without a byte before the connection counts as stalled
    resumes: int = 5  # range requests after a cut or stalled connection, per round
    wait: float = 0.0  # fan-out chain: seconds the peer may take to get to this model first (its earlier ones)

    def deadline(self, size: int) -> float:
        return max(self.deadline_floor, size / max(self.min_rate, 1.0)) + self.wait

    @classmethod
    def from_plan(cls, plan: dict) -> FetchLimits:
        defaults = cls()

        def number(key: str, default: float) -> float:
            value = plan.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e12:
                return float(value)
            return default

        return cls(
            number("min_rate", defaults.min_rate),
            number("deadline_floor", defaults.deadline_floor),
            number("read_timeout", _env_timeout(defaults.read_timeout)),
            defaults.resumes,
        )


def _env_timeout(default: float) -> float:
    """huggingface_hub's own knob for the read timeout, honoured for the same meaning."""
    try:
        value = float(os.environ.get("HF_HUB_DOWNLOAD_TIMEOUT", ""))
        return value if 0 < value < 3600 else default
    except ValueError:
        return default


class _Transient(Exception):
    """Cut, stalled, 5xx: resume (Range) or try again."""


class _NotYet(_Transient):
    """A peer in a fan-out chain has not received the file yet (its mirror says so): ask again, within the
    file's deadline, without counting a cut."""



class _Rejected(Exception):
    """The bytes cannot be the locked file (too long, wrong hash, wrong length announced): start over next
    round."""


class _Cancelled(Exception):
    pass


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class _Pool:
    """Idle keep-alive connections by origin and proxy: a TCP (and TLS) handshake per origin and worker, not
    per file. Only a connection whose last answer was read to its end, and did not ask to close, comes back
    here; a request carries its own headers, so reuse changes nothing about where credentials go."""

    def __init__(self) -> None:
        self._idle: dict[tuple, list[http.client.HTTPConnection]] = {}
        self._guard = threading.Lock()

    def take(self, key: tuple) -> http.client.HTTPConnection | None:
        with self._guard:
            idle = self._idle.get(key)
            return idle.pop() if idle else None

    def give(self, key: tuple, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse) -> None:
        if not resp.chunked and resp.length == 0:  # read1 leaves a fully read answer open: done with it
            resp.close()
        if resp.isclosed() and not resp.will_close and conn.sock is not None:
            with self._guard:
                self._idle.setdefault(key, []).append(conn)
        else:
            conn.close()

    def close(self) -> None:
        with self._guard:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _connection(
    url: str, timeout: float, pool: _Pool | None = None
) -> tuple[http.client.HTTPConnection, str, tuple, bool]:
    """A connection for `url` (through the environment's proxy, as huggingface_hub would; an idle one from
    `pool` if it has one for the same origin and proxy), the request target, the pool key, and whether the
    connection was reused."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    https = parts.scheme == "https"
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme)
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        proxy = None
    key = (*_origin(url), proxy)
    idle = pool.take(key) if pool is not None else None
    if proxy and not https:
        target = url
    if idle is not None:
        idle.timeout = timeout
        if idle.sock is not None:
            idle.sock.settimeout(timeout)
        return idle, target, key, True
    if proxy:
        p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if https:
            conn = http.client.HTTPSConnection(p.hostname or "", p.port or 8080, timeout=timeout)
            conn.set_tunnel(parts.hostname or "", parts.port or 443)
            return conn, target, key, False
        return (
            http.client.HTTPConnection(p.hostname or "", p.port or 8080, timeout=timeout),
            target,
            key,
            False,
        )
    cls = http.client.HTTPSConnection if https else http.client.HTTPConnection
    return cls(parts.hostname or "", parts.port, timeout=timeout), target, key, False


def _auth_headers(endpoint: str, token: str | None) -> dict[str, str]:
    if token:
        return {"Authorization": f"Bearer {token}"}
    parts = urlsplit(endpoint)
    if parts.username is not None:  # user:password@ in the endpoint: basic auth, to that origin only
        import base64

        pair = f"{parts.username}:{parts.password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


REDIRECT_BODY_MAX = 64 * 1024  # a redirect's body up to this size is read so its connection can be reused


def _open(
    url: str,
    endpoint: str,
    token: str | None,
    headers: dict[str, str],
    timeout: float,
    pool: _Pool | None = None,
) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse, tuple]:
    """GET `url`, following redirects by hand: only http(s), at most MAX_REDIRECTS, credentials only to the
    endpoint's own origin (a CDN redirect gets none). The connection, its answer, and its key in `pool`."""
    home = _origin(endpoint)
    for _hop in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _Rejected(f"redirected to a non-http(s) URL ({parts.scheme or 'no scheme'})")
        sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **headers}
        if _origin(url) == home:
            sent.update(_auth_headers(endpoint, token))
        while True:
            conn, target, key, reused = _connection(url, timeout, pool)
            try:
                conn.request("GET", target, headers=sent)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException):
                conn.close()
                if reused:  # the server closed the idle connection meanwhile: a new one, not a resume
                    continue
                raise
            except BaseException:
                conn.close()
                raise
            break
        location = resp.getheader("Location")
        if resp.status in (301, 302, 303, 307, 308) and location:
            _drop_redirect(conn, resp, key, pool)
            if any(ord(c) < 0x21 or ord(c) == 0x7F for c in location):
                raise _Rejected("redirect Location with control characters or spaces")
            url = urljoin(url, location)
            continue
        return conn, resp, key
    raise _Transient(f"more than {MAX_REDIRECTS} redirects")


def _drop_redirect(
    conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, key: tuple, pool: _Pool | None
) -> None:
    """Done with a redirect: its connection back to the pool when its (short, announced) body could be read
    to the end, else closed."""
    try:
        length = int(resp.getheader("Content-Length") or "-1")
    except ValueError:
        length = -1
    if pool is None or not 0 <= length <= REDIRECT_BODY_MAX or resp.chunked:
        conn.close()
        return
    try:
        resp.read(length)
    except (OSError, http.client.HTTPException):
        conn.close()
        return
    pool.give(key, conn, resp)


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass
class _Source:
    endpoint: str
    token: str | None
    token_env: str
    limits: FetchLimits
    cancel: threading.Event = field(default_factory=threading.Event)
    pool: _Pool = field(default_factory=_Pool)
    relay: RelayBoard | None = None  # fan-out chain: this node's mirror forwards the files as they arrive


def _status_error(model: LockedModel, locked: LockedFile, resp: http.client.HTTPResponse, source: _Source):
    status = resp.status
    code = resp.getheader("X-Error-Code") or ""
    where = display_url(source.endpoint)
    if code == "GatedRepo" or status in (401, 403):
        if code == "RepoNotFound":
            return HubAccessError(
                model.model_id, f"not found on {where}", "check the model_id (org/name, exact case)"
            )
        return gated_message(model.model_id, source.endpoint, source.token, source.token_env)
    if status == 404:
        what = {
            "RepoNotFound": "repo",
            "RevisionNotFound": f"commit {model.commit[:12]}",
            "EntryNotFound": f"file {locked.path}",
        }.get(code, f"{locked.path} at {model.commit[:12]}")
        return HubAccessError(
            model.model_id,
            f"{what} not found on {where}",
            "the endpoint does not serve the locked commit: run `lpfleet lock` again, or sync the mirror",
        )
    if status == 503 and code == NOT_YET:
        return _NotYet("the peer has not received it yet")
    if status in (408, 425, 429) or status >= 500:
        return _Transient(f"HTTP {status}")
    return _Rejected(f"HTTP {status}")


def fetch_file(model: LockedModel, locked: LockedFile, staging: Path, source: _Source) -> Path:
    """Stream one locked file into `staging` (a private folder), hashed as written; its path once it matches.

    A 200 answer to a range request restarts the file and its hash; a body longer than the locked size is cut
    and rejected; the whole transfer has a deadline (FetchLimits). Raises _Transient, _Rejected, HubError."""
    limits = source.limits
    url = f"{source.endpoint.rstrip('/')}/{model.model_id}/resolve/{model.commit}/{quote(locked.path)}"
    tmp = staging / f"{secrets.token_hex(8)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    if source.relay is not None:
        source.relay.started(locked.etag, tmp, fd)
    deadline = time.monotonic() + limits.deadline(locked.size)
    got = _Progress(_new_digest(locked))
    cuts = 0
    last = ""  # the last transport problem, for the message when the deadline ends it
    ok = False
    try:
        while True:
            if source.cancel.is_set():
                raise _Cancelled()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Rejected(
                    f"not complete within its deadline of {limits.deadline(locked.size):.0f} s "
                    f"({human_bytes(got.written)} of {human_bytes(locked.size)}; weights_min_rate "
                    f"{human_bytes(int(limits.min_rate))}/s)" + (f"; last problem: {last}" if last else "")
                )
            headers = {"Range": f"bytes={got.written}-"} if got.written else {}
            try:
                conn, resp, key = _open(
                    url,
                    source.endpoint,
                    source.token,
                    headers,
                    min(limits.read_timeout, remaining),
                    source.pool,
                )
                received = False
                try:
                    _receive(model, locked, resp, conn, fd, got, deadline, source)
                    received = True
                finally:
                    if received:  # read to its end: the connection serves the next file of this origin
                        source.pool.give(key, conn, resp)
                    else:
                        conn.close()
            except _NotYet as exc:
                last = str(exc)
                time.sleep(0.5)
                continue
            except (OSError, http.client.HTTPException, _Transient) as exc:
                cuts += 1
                last = _why(exc)
                if cuts > limits.resumes:
                    raise _Transient(f"{_why(exc)}; gave up after {limits.resumes} resumes") from None
                time.sleep(min(0.2 * cuts, 2.0))
                continue
            if got.written == locked.size:
                break
        if got.digest.hexdigest() != locked.etag:
            raise _Rejected(f"content does not match {locked.etag[:12]}")
        os.fsync(fd)
        os.fchmod(fd, 0o644)
        ok = True
        return tmp
    finally:
        os.close(fd)
        if not ok:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            if source.relay is not None:
                source.relay.failed(locked.etag)


@dataclass
class _Progress:
    """The bytes in the temp file and their digest: always exactly in step (both restart together)."""

    digest: Any
    written: int = 0
    flushed: int = 0

    def restart(self, fd: int, locked: LockedFile) -> None:
        os.ftruncate(fd, 0)
        self.digest = _new_digest(locked)
        self.written = self.flushed = 0


WRITEBACK_STEP = 32 * 1024 * 1024


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to write these pages out now, without waiting (POSIX_FADV_DONTNEED starts writeback of
    dirty pages): the bytes were hashed as they arrived and are not read back."""
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except (AttributeError, OSError):
        pass


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "stalled (no byte within the read timeout)"
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _receive(
    model: LockedModel,
    locked: LockedFile,
    resp: http.client.HTTPResponse,
    conn: http.client.HTTPConnection,
    fd: int,
    got: _Progress,
    deadline: float,
    source: _Source,
) -> None:
    """Read one answer into `fd` from offset `got.written`, updating `got` with every chunk (also when the
    answer is cut). The file and its digest restart together when the answer starts from 0 (a 200 to a range
    request): the hash always covers exactly the bytes in the file."""
    size = locked.size
    status = resp.status
    if status == 206:
        match = _CONTENT_RANGE.fullmatch((resp.getheader("Content-Range") or "").strip())
        if (
            not match
            or int(match.group(1)) != got.written
            or int(match.group(2)) != size - 1
            or match.group(3) not in (str(size), "*")
        ):
            raise _Rejected(
                f"range answer {str(resp.getheader('Content-Range'))[:80]!r} does not continue at "
                f"{got.written} of {size}"
            )
    elif status == 200:
        if got.written:  # the server ignored the range: everything again, hash included
            got.restart(fd, locked)
    elif status == 416 and got.written:
        got.restart(fd, locked)
        raise _Transient("range not satisfiable; starting the file again")
    else:
        raise _status_error(model, locked, resp, source)
    length = resp.getheader("Content-Length")
    if length is not None:
        try:
            announced = int(length)
        except ValueError:
            raise _Rejected(f"unreadable Content-Length {length[:40]!r}") from None
        if announced != size - got.written:
            raise _Rejected(f"the server announces {announced + got.written} bytes, the lock says {size}")
    os.lseek(fd, got.written, os.SEEK_SET)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or source.cancel.is_set():
            return  # the caller reports the deadline / cancel
        if conn.sock is not None:
            conn.sock.settimeout(min(source.limits.read_timeout, remaining))
        # read1, not readinto: it returns what has arrived (readinto waits until its buffer is full, and a
        # trickling server would hold it past the deadline and the cancel)
        chunk = resp.read1(READ_CHUNK)
        if not chunk:
            break
        if got.written + len(chunk) > size:
            raise _Rejected(f"the body is longer than the locked size {size}; cut")
        view = memoryview(chunk)
        while view:
            done = os.write(fd, view)
            view = view[done:]
        got.digest.update(chunk)
        got.written += len(chunk)
        if got.written - got.flushed >= WRITEBACK_STEP:  # start writeback now: the final fsync stays short
            _start_writeback(fd, got.flushed, got.written - got.flushed)
            got.flushed = got.written
    if got.written < size:
        raise _Transient(f"connection closed after {got.written} of {size} bytes")


# --- one model


@dataclass
class EnsureResult:
    model: LockedModel
    fetched_files: int = 0
    fetched_bytes: int = 0  # bytes of files downloaded (what the endpoint served for them)
    rehashed: int = 0
    repaired: list[str] = field(default_factory=list)  # files found wrong and fetched again
    ref_written: bool = False
    hashed_while_downloading: int = 0  # files whose hash was computed as their bytes arrived
    notes: list[str] = field(default_factory=list)

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
    limits: FetchLimits | None = None,
    fallbacks: Sequence[tuple[str, str | None]] = (),
    relay: RelayBoard | None = None,
) -> EnsureResult:
    """Make `models_dir` hold `model` complete and verified, `refs/<branch>` naming its commit.

    Already complete (every file's blob verified and unchanged since, ref right): no network request and no
    write at all (a read-only complete dir passes). Otherwise: blobs whose verification record no longer
    matches are hashed again (wrong ones removed); missing files are fetched (`fetch_file`), up to `attempts`
    rounds; then the tree listing, the verification record and, last, the ref are written.

    `fallbacks`: further (endpoint, token) sources, taken in order for the next round when a round from the
    current one fails (a peer that is down, refuses or sends bytes that do not match: dropped, not retried).
    `relay`: this node's mirror forwards each file from its staging file as it arrives (fan-out chain).
    """
    check_model(model)
    if branch_problem(branch):
        raise HubError(model.model_id, f"branch {str(branch)[:60]!r}: {branch_problem(branch)}")
    endpoints = [(endpoint, token), *fallbacks]
    for url, _ in endpoints:
        problem = endpoint_problem(url)
        if problem:
            raise HubAccessError(
                model.model_id,
                f"endpoint {display_url(str(url))!r}: {problem}",
                "set HF_ENDPOINT / hf_endpoint to an http(s) URL such as https://huggingface.co",
            )
    limits = limits or FetchLimits(read_timeout=_env_timeout(FetchLimits.read_timeout))
    try:
        models_dir = Path(models_dir).resolve()
        if models_dir.exists() and not models_dir.is_dir():
            raise HubAccessError(
                model.model_id,
                f"{models_dir} exists and is not a directory",
                "give a directory as the models dir",
            )
        os.listdir(models_dir) if models_dir.exists() else None
    except (OSError, RuntimeError) as exc:
        raise HubAccessError(
            model.model_id,
            f"models dir {models_dir}: {_why(exc)}",
            "run as a user that can read the models dir",
        ) from None
    result = EnsureResult(model, repaired=[])
    plan = _plan(models_dir, model, branch)
    if plan.problems:
        raise HubAccessError(model.model_id, "; ".join(plan.problems))
    if plan.complete:
        return result
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        lock = models_dir_lock(models_dir)
        lock.__enter__()
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and not plan.models[0].missing:
            return _verify_read_only(models_dir, model, branch, result, exc)
        raise HubAccessError(
            model.model_id,
            f"cannot write to {models_dir}: {exc.strerror or exc}",
            "run as a user that can write the models dir, or choose another one",
        ) from None
    try:
        _ensure_locked(
            models_dir,
            model,
            branch,
            attempts,
            max_workers,
            progress,
            log,
            token_env,
            limits,
            endpoints,
            relay,
            result,
        )
    except OSError as exc:
        raise HubError(
            model.model_id,
            f"models dir {models_dir}: {_why(exc)}",
            "check the disk and the models dir's permissions; verified files are kept",
        ) from None
    finally:
        lock.__exit__(None, None, None)
    return result


def _verify_read_only(
    models_dir: Path, model: LockedModel, branch: str, result: EnsureResult, exc: OSError
) -> EnsureResult:
    """A dir we may not write whose files are all there: hash them; pass when every one matches and the ref is
    right (nothing recorded, so the next run hashes again), else say that it needs writing."""
    repo_dir = models_dir / repo_folder_name(model.model_id)
    status = plan_node(
        [model], scan_models_dir(str(models_dir), {repo_dir.name: [model.commit]}), branch
    ).models[0]
    wrong = []
    for f in status.unverified:
        locked = _locked(model, f.path)
        result.rehashed += 1
        if file_digest(repo_dir / "blobs" / locked.etag, locked) != locked.etag:
            wrong.append(f.path)
    if wrong or not status.ref_ok:
        what = (
            f"{len(wrong)} file(s) do not match the lock" if wrong else f"refs/{branch} is not at the commit"
        )
        raise HubAccessError(
            model.model_id,
            f"{what} and {models_dir} is not writable ({exc.strerror})",
            "run as a user that can write the models dir",
        )
    result.notes.append(
        f"{model.model_id}: verified by hashing; the models dir is read-only, so the "
        "verification is not recorded"
    )
    return result


def _locked(model: LockedModel, path: str) -> LockedFile:
    return next(f for f in model.files if f.path == path)


def _plan(models_dir: Path, model: LockedModel, branch: str) -> WeightsPlan:
    scan = scan_models_dir(str(models_dir), {repo_folder_name(model.model_id): [model.commit]})
    return plan_node([model], scan, branch)


def _ensure_locked(
    models_dir: Path,
    model: LockedModel,
    branch: str,
    attempts: int,
    max_workers: int,
    progress: bool,
    log: Log,
    token_env: str,
    limits: FetchLimits,
    endpoints: list[tuple[str, str | None]],
    relay: RelayBoard | None,
    result: EnsureResult,
) -> None:
    folder = repo_folder_name(model.model_id)
    repo_dir = models_dir / folder
    _real_dir(repo_dir, True, model.model_id)
    _clean_leftovers(models_dir, repo_dir, model.model_id)
    verified = _load_record(models_dir, folder, model.commit)
    source_no = 0
    endpoint = endpoints[0][0]
    last_error: str | None = None
    rounds = attempts + len(endpoints) - 1  # dropping a source does not cost the next one its rounds
    for round_no in range(1, rounds + 1):
        endpoint, token = endpoints[source_no]
        source = _Source(endpoint, token, token_env, limits, relay=relay)
        status = _plan(models_dir, model, branch).models[0]
        for f in status.unverified:  # present at the right size: hash it, keep it or drop it
            locked = _locked(model, f.path)
            blob = inside(repo_dir, ["blobs", locked.etag], model.model_id)
            result.rehashed += 1
            if blob is not None and file_digest(blob, locked) == locked.etag:
                verified[f.path] = {"etag": locked.etag, "stamp": _stamp(blob)}
            else:
                log(f"{model.model_id}: {f.path}: content does not match {locked.etag[:12]}; fetching again")
                result.repaired.append(f.path)
                _drop(repo_dir, model, locked)
                verified.pop(f.path, None)
        if status.unverified:
            _save_record(models_dir, folder, model, verified)
            status = _plan(models_dir, model, branch).models[0]
        missing = [_locked(model, f.path) for f in status.missing]
        if not missing:
            break
        plan = _plan(models_dir, model, branch)
        if plan.disk_shortfall():
            raise HubAccessError(
                model.model_id,
                f"not enough disk space in {models_dir}: {human_bytes(status.bytes_to_fetch)} to "
                f"fetch, {human_bytes(plan.free_bytes or 0)} free",
                f"free {human_bytes(plan.disk_shortfall())} or point the models dir elsewhere",
            )
        todo = []
        for locked in missing:  # the right blob may be there already (another commit, a lost link): link it
            blob = inside(repo_dir, ["blobs", locked.etag], model.model_id)
            if (
                blob is not None
                and _is_regular(blob)
                and os.lstat(blob).st_size == locked.size
                and file_digest(blob, locked) == locked.etag
            ):
                _link(repo_dir, model, locked)
                verified[locked.path] = {"etag": locked.etag, "stamp": _stamp(blob)}
            else:
                todo.append(locked)
        if not todo:
            _save_record(models_dir, folder, model, verified)
            continue
        log(
            f"{model.model_id}@{model.commit[:12]}: fetching {len(todo)} file(s), "
            f"{human_bytes(sum(f.size for f in todo))} from {display_url(endpoint)}"
            + (f" (round {round_no})" if round_no > 1 else "")
        )
        try:
            failures = _fetch_round(
                models_dir, repo_dir, model, todo, source, max_workers, progress, log, verified, result
            )
        except HubAccessError as exc:
            if source_no + 1 >= len(endpoints):
                raise
            failures = [("*", str(exc))]
        _save_record(models_dir, folder, model, verified)
        if failures:
            last_error = "; ".join(f"{p}: {why}" for p, why in failures[:3])
        if failures and source_no + 1 < len(endpoints):
            source_no += 1  # a source that failed a round is dropped, not trusted again in this run
            log(f"{model.model_id}: dropping {display_url(endpoint)} ({(last_error or '')[:300]}); "
                f"next source: {display_url(endpoints[source_no][0])}")
            continue
        if failures:
            log(
                f"{model.model_id}: {len(failures)} file(s) failed: {last_error}; "
                + ("retrying" if round_no < rounds else "giving up")
            )
            if round_no < rounds:
                time.sleep(min(2.0 ** (round_no - 1), 8.0))
    status = _plan(models_dir, model, branch).models[0]
    not_ok = [f for f in status.files if f.state != "ok"]
    if not_ok:
        cause = f"; last error: {last_error}" if last_error else ""
        raise HubError(
            model.model_id,
            f"{len(not_ok)} file(s) still not verified after {attempts} attempt(s) from "
            f"{display_url(endpoint)}: " + ", ".join(f"{f.path} ({f.reason})" for f in not_ok[:5]) + cause,
            f"refs/{branch} not written, nothing marked complete; run again when the endpoint "
            "serves the right data (verified files are kept)",
        )
    write_tree_listing(repo_dir, model)
    _fix_modes(repo_dir)
    refs = inside(repo_dir, ["refs", *branch.split("/")], model.model_id, create=True)
    assert refs is not None
    current = None
    if _is_regular(refs):
        current = refs.read_text(errors="replace").strip()
    if current != model.commit:
        write_atomic(refs, model.commit)  # last: only now is the snapshot complete for the runner
        result.ref_written = True


def _fetch_round(
    models_dir: Path,
    repo_dir: Path,
    model: LockedModel,
    todo: list[LockedFile],
    source: _Source,
    max_workers: int,
    progress: bool,
    log: Log,
    verified: dict,
    result: EnsureResult,
) -> list[tuple[str, str]]:
    """Fetch `todo` concurrently into a private staging folder; install each file that matches. The
    failures."""
    import tempfile

    state = models_dir / STATE_DIR
    _real_dir(state, True, model.model_id)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=state))  # 0700, unique per run and round
    failures: list[tuple[str, str]] = []
    access_error: list[HubError] = []
    guard = threading.Lock()

    def one(locked: LockedFile) -> None:
        started = time.monotonic()
        try:
            tmp = fetch_file(model, locked, staging, source)
        except _Cancelled:
            return
        except HubAccessError as exc:
            source.cancel.set()
            access_error.append(exc)
            return
        except (_Rejected, _Transient, HubError, OSError, http.client.HTTPException) as exc:
            text = str(exc) if isinstance(exc, (_Rejected, _Transient, HubError)) else _why(exc)
            if isinstance(exc, _Rejected) and "does not match" in text:
                log(f"{model.model_id}: {locked.path}: downloaded content does not match {locked.etag[:12]}")
            with guard:
                failures.append((locked.path, text))
                if "does not match" in text:
                    result.repaired.append(locked.path)
            return
        with guard:
            blob = _install(repo_dir, model, locked, tmp)
            verified[locked.path] = {"etag": locked.etag, "stamp": _stamp(blob)}
            if source.relay is not None:
                source.relay.complete(locked.etag, blob)
            result.fetched_files += 1
            result.fetched_bytes += locked.size
            result.hashed_while_downloading += 1
        if progress:
            took = time.monotonic() - started
            log(f"  {locked.path}: {human_bytes(locked.size)} in {took:.1f} s, verified")

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(todo)))) as pool:
            list(pool.map(one, sorted(todo, key=lambda f: -f.size)))
    finally:
        source.pool.close()
        _empty_staging(staging)
    if access_error:
        raise access_error[0]
    return failures


def _is_regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _install(repo_dir: Path, model: LockedModel, locked: LockedFile, tmp: Path) -> Path:
    """Move a verified temp file to `blobs/<locked hash>` and point the snapshot's relative link at it."""
    blob = inside(repo_dir, ["blobs", locked.etag], model.model_id, create=True)
    assert blob is not None
    try:
        if stat.S_ISDIR(os.lstat(blob).st_mode):
            raise HubError(model.model_id, f"{blob} is a folder where a blob belongs", "remove it by hand")
    except FileNotFoundError:
        pass
    os.replace(tmp, blob)
    _fsync_dir(blob.parent)
    _link(repo_dir, model, locked)
    return blob


def _link(repo_dir: Path, model: LockedModel, locked: LockedFile) -> None:
    parts = ["snapshots", model.commit, *locked.path.split("/")]
    link = inside(repo_dir, parts, model.model_id, create=True)
    assert link is not None
    target = os.path.relpath(repo_dir / "blobs" / locked.etag, link.parent)
    try:
        st = os.lstat(link)
        if stat.S_ISDIR(st.st_mode):
            raise HubError(
                model.model_id, f"{link} is a folder where a file link belongs", "remove it by hand"
            )
        if stat.S_ISLNK(st.st_mode) and os.readlink(link) == target:
            return
    except FileNotFoundError:
        pass
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}.lpfleet-link")
    os.symlink(target, tmp)
    os.replace(tmp, link)
    _fsync_dir(link.parent)


def _drop(repo_dir: Path, model: LockedModel, locked: LockedFile) -> None:
    """Remove a wrong file's snapshot link and blob (both proven inside the repo folder; never a folder)."""
    _remove_file(
        inside(repo_dir, ["snapshots", model.commit, *locked.path.split("/")], model.model_id), model.model_id
    )
    _remove_file(inside(repo_dir, ["blobs", locked.etag], model.model_id), model.model_id)


def _empty_staging(staging: Path) -> None:
    """Remove a staging folder of ours: its regular files, then the folder (nothing recursive)."""
    remove_own_folder(str(staging))


def _clean_leftovers(models_dir: Path, repo_dir: Path, model_id: str) -> None:
    """Staging folders of killed runs (we hold the models dir lock: no other run uses them) and temp files a
    huggingface_hub download left in blobs/."""
    state = models_dir / STATE_DIR
    try:
        with os.scandir(state) as entries:
            stale = [
                Path(e.path)
                for e in entries
                if e.name.startswith("staging-") and e.is_dir(follow_symlinks=False)
            ]
    except OSError:
        stale = []
    for folder in stale:
        _empty_staging(folder)
    blobs = inside(repo_dir, ["blobs", "x"], model_id)
    if blobs is None:
        return
    try:
        with os.scandir(blobs.parent) as entries:
            for entry in entries:
                if entry.name.endswith(".incomplete") and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
    except OSError:
        pass


def recorded_model(models_dir: str | Path, model_id: str, revision: str) -> LockedModel | None:
    """The locked model recorded by the last verification of `revision` (a branch read from refs/, or a
    commit) in this models dir; None when there is none. Lets a re-run on a complete dir skip the network
    entirely."""
    from lpfleet.lock import LockError, load_model_dict

    if model_id_problem(model_id):
        return None
    folder = repo_folder_name(model_id)
    commit = revision
    if commit_problem(revision):
        if branch_problem(revision):
            return None
        ref = Path(models_dir) / folder / "refs" / revision
        try:
            commit = ref.read_text(errors="replace")[:100].strip()
        except OSError:
            return None
        if commit_problem(commit):
            return None
    try:
        raw = json.loads(_record_path(Path(models_dir), folder, commit).read_text()).get("model")
        model = load_model_dict(raw) if isinstance(raw, dict) else None
    except (OSError, ValueError, LockError):
        return None
    return model if model is not None and model.model_id == model_id and model.commit == commit else None


def _record_path(models_dir: Path, folder: str, commit: str) -> Path:
    return models_dir / STATE_DIR / "verified" / folder / f"{commit}.json"


def _load_record(models_dir: Path, folder: str, commit: str) -> dict[str, Any]:
    try:
        files = json.loads(_record_path(models_dir, folder, commit).read_text()).get("files", {})
        return dict(files) if isinstance(files, dict) else {}
    except (OSError, ValueError, AttributeError):
        return {}


def _save_record(models_dir: Path, folder: str, model: LockedModel, verified: dict[str, Any]) -> None:
    record = {
        "model": model.to_dict(),
        "verified_at": int(time.time()),
        "files": {p: verified[p] for p in sorted(verified)},
    }
    path = inside(
        models_dir, [STATE_DIR, "verified", folder, f"{model.commit}.json"], model.model_id, create=True
    )
    assert path is not None
    write_atomic(path, json.dumps(record, indent=1) + "\n")


def write_tree_listing(repo_dir: Path, model: LockedModel) -> None:
    """`trees/<commit>.json` listing exactly the lock's files, in huggingface_hub's tree cache format
    (`huggingface_hub/_tree_cache.py`, format_version 1), so its offline loader checks the snapshot against
    what we fetched rather than against the whole repo (whose unselected files are never downloaded)."""
    files = {}
    for f in sorted(model.files, key=lambda f: f.path):
        entry: dict[str, Any] = {"size": f.size, "blob_id": f.git_blob or ""}
        if f.sha256:
            entry["lfs_sha256"] = f.sha256
            entry["lfs_size"] = f.size
        files[f.path] = entry
    path = inside(repo_dir, ["trees", f"{model.commit}.json"], model.model_id, create=True)
    assert path is not None
    text = json.dumps({"format_version": 1, "files": files}, indent=1)
    if _is_regular(path):
        try:
            if path.read_text() == text:
                return
        except OSError:
            pass
    write_atomic(path, text)


def _fix_modes(repo_dir: Path) -> None:
    """Readable by runner containers whatever their user: dirs 0755, files 0644 (no-op when already so).
    Symlinks are never followed (lstat; a link to a folder is not walked into or chmodded)."""
    for root, dirs, files in os.walk(repo_dir):
        for name in list(dirs):
            path = os.path.join(root, name)
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode):
                continue
            if st.st_mode & 0o777 != 0o755:
                os.chmod(path, 0o755)
        for name in files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode) and st.st_mode & 0o777 != 0o644:
                os.chmod(path, 0o644)
