"""A hostile HuggingFace-compatible hub for tests (stdlib, 127.0.0.1 only).

It answers what `lpfleet lock` and the node's download path ask (model info, revision, tree, resolve) for one
repo, and can lie in every way the security review found: listing paths and commits, ETags, wrong bytes,
truncation, endless and drip-fed bodies, a resume answered with other bytes, cross-origin redirects, olah's
offline answers. Every request is logged with its Authorization header.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

REPO = "evil/model"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
CONFIG = b'{"model_type": "hostile"}\n'
WEIGHTS = bytes((i * 7 + 3) % 251 for i in range(200_000))


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FILES = {"config.json": CONFIG, "model.safetensors": WEIGHTS}


def listing() -> list[dict]:
    return [
        {"type": "file", "path": "config.json", "size": len(CONFIG), "oid": git_blob(CONFIG)},
        {
            "type": "file",
            "path": "model.safetensors",
            "size": len(WEIGHTS),
            "oid": git_blob(b"pointer"),
            "lfs": {"oid": sha256(WEIGHTS), "size": len(WEIGHTS), "pointerSize": 130},
        },
    ]


@dataclass
class Behaviour:
    """What the hub does; tests change it between runs."""

    listing: list[dict] | None = None  # None: the honest listing
    commit: str = COMMIT  # what the revision answer names
    info_refused: bool = False  # olah offline: 401 + X-Error-Code: RepoNotFound on /api/models/{repo}
    faults: dict[str, dict] = field(default_factory=dict)  # path -> {"kind": ..., options}
    log: list[tuple[str, str, str | None, str | None]] = field(
        default_factory=list
    )  # method, path, auth, range
    gets: dict[str, int] = field(default_factory=dict)
    connections: int = 0  # TCP connections accepted


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileHub

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def setup(self) -> None:
        super().setup()
        self.server.behaviour.connections += 1

    def _json(self, status: int, body: object, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route()

    def do_GET(self) -> None:  # noqa: N802
        self._route()

    def _route(self) -> None:
        b = self.server.behaviour
        url = urlsplit(self.path)
        b.log.append((self.command, url.path, self.headers.get("Authorization"), self.headers.get("Range")))
        parts = [unquote(p) for p in url.path.split("/") if p]
        if self.server.redirect_only:
            return self._file(self.server.redirect_only, parts)
        if parts[:2] == ["api", "models"]:
            repo = "/".join(parts[2:4])
            if repo != REPO:
                return self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            rest = parts[4:]
            if not rest:
                if b.info_refused:
                    return self._json(
                        401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
                    )
                return self._json(
                    200,
                    {
                        "id": REPO,
                        "sha": b.commit,
                        "gated": False,
                        "private": False,
                        "siblings": [{"rfilename": f["path"]} for f in b.listing or listing()],
                    },
                )
            if rest[0] == "revision":
                return self._json(200, {"id": REPO, "sha": b.commit, "gated": False})
            if rest[0] == "tree":
                return self._json(200, b.listing if b.listing is not None else listing())
            if rest[0] == "agent-harnesses":
                return self._json(200, [])
        if parts[:2] == ["api", "agent-harnesses"]:
            return self._json(200, [])
        if len(parts) >= 5 and "/".join(parts[:2]) == REPO and parts[2] == "resolve":
            return self._file("/".join(parts[4:]), parts)
        return self._json(404, {"error": "not found"})

    def _file(self, path: str, parts: list[str]) -> None:
        b = self.server.behaviour
        if isinstance(path, str) and path not in FILES and len(parts) >= 5:
            path = "/".join(parts[4:])
        data = FILES.get(path)
        if data is None:
            return self._json(404, {"error": "entry not found"}, {"X-Error-Code": "EntryNotFound"})
        fault = b.faults.get(path, {})
        kind = fault.get("kind")
        etag = sha256(data) if path.endswith(".safetensors") else git_blob(data)
        if kind == "etag":
            etag = fault["etag"]
        if self.command == "GET":
            b.gets[path] = b.gets.get(path, 0) + 1
        n_get = b.gets.get(path, 0)
        if kind == "redirect" and self.command == "GET":
            self.send_response(302)
            self.send_header("Location", fault["to"] + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data
        if kind == "wrong":
            body = bytes(x ^ 0x5A for x in data)
        headers = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{etag}"',
            "Accept-Ranges": "bytes",
            "X-Linked-Etag": f'"{etag}"',
            "X-Linked-Size": str(len(data)),
        }
        start = 0
        rng = self.headers.get("Range")
        status = 200
        if kind == "swap-prefix":
            # first GET: the right first half, then cut; a resume: 200 with the whole file, other bytes
            if n_get > 1 and rng:
                body = bytes(x ^ 0x33 for x in data) if fault.get("tamper", True) else data
                rng = None
            else:
                body = data[: len(data) // 2]
        if kind == "bad-prefix-good-tail":
            if n_get == 1:
                body = bytes(x ^ 0x33 for x in data[: len(data) // 2])
        if rng and rng.startswith("bytes=") and kind not in ("endless", "drip"):
            start = int(rng[6:].split("-")[0])
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if kind == "endless":
            self.send_header("Connection", "close")
        elif kind == "long-length":
            self.send_header("Content-Length", str(len(data) * 10))
        else:
            self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        if self.command == "HEAD":
            return
        try:
            if kind == "endless":
                chunk = b"\0" * 65536
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not self.server.stopping:
                    self.wfile.write(chunk)
                self.close_connection = True
                return
            if kind == "drip":
                for i in range(len(body)):
                    if self.server.stopping:
                        return
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    time.sleep(fault.get("every", 0.2))
                return
            if kind == "pause":  # the first `after` bytes, a pause of `seconds`, then the rest (a slow link)
                after = start + fault.get("after", len(body) // 2)
                self.wfile.write(body[start:after])
                self.wfile.flush()
                time.sleep(fault.get("seconds", 1.0))
                self.wfile.write(body[after:])
                return
            if kind == "truncate":
                self.wfile.write(body[start : start + fault.get("after", 1000)])
                self.close_connection = True
                return
            if kind in ("swap-prefix", "bad-prefix-good-tail") and n_get == 1:
                self.wfile.write(body[: len(data) // 2])
                self.close_connection = True
                return
            self.wfile.write(body[start:])
            if kind == "quiet-close":  # the whole answer, then the connection closed without saying so
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass


class HostileHub(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1", redirect_only: str | None = None) -> None:
        super().__init__((host, 0), _Handler)
        self.behaviour = Behaviour()
        self.redirect_only = redirect_only  # a second origin: serves this file for any path
        self.stopping = False
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HostileHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.shutdown()
        self.server_close()
