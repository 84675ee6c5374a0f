"""The sandbox hub's HTTP server: the endpoints huggingface_hub's `snapshot_download` uses, plus `/_sandbox/` control.

Served (what `reference/hf-hub.md` "HTTP calls" lists):
  GET  /api/models/{repo}                       model info with the canonical `id` (off in mirror-only mode)
  GET  /api/models/{repo}/revision/{rev}        `{"id", "sha", ...}`
  GET  /api/models/{repo}/tree/{rev}[/{path}]   file listing, paged with `Link: <...>; rel="next"`
  HEAD/GET /{repo}/resolve/{rev}/{path}         X-Repo-Commit, ETag (sha256 for LFS, git blob sha1 otherwise),
                                                Content-Length, Range -> 206 + Content-Range
  GET  /api/agent-harnesses                     the client's telemetry registry (empty)
Repo ids are exact-case like the real hub's storage: the API answers a differently cased id with the canonical
`id` (so a lock must compare it) and `resolve` redirects to the canonical path, as huggingface.co does.
Gated repos list publicly but `resolve` answers 401 (no token) / 403 (a token without access) with
`X-Error-Code: GatedRepo`.

Control (JSON): GET /_sandbox/health, /_sandbox/models, /_sandbox/counters, /_sandbox/faults, /_sandbox/settings;
POST /_sandbox/counters/reset, /_sandbox/faults (add one), /_sandbox/settings, /_sandbox/reset,
/_sandbox/repos/{repo}/bump; DELETE /_sandbox/faults[/{id}].

Faults (`Fault`): error (5xx), stall, truncate, wrong-bytes (right size), bandwidth (bytes/s, one bucket shared by
every matching connection or one per connection). Each can be limited to a repo, a path glob, request kinds
(api/head/get) and a number of uses. The server is threaded: a throttled or stalled download never blocks others.
"""

from __future__ import annotations

import fnmatch
import hmac
import itertools
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from .models import MODELS, Commit, ModelDef, Repo, RepoFile, build_repos

FAULT_KINDS = ("error", "stall", "truncate", "wrong-bytes", "bandwidth")
REQUEST_KINDS = ("api", "head", "get")
CHUNK = 256 * 1024
WRONG_BYTES = bytes((b ^ 0x5A) for b in range(256))  # translate table: same length, other content


@dataclass
class Fault:
    """One switchable fault. `times=None` means until cleared; otherwise it fires that many times."""

    kind: str
    repo: str | None = None
    path: str | None = None  # fnmatch glob on the file path
    on: tuple[str, ...] = ("get",)
    times: int | None = None
    status: int = 500  # error
    seconds: float = 30.0  # stall: how long nothing more is sent (then the connection is closed)
    after_bytes: int | None = None  # stall/truncate: body bytes sent first (truncate default: half)
    rate: int = 0  # bandwidth: bytes per second
    shared: bool = True  # bandwidth: one bucket for every matching connection (a WAN link) or one each
    id: int = 0
    fired: int = 0

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Fault:
        allowed = {"kind", "repo", "path", "on", "times", "status", "seconds", "after_bytes", "rate", "shared"}
        unknown = set(raw) - allowed
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        kind = raw.get("kind")
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {', '.join(FAULT_KINDS)}, got {kind!r}")
        on = raw.get("on", ("get",))
        on = (on,) if isinstance(on, str) else tuple(on)
        if not on or any(k not in REQUEST_KINDS for k in on):
            raise ValueError(f"fault 'on' must be a subset of {', '.join(REQUEST_KINDS)}")
        if kind == "bandwidth" and int(raw.get("rate", 0)) <= 0:
            raise ValueError("bandwidth fault needs rate > 0 (bytes per second)")
        if kind == "error" and not 400 <= int(raw.get("status", 500)) <= 599:
            raise ValueError("error fault status must be 4xx or 5xx")
        fields = {k: v for k, v in raw.items() if k != "on"}
        return cls(on=on, **fields)

    def matches(self, kind: str, repo_id: str | None, path: str | None) -> bool:
        if kind not in self.on:
            return False
        if self.repo is not None and self.repo != repo_id:
            return False
        if self.path is not None and (path is None or not fnmatch.fnmatchcase(path, self.path)):
            return False
        return True


class TokenBucket:
    """Paces writers to `rate` bytes/s in total, like one shared link. Each writer reserves the next slot of the
    link under the lock (its start, and the slot's length: nbytes / rate) and sleeps until the slot starts outside
    the lock, so concurrent downloads share the rate instead of waiting for each other, and a lone download gets
    all of it."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def delay_for(self, nbytes: int) -> float:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + nbytes / self.rate
            return start - now


@dataclass
class Counters:
    bytes_total: int = 0
    requests: dict[str, int] = field(default_factory=lambda: {"total": 0, "api": 0, "head": 0, "get": 0})
    bytes_by_repo: dict[str, int] = field(default_factory=dict)
    bytes_by_file: dict[str, int] = field(default_factory=dict)  # "<repo>/<path>"
    gets_by_file: dict[str, int] = field(default_factory=dict)
    requests_by_repo: dict[str, int] = field(default_factory=dict)


@dataclass
class Settings:
    page_size: int = 10  # tree entries per page: small, so every client really pages
    mirror_only: bool = False  # answer only revision/tree/resolve, like a plain LAN mirror

    def update(self, raw: dict[str, Any]) -> None:
        for key, value in raw.items():
            if key == "page_size":
                if int(value) < 1:
                    raise ValueError("page_size must be >= 1")
                self.page_size = int(value)
            elif key == "mirror_only":
                self.mirror_only = bool(value)
            else:
                raise ValueError(f"unknown setting {key!r}")


class Hub:
    """The hub's state: repos, the access token, faults, counters, settings. Thread-safe."""

    def __init__(self, token: str | None = None, models: tuple[ModelDef, ...] = MODELS) -> None:
        self._models = models
        self.token = token
        self.repos: dict[str, Repo] = build_repos(models)
        self.faults: list[Fault] = []
        self.counters = Counters()
        self.settings = Settings()
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._buckets: dict[int, TokenBucket] = {}

    # --- repos
    def find_repo(self, repo_id: str) -> tuple[Repo | None, bool]:
        """(repo, exact): exact-case lookup first, then a case-insensitive one (canonical id differs)."""
        repo = self.repos.get(repo_id)
        if repo is not None:
            return repo, True
        lowered = repo_id.lower()
        for canonical, candidate in self.repos.items():
            if canonical.lower() == lowered:
                return candidate, False
        return None, False

    def reset(self) -> None:
        with self._lock:
            self.repos = build_repos(self._models)
            self.faults = []
            self._buckets = {}
            self.counters = Counters()
            self.settings = Settings()

    # --- faults
    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = next(self._ids)
            self.faults.append(fault)
            if fault.kind == "bandwidth" and fault.shared:
                self._buckets[fault.id] = TokenBucket(fault.rate)
            return fault

    def remove_fault(self, fault_id: int | None) -> int:
        with self._lock:
            before = len(self.faults)
            self.faults = [f for f in self.faults if fault_id is not None and f.id != fault_id]
            self._buckets = {k: v for k, v in self._buckets.items() if any(f.id == k for f in self.faults)}
            return before - len(self.faults)

    def take_faults(self, kind: str, repo_id: str | None, path: str | None) -> list[Fault]:
        """The faults that fire for this request (each use counted; exhausted ones are dropped)."""
        fired: list[Fault] = []
        with self._lock:
            for fault in list(self.faults):
                if not fault.matches(kind, repo_id, path):
                    continue
                fault.fired += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self.faults.remove(fault)
                fired.append(fault)
        return fired

    def bucket_for(self, fault: Fault) -> TokenBucket:
        with self._lock:
            bucket = self._buckets.get(fault.id) if fault.shared else None
        return bucket or TokenBucket(fault.rate)

    # --- counters
    def count_request(self, kind: str, repo_id: str | None) -> None:
        with self._lock:
            req = self.counters.requests
            req["total"] += 1
            req[kind] = req.get(kind, 0) + 1
            if repo_id:
                by_repo = self.counters.requests_by_repo
                by_repo[repo_id] = by_repo.get(repo_id, 0) + 1

    def count_bytes(self, repo_id: str, path: str, nbytes: int, first: bool) -> None:
        key = f"{repo_id}/{path}"
        with self._lock:
            c = self.counters
            c.bytes_total += nbytes
            c.bytes_by_repo[repo_id] = c.bytes_by_repo.get(repo_id, 0) + nbytes
            c.bytes_by_file[key] = c.bytes_by_file.get(key, 0) + nbytes
            if first:
                c.gets_by_file[key] = c.gets_by_file.get(key, 0) + 1

    def counters_json(self, reset: bool = False) -> dict[str, Any]:
        with self._lock:
            snapshot = json.loads(json.dumps(asdict(self.counters)))
            if reset:
                self.counters = Counters()
            return snapshot

    def authorized(self, header: str | None) -> bool | None:
        """None: no token sent; True: the sandbox token; False: some other token."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            return False
        return bool(self.token) and hmac.compare_digest(value.strip().encode(), (self.token or "").encode())


def model_info(repo: Repo, commit: Commit, request_host: str) -> dict[str, Any]:
    return {
        "_id": commit.sha[:24],
        "id": repo.repo_id,
        "modelId": repo.repo_id,
        "author": repo.repo_id.split("/", 1)[0],
        "sha": commit.sha,
        "private": False,
        "gated": "manual" if repo.gated else False,
        "disabled": False,
        "lastModified": "2026-01-01T00:00:00.000Z",
        "tags": ["lpfleet-sandbox"],
        "siblings": [{"rfilename": path} for path in sorted(commit.files)],
        "description": repo.model.description,
    }


def tree_entries(commit: Commit, prefix: str, recursive: bool) -> list[dict[str, Any]]:
    """Folders and files under `prefix`, sorted by path, as the hub's tree endpoint lists them."""
    prefix = prefix.strip("/")
    base = f"{prefix}/" if prefix else ""
    files = [f for p, f in sorted(commit.files.items()) if p.startswith(base)]
    folders: dict[str, list[RepoFile]] = {}
    entries: list[dict[str, Any]] = []
    for f in files:
        rest = f.path[len(base):]
        parts = rest.split("/")
        for depth in range(1, len(parts)):
            folder = base + "/".join(parts[:depth])
            folders.setdefault(folder, []).append(f)
            if not recursive:
                break
        if recursive or len(parts) == 1:
            entries.append(f.tree_entry())
    for folder, members in folders.items():
        import hashlib

        tree_id = hashlib.sha1("".join(m.blob_id for m in members).encode()).hexdigest()
        entries.append({"type": "directory", "oid": tree_id, "size": 0, "path": folder})
    return sorted(entries, key=lambda e: e["path"])


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lpfleet-sandbox-hub/1"
    server: HubHTTPServer

    @property
    def hub(self) -> Hub:
        return self.server.hub

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class signature
        if self.server.log_requests:
            sys.stderr.write("%s %s\n" % (self.address_string(), format % args))

    # --- plumbing
    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._json(status, {"error": message}, headers)

    def _body_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw.strip() else {}

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._route()

    def do_HEAD(self) -> None:  # noqa: N802
        self._route()

    def do_POST(self) -> None:  # noqa: N802
        self._route()

    def do_DELETE(self) -> None:  # noqa: N802
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            if parts[:1] == ["_sandbox"]:
                self._control(parts[1:], query)
            elif parts[:2] == ["api", "agent-harnesses"]:
                self.hub.count_request("api", None)
                self._json(200, {"standardEnvVars": [], "harnesses": {}})
            elif parts[:2] == ["api", "models"] and len(parts) >= 4:
                self._api(parts[2] + "/" + parts[3], parts[4:], query)
            elif len(parts) >= 5 and parts[2] == "resolve":
                self._resolve(parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:]))
            else:
                self._error(404, None, f"Not Found: {url.path}")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except ValueError as exc:
            self._error(400, None, str(exc))

    # --- control API
    def _control(self, parts: list[str], query: dict[str, str]) -> None:
        hub, method = self.hub, self.command
        if parts == ["health"]:
            return self._json(200, {"ok": True})
        if parts == ["models"] and method == "GET":
            listing = []
            # `files=1` generates a repo's content; `repo=ID` lists that one only (the benchmark repos are GBs)
            wanted = query.get("repo")
            for repo in hub.repos.values():
                if wanted and repo.repo_id != wanted:
                    continue
                item: dict[str, Any] = {"id": repo.repo_id, "gated": repo.gated}
                if query.get("files"):
                    commit = repo.resolve("main")
                    assert commit is not None
                    item["sha"] = commit.sha
                    item["files"] = [
                        {"path": f.path, "size": f.size, "lfs": f.lfs, "etag": f.etag}
                        for f in commit.files.values()
                    ]
                listing.append(item)
            return self._json(200, listing)
        if parts == ["counters"] and method == "GET":
            return self._json(200, hub.counters_json())
        if parts == ["counters", "reset"] and method == "POST":
            return self._json(200, hub.counters_json(reset=True))
        if parts == ["faults"] and method == "GET":
            return self._json(200, [asdict(f) for f in hub.faults])
        if parts == ["faults"] and method == "POST":
            fault = hub.add_fault(Fault.from_json(self._body_json()))
            return self._json(200, asdict(fault))
        if parts[:1] == ["faults"] and method == "DELETE":
            removed = hub.remove_fault(int(parts[1]) if len(parts) > 1 else None)
            return self._json(200, {"removed": removed})
        if parts == ["settings"]:
            if method == "POST":
                hub.settings.update(self._body_json())
            return self._json(200, asdict(hub.settings))
        if parts == ["reset"] and method == "POST":
            hub.reset()
            return self._json(200, {"ok": True})
        if len(parts) == 4 and parts[0] == "repos" and parts[3] == "bump" and method == "POST":
            repo, exact = hub.find_repo(parts[1] + "/" + parts[2])
            if repo is None or not exact:
                return self._error(404, "RepoNotFound", "no such repo")
            return self._json(200, {"sha": repo.bump()})
        return self._error(404, None, "unknown control endpoint")

    # --- faults shared by all kinds
    def _before(self, kind: str, repo_id: str | None, path: str | None) -> list[Fault] | None:
        """Counts the request and applies error/stall faults that end it; returns the body-shaping faults."""
        self.hub.count_request(kind, repo_id)
        faults = self.hub.take_faults(kind, repo_id, path)
        for fault in faults:
            if fault.kind == "error":
                self._error(fault.status, None, f"sandbox fault: HTTP {fault.status}")
                return None
            if fault.kind == "stall" and (kind != "get" or not fault.after_bytes):
                self.hub.stopping.wait(fault.seconds)
                self.close_connection = True
                return None
        return faults

    # --- API
    def _api(self, repo_id: str, rest: list[str], query: dict[str, str]) -> None:
        if self.command != "GET":
            return self._error(405, None, "method not allowed")
        faults = self._before("api", repo_id, None)
        if faults is None:
            return
        repo, _exact = self.hub.find_repo(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
        if not rest:
            if self.hub.settings.mirror_only:
                return self._error(404, None, "Not Found")
            commit = repo.resolve("main")
            assert commit is not None
            return self._json(200, model_info(repo, commit, self.headers.get("Host", "")))
        if rest[0] == "revision" and len(rest) == 2:
            commit = repo.resolve(rest[1])
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rest[1]}")
            return self._json(200, model_info(repo, commit, self.headers.get("Host", "")))
        if rest[0] == "tree" and len(rest) >= 2:
            commit = repo.resolve(rest[1])
            if commit is None:
                return self._error(404, "RevisionNotFound", f"Invalid rev id: {rest[1]}")
            return self._tree(repo, rest[1], commit, "/".join(rest[2:]), query)
        return self._error(404, None, "Not Found")

    def _tree(self, repo: Repo, revision: str, commit: Commit, prefix: str, query: dict[str, str]) -> None:
        recursive = query.get("recursive", "false").lower() in ("1", "true")
        entries = tree_entries(commit, prefix, recursive)
        if prefix and not entries:
            return self._error(404, "EntryNotFound", f"{prefix} does not exist on {revision}")
        start = int(query.get("cursor", "0") or 0)
        page = entries[start:start + self.hub.settings.page_size]
        headers = {}
        if start + len(page) < len(entries):
            next_query = dict(query, cursor=str(start + len(page)))
            host = self.headers.get("Host") or "%s:%d" % self.server.server_address[:2]
            base = f"http://{host}{urlsplit(self.path).path}"
            headers["Link"] = f'<{base}?{urlencode(next_query)}>; rel="next"'
        return self._json(200, page, headers)

    # --- files
    def _resolve(self, repo_id: str, revision: str, path: str) -> None:
        kind = "head" if self.command == "HEAD" else "get"
        if self.command not in ("HEAD", "GET"):
            return self._error(405, None, "method not allowed")
        faults = self._before(kind, repo_id, path)
        if faults is None:
            return
        repo, exact = self.hub.find_repo(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}.")
        if not exact:
            location = f"/{repo.repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"
            return self._send(307, b"", {"Location": location})
        if repo.gated:
            access = self.hub.authorized(self.headers.get("Authorization"))
            if access is None:
                return self._error(
                    401, "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted. You must have access to it and be "
                    "authenticated to access it. Please log in.")
            if access is False:
                return self._error(
                    403, "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted and you are not in the authorized list. "
                    f"Visit https://huggingface.co/{repo.repo_id} to ask for access.")
        commit = repo.resolve(revision)
        if commit is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        rfile = commit.files.get(path)
        if rfile is None:
            return self._error(404, "EntryNotFound", f"Entry not found: {path}")
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{rfile.etag}"',
            "Accept-Ranges": "bytes",
        }
        start, end = 0, rfile.size - 1
        status = 200
        range_header = self.headers.get("Range")
        if range_header and kind == "get":
            parsed = _parse_range(range_header, rfile.size)
            if parsed is None:
                return self._send(416, b"", {"Content-Range": f"bytes */{rfile.size}"})
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{rfile.size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if kind == "get":
            self._stream(repo.repo_id, rfile, start, end, faults)

    def _stream(self, repo_id: str, rfile: RepoFile, start: int, end: int, faults: list[Fault]) -> None:
        """Write bytes [start, end] of the file, shaped by the body faults that fired."""
        total = end - start + 1
        limit = total
        stall: Fault | None = None
        wrong_from: int | None = None
        buckets: list[TokenBucket] = []
        for fault in faults:
            if fault.kind == "truncate":
                limit = min(limit, fault.after_bytes if fault.after_bytes is not None else total // 2)
            elif fault.kind == "stall":
                stall = fault
                limit = min(limit, fault.after_bytes or 0)
            elif fault.kind == "wrong-bytes":
                wrong_from = rfile.size // 2 if fault.after_bytes is None else fault.after_bytes
            elif fault.kind == "bandwidth":
                buckets.append(self.hub.bucket_for(fault))
        chunk_size = CHUNK
        for bucket in buckets:  # small enough chunks that pacing stays smooth at low rates
            chunk_size = max(4096, min(chunk_size, bucket.rate // 20))
        view = memoryview(rfile.data)
        sent = 0
        first = True
        while sent < limit:
            n = min(chunk_size, limit - sent)
            offset = start + sent
            chunk = bytes(view[offset:offset + n])
            if wrong_from is not None and offset + n > wrong_from:
                cut = max(0, wrong_from - offset)
                chunk = chunk[:cut] + chunk[cut:].translate(WRONG_BYTES)
            delay = max((b.delay_for(n) for b in buckets), default=0.0)
            if delay > 0 and self.hub.stopping.wait(delay):
                break
            # counted before it is written: a client that has read every byte must find it counted
            self.hub.count_bytes(repo_id, rfile.path, n, first)
            first = False
            self.wfile.write(chunk)
            sent += n
        if first:
            self.hub.count_bytes(repo_id, rfile.path, 0, True)
        if sent < total:
            self.wfile.flush()
            if stall is not None:
                self.hub.stopping.wait(stall.seconds)
            self.close_connection = True


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            length = int(last)
            return (max(0, size - length), size - 1) if length > 0 else None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], hub: Hub, log_requests: bool = False) -> None:
        super().__init__(address, HubHandler)
        self.hub = hub
        self.log_requests = log_requests


class HubServer:
    """A hub on a background thread, for tests and benchmarks: `with HubServer(token=...) as hub: hub.url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None,
                 log_requests: bool = False) -> None:
        self.hub = Hub(token=token)
        self.httpd = HubHTTPServer((host, port), self.hub, log_requests)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="sandbox-hub", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.hub.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import signal

    parser = argparse.ArgumentParser(description="lpfleet sandbox HF-compatible hub")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--token-file", help="file holding the token that opens gated repos "
                        "(default: $LPFLEET_HUB_TOKEN; never pass the token itself on the command line)")
    parser.add_argument("--log", action="store_true", help="log each request line (never headers)")
    args = parser.parse_args(argv)
    token = os.environ.get("LPFLEET_HUB_TOKEN")
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as fh:
            token = fh.read().strip()
    if not token:
        print("warning: no hub token (LPFLEET_HUB_TOKEN / --token-file): gated repos open to nobody", flush=True)
    hub = Hub(token=token)
    httpd = HubHTTPServer((args.host, args.port), hub, args.log)

    def stop(signum: int, frame: object) -> None:
        hub.stopping.set()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"sandbox hub serving {len(hub.repos)} models on {args.host}:{args.port}", flush=True)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
