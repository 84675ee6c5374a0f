"""A node's verified weights served to its peers as an HF-compatible endpoint (fan-out mode). Stdlib only.

Why a mirror and not rsync: peers then fetch with the very same code path as from the hub (huggingface_hub's
`snapshot_download` writes their cache, relative symlinks and all, and lpfleet hashes every file against the lock),
no node needs SSH access to another, and a seed can only hand out what it has verified: the mirror serves
exactly the files of the verification records (`.lpfleet/verified/...`) of the models it was started for.

    python3 -m lpfleet.weights_mirror serve --models-dir DIR --port P --pid-file F   (stdin: {"token", "models"})
    python3 -m lpfleet.weights_mirror stop --pid-file F

`serve` binds the port, then detaches (the SSH command returns once the port accepts connections) and exits by
itself after `--idle-exit` seconds without a request or `--max-life` seconds in all, so an aborted deploy never
leaves it running for long. Every request must carry the run's random token (`Authorization: Bearer`): gated
weights never become readable by whoever reaches the port.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

CHUNK = 1024 * 1024


def _folder(model_id: str) -> str:
    return "models--" + model_id.replace("/", "--")


class MirrorIndex:
    """(model_id, commit) -> {path: file entry} from the models dir's verification records."""

    def __init__(self, models_dir: str, models: list[list[str]]) -> None:
        self.models_dir = models_dir
        self.files: dict[tuple[str, str], dict[str, dict]] = {}
        for model_id, commit in models:
            record_path = os.path.join(models_dir, ".lpfleet", "verified", _folder(model_id), commit + ".json")
            with open(record_path) as handle:
                record = json.load(handle)
            locked = {f["path"]: f for f in record["model"]["files"]}
            verified = record.get("files", {})
            self.files[(model_id, commit)] = {
                p: f for p, f in locked.items() if verified.get(p, {}).get("etag") == (f.get("sha256") or f.get("git_blob"))
            }

    def tree(self, model_id: str, commit: str) -> list[dict] | None:
        files = self.files.get((model_id, commit))
        if files is None:
            return None
        out = []
        for path in sorted(files):
            f = files[path]
            if f.get("sha256"):
                out.append({"type": "file", "path": path, "size": f["size"], "oid": "0" * 40,
                            "lfs": {"oid": f["sha256"], "size": f["size"], "pointerSize": 0}})
            else:
                out.append({"type": "file", "path": path, "size": f["size"], "oid": f["git_blob"]})
        return out


class MirrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MirrorServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        sys.stderr.write("%s %s\n" % (self.address_string(), format % args))

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _error(self, status: int, code: str | None, message: str) -> None:
        headers = {"X-Error-Message": message}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers)

    def do_HEAD(self) -> None:  # noqa: N802
        self._route()

    def do_GET(self) -> None:  # noqa: N802
        self._route()

    def _route(self) -> None:
        self.server.touch()
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), self.server.token.encode()):
            return self._error(401, None, "lpfleet mirror: token required")
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        index = self.server.index
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            model_id, kind, rev = parts[2] + "/" + parts[3], parts[4], parts[5]
            if kind == "revision":
                if (model_id, rev) not in index.files:
                    return self._error(404, "RevisionNotFound", f"{model_id}@{rev} not served here")
                return self._send(200, json.dumps({"id": model_id, "sha": rev}).encode())
            if kind == "tree":
                tree = index.tree(model_id, rev)
                if tree is None:
                    return self._error(404, "RevisionNotFound", f"{model_id}@{rev} not served here")
                return self._send(200, json.dumps(tree).encode())
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve(parts[0] + "/" + parts[1], parts[3], "/".join(parts[4:]))
        return self._error(404, None, "not found")

    def _resolve(self, model_id: str, commit: str, path: str) -> None:
        files = self.server.index.files.get((model_id, commit))
        if files is None:
            return self._error(404, "RevisionNotFound", f"{model_id}@{commit} not served here")
        entry = files.get(path)
        if entry is None:
            return self._error(404, "EntryNotFound", f"{path} not served here")
        local = os.path.join(self.server.index.models_dir, _folder(model_id), "snapshots", commit, path)
        size = entry["size"]
        start, end, status = 0, size - 1, 200
        headers = {"X-Repo-Commit": commit, "ETag": '"%s"' % (entry.get("sha256") or entry.get("git_blob")),
                   "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range") if self.command == "GET" else None
        if rng and rng.startswith("bytes="):
            first, _, last = rng[6:].partition("-")
            try:
                start = int(first)
                end = int(last) if last else size - 1
            except ValueError:
                start = -1
            if start < 0 or start >= size or end < start:
                return self._send(416, b"", {"Content-Range": f"bytes */{size}"})
            end = min(end, size - 1)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(local, "rb") as handle:
            self.wfile.flush()
            self.connection.sendfile(handle, offset=start, count=end - start + 1)
            self.server.touch()


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], index: MirrorIndex, token: str) -> None:
        super().__init__(address, MirrorHandler)
        self.index = index
        self.token = token
        self.last_request = time.monotonic()

    def touch(self) -> None:
        self.last_request = time.monotonic()


def _watchdog(server: MirrorServer, idle_exit: float, max_life: float) -> None:
    started = time.monotonic()
    while True:
        time.sleep(1.0)
        now = time.monotonic()
        if now - server.last_request > idle_exit or now - started > max_life:
            server.shutdown()
            return


def serve(args: argparse.Namespace) -> int:
    request = json.loads(sys.stdin.read() or "{}")
    token = request.get("token") or ""
    if len(token) < 16:
        sys.stderr.write("lpfleet mirror: a token of at least 16 characters is required on stdin\n")
        return 2
    _stop_existing(args.pid_file)
    index = MirrorIndex(args.models_dir, request.get("models", []))
    server = MirrorServer((args.host, args.port), index, token)  # bound now: peers can connect once we return
    if args.foreground:
        pid = os.getpid()
    else:
        pid = os.fork()
    if pid and not args.foreground:
        with open(args.pid_file, "w") as handle:
            handle.write(f"{pid}\n")
        print(f"lpfleet mirror: serving {len(index.files)} model(s) on port {args.port} (pid {pid})")
        return 0
    if not args.foreground:
        os.setsid()
        log = os.open(args.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
    else:
        with open(args.pid_file, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    threading.Thread(target=_watchdog, args=(server, args.idle_exit, args.max_life), daemon=True).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        try:
            with open(args.pid_file) as handle:
                if handle.read().strip() == str(os.getpid()):
                    os.unlink(args.pid_file)
        except OSError:
            pass
    os._exit(0)


def _is_mirror(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"lpfleet.weights_mirror" in handle.read()
    except OSError:
        return False


def _stop_existing(pid_file: str) -> bool:
    """Stop the mirror named by the pid file (only if that pid really is one); True when one was stopped."""
    try:
        with open(pid_file) as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return False
    stopped = False
    if _is_mirror(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not _is_mirror(pid):
                break
            time.sleep(0.1)
        stopped = True
    try:
        os.unlink(pid_file)
    except OSError:
        pass
    return stopped


def stop(args: argparse.Namespace) -> int:
    print("lpfleet mirror: stopped" if _stop_existing(args.pid_file) else "lpfleet mirror: was not running")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lpfleet.weights_mirror", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--models-dir", required=True)
    p_serve.add_argument("--host", default="0.0.0.0")
    p_serve.add_argument("--port", type=int, required=True)
    p_serve.add_argument("--pid-file", required=True)
    p_serve.add_argument("--log-file", default="/dev/null")
    p_serve.add_argument("--idle-exit", type=float, default=300.0)
    p_serve.add_argument("--max-life", type=float, default=3600.0)
    p_serve.add_argument("--foreground", action="store_true")
    p_serve.set_defaults(func=serve)
    p_stop = sub.add_parser("stop")
    p_stop.add_argument("--pid-file", required=True)
    p_stop.set_defaults(func=stop)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
