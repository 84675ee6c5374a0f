"""A node's verified weights served to its peers as an HF-compatible endpoint (fan-out mode). Stdlib only.

Why a mirror and not rsync: peers then fetch with the very same code path as from the hub (lpfleet's bounded,
verified download writes their cache and hashes every file against the lock: a peer is trusted no more than
the hub), and no node needs SSH access to another. The mirror serves exactly the files of the verification
records (`.lpfleet/verified/...`) of the models it was started for and, in a fan-out chain, the files of the
models this node receives in the same run, forwarded from its fetch's staging files as they arrive (the relay
board, `lpfleet.weights_relay`): the next node counts none of those bytes until their hash matches the lock.

    python3 -m lpfleet.weights_mirror serve --models-dir DIR --host ADDR --port P --pid-file F --run-id R
        [--relay-board NEW_DIR]     (stdin: {"token", "models", "relay"})
    python3 -m lpfleet.weights_mirror stop --pid-file F --run-id R

`serve` binds ADDR:P (the node's LAN address; never a wildcard address), then detaches (the SSH command
returns once the port accepts connections) and exits by itself after `--idle-exit` seconds without an
authenticated request and with no transfer in flight, or after `--max-life` seconds in all, so an aborted
deploy never leaves it running for long. Every request must carry this mirror's own random token
(`Authorization: Bearer`), checked before anything else: gated weights never become readable by whoever
reaches the port, and an unauthenticated request neither keeps the mirror alive nor reaches the router.
Connections are capped and time out.

One mirror per node at a time: the serving process holds an exclusive `flock` on `--lock-file` for its whole
life. A second run's `serve` waits up to `--wait` seconds for it and then stops with a message; it never kills
another run's mirror. `stop` stops only the mirror of its own `--run-id`.

What is served: only files of the verification records of the models asked for, read from `blobs/<locked
hash>` itself (never through a snapshot link, never a symlink: O_NOFOLLOW), and only while the blob is still
exactly the one that was verified (size, mtime, ctime, inode); and for relayed models, the exact inode the
fetch announced (device and inode checked), cut off when the fetch restarts or drops it.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import hmac
import ipaddress
import itertools
import json
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from lpfleet.weights_relay import (
    NOT_YET,
    blob_stamp,
    board_finished,
    create_board,
    open_entry,
    read_entry,
    remove_own_folder,
)

CHUNK = 8 * 1024 * 1024  # sendfile per call: activity is noted between calls
RELAY_POLL = 0.01  # seconds between looks at a staging file that has not grown (or a blob not yet announced)
RELAY_WAIT = 8.0  # seconds a request for a relayed file waits for the fetch to start it (then 503, "not yet":
# shorter than the peers' read timeout, so that they ask again instead of counting a stalled connection)
MAX_CONNECTIONS = 64
CONNECTION_TIMEOUT = 60.0  # seconds a connection may sit without sending or receiving
HEX = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
RUN_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
MODEL_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9_][A-Za-z0-9_.-]{0,95}")


def _folder(model_id: str) -> str:
    return "models--" + model_id.replace("/", "--")


class MirrorIndex:
    """(model_id, commit) -> {path: file entry} from the models dir's verification records; for the models
    this node is still fetching in the run (`relay`), every locked file, served from the relay board while it
    arrives."""

    def __init__(self, models_dir: str, models: list[list[str]], relay: list[dict] | None = None) -> None:
        self.models_dir = models_dir
        self.files: dict[tuple[str, str], dict[str, dict]] = {}
        self.relayed: set[tuple[str, str]] = set()
        for raw in relay or []:
            self._add_relayed(raw)
        for model_id, commit in models:
            if (model_id, commit) in self.relayed:
                continue
            if not (
                isinstance(model_id, str)
                and MODEL_ID.fullmatch(model_id)
                and ".." not in model_id
                and isinstance(commit, str)
                and re.fullmatch(r"[0-9a-f]{40}", commit)
            ):
                raise ValueError(f"not a model id and commit: {str(model_id)[:100]!r} {str(commit)[:60]!r}")
            with open(self._record_path(model_id, commit)) as handle:
                record = json.load(handle)
            locked = {f["path"]: f for f in record["model"]["files"]}
            served = {}
            for p, f in locked.items():
                etag = f.get("sha256") or f.get("git_blob")
                if isinstance(etag, str) and HEX.fullmatch(etag) and isinstance(f.get("size"), int):
                    served[p] = {**f, "etag": etag, "stamp": None}
            self.files[(model_id, commit)] = served
            self._load_stamps(model_id, commit, record)
            for p in [p for p, f in served.items() if f["stamp"] is None]:
                del served[p]  # not verified: never served

    def _record_path(self, model_id: str, commit: str) -> str:
        return os.path.join(self.models_dir, ".lpfleet", "verified", _folder(model_id), commit + ".json")

    def _add_relayed(self, raw: dict) -> None:
        """A model this node fetches in the run: its locked files (checked as the node checks its plan)."""
        from lpfleet.lock import load_model_dict

        model = load_model_dict(raw if isinstance(raw, dict) else {}, "mirror relay")
        key = (model.model_id, model.commit)
        self.files[key] = {
            f.path: {**f.to_dict(), "etag": f.etag, "stamp": None} for f in model.files if HEX.fullmatch(f.etag)
        }
        self.relayed.add(key)
        self.refresh(*key)

    def _load_stamps(self, model_id: str, commit: str, record: dict) -> None:
        verified = record.get("files", {}) if isinstance(record, dict) else {}
        for p, f in self.files[(model_id, commit)].items():
            entry = verified.get(p) if isinstance(verified, dict) else None
            if isinstance(entry, dict) and entry.get("etag") == f["etag"] and isinstance(entry.get("stamp"), list):
                f["stamp"] = list(entry["stamp"])

    def refresh(self, model_id: str, commit: str) -> None:
        """Re-read a relayed model's verification record (the fetch saves it after every round)."""
        try:
            with open(self._record_path(model_id, commit)) as handle:
                self._load_stamps(model_id, commit, json.load(handle))
        except (OSError, ValueError):
            pass

    def open_blob(self, model_id: str, entry: dict) -> int | None:
        """A read-only fd of the verified blob itself, or None when it is no longer exactly what was
        verified."""
        repo_dir = os.path.join(self.models_dir, _folder(model_id))
        for folder in (repo_dir, os.path.join(repo_dir, "blobs")):
            try:
                if not stat.S_ISDIR(os.lstat(folder).st_mode):
                    return None
            except OSError:
                return None
        try:
            fd = os.open(os.path.join(repo_dir, "blobs", entry["etag"]), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        st = os.fstat(fd)
        if (
            not stat.S_ISREG(st.st_mode)
            or blob_stamp(st) != entry["stamp"]
            or st.st_size != entry["size"]
        ):
            os.close(fd)
            return None
        return fd

    def tree(self, model_id: str, commit: str) -> list[dict] | None:
        files = self.files.get((model_id, commit))
        if files is None:
            return None
        out = []
        for path in sorted(files):
            f = files[path]
            if f.get("sha256"):
                out.append(
                    {
                        "type": "file",
                        "path": path,
                        "size": f["size"],
                        "oid": "0" * 40,
                        "lfs": {"oid": f["sha256"], "size": f["size"], "pointerSize": 0},
                    }
                )
            else:
                out.append({"type": "file", "path": path, "size": f["size"], "oid": f["git_blob"]})
        return out


class MirrorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = CONNECTION_TIMEOUT  # socket timeout of every connection (an idle one is dropped)
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
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), self.server.token.encode()
        ):
            self.close_connection = True
            return self._error(401, None, "lpfleet mirror: token required")
        self.server.touch()  # only an authenticated request counts as activity
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
        if (model_id, commit) in self.server.index.relayed:
            return self._relay(model_id, commit, entry)
        fd = self.server.index.open_blob(model_id, entry)
        if fd is None:
            return self._error(
                404, "EntryNotFound", f"{path}: the blob changed since it was verified; not served"
            )
        try:
            self._send_blob(fd, commit, entry)
        finally:
            os.close(fd)

    def _relay(self, model_id: str, commit: str, entry: dict) -> None:
        """A file of a model this node is fetching in the run: its verified blob once there, else the staging
        file the fetch announces on the relay board, forwarded as it grows. Waits up to `relay_wait` for the
        fetch to get to it; 404 once the fetch has ended without it."""
        index, board = self.server.index, self.server.relay_board
        waited_until = time.monotonic() + self.server.relay_wait
        ended = False  # the fetch has ended: one more look after re-reading the record, then 404
        with self.server.transfer():
            for polls in itertools.count():
                fd = index.open_blob(model_id, entry) if entry["stamp"] else None
                growing = False
                if fd is None and board:
                    found = read_entry(board, entry["etag"])
                    if found and found["state"] in ("started", "complete"):
                        fd = open_entry(found)
                        growing = found["state"] == "started"
                if fd is not None:
                    try:
                        return self._send_blob(fd, commit, entry, growing=growing)
                    finally:
                        os.close(fd)
                if ended:
                    return self._error(404, "EntryNotFound", f"{entry['path']}: not fetched on this node")
                ended = board is None or board_finished(board)
                if ended or polls % 50 == 49:
                    index.refresh(model_id, commit)
                if ended:
                    continue
                if time.monotonic() > waited_until:
                    return self._error(503, NOT_YET, f"{entry['path']}: not arrived on this node yet")
                time.sleep(RELAY_POLL)

    def _send_blob(self, fd: int, commit: str, entry: dict, growing: bool = False) -> None:
        """The blob's bytes (all, or the requested range). `growing`: a staging file still being written,
        sent as it grows; the connection is cut when it shrinks (the fetch restarted it), disappears without
        its end or stops growing for `CONNECTION_TIMEOUT`: the peer resumes or falls back, and verifies every
        byte either way."""
        size = entry["size"]
        start, end, status = 0, size - 1, 200
        headers = {"X-Repo-Commit": commit, "ETag": '"%s"' % entry["etag"], "Accept-Ranges": "bytes"}
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
        self.wfile.flush()
        with self.server.transfer(), os.fdopen(fd, "rb", closefd=False) as handle:
            offset, left = start, end - start + 1
            seen, last_growth = 0, time.monotonic()
            while left > 0:  # socket.sendfile waits for the socket within its timeout (os.sendfile would not)
                count = min(CHUNK, left)
                if growing:
                    st = os.fstat(fd)
                    if st.st_size < seen or st.st_nlink == 0:
                        self.close_connection = True  # restarted or dropped by the fetch: cut, never mixed
                        return
                    if st.st_size > seen:
                        seen, last_growth = st.st_size, time.monotonic()
                    if seen <= offset:
                        if time.monotonic() - last_growth > CONNECTION_TIMEOUT:
                            self.close_connection = True
                            return
                        time.sleep(RELAY_POLL)
                        continue
                    count = min(count, seen - offset)
                sent = self.connection.sendfile(handle, offset=offset, count=count)
                if sent == 0:
                    break
                offset += sent
                left -= sent
                self.server.touch()


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        index: MirrorIndex,
        token: str,
        family: int = socket.AF_INET,
        max_connections: int = MAX_CONNECTIONS,
        relay_board: str | None = None,
        relay_wait: float = RELAY_WAIT,
    ) -> None:
        self.address_family = family
        super().__init__(address, MirrorHandler)
        self.index = index
        self.token = token
        self.relay_board = relay_board  # the fetch's announcements of files in flight (lpfleet.weights_relay)
        self.relay_wait = relay_wait
        self.last_request = time.monotonic()
        self.active = 0  # transfers in flight: the mirror never exits idle while one runs
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()

    def touch(self) -> None:
        self.last_request = time.monotonic()

    class _Transfer:
        def __init__(self, server: MirrorServer) -> None:
            self.server = server

        def __enter__(self) -> None:
            with self.server._lock:
                self.server.active += 1

        def __exit__(self, *exc: object) -> None:
            with self.server._lock:
                self.server.active -= 1
            self.server.touch()

    def transfer(self) -> MirrorServer._Transfer:
        return MirrorServer._Transfer(self)

    def process_request(self, request, client_address) -> None:  # noqa: ANN001
        """At most `max_connections` at once: one more is closed at once instead of getting a thread."""
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:  # noqa: ANN001
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _watchdog(server: MirrorServer, idle_exit: float, max_life: float) -> None:
    started = time.monotonic()
    while True:
        time.sleep(1.0)
        now = time.monotonic()
        idle = now - server.last_request > idle_exit and server.active == 0
        if idle or now - started > max_life:
            server.shutdown()
            return


def bind_address(host: str, port: int) -> tuple[int, tuple]:
    """(family, sockaddr) for `host`: an IP address or a host name resolved on this node; never a wildcard."""
    if not (HOSTNAME.fullmatch(host) or _is_ip(host)):
        raise ValueError(f"--host {host[:80]!r} is not a host name or an IP address")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ValueError(f"--host {host}: does not resolve on this node ({exc})") from None
    family, _, _, _, sockaddr = infos[0]
    if ipaddress.ip_address(sockaddr[0]).is_unspecified:
        raise ValueError(
            f"--host {host} resolves to the wildcard address {sockaddr[0]}; give the LAN address "
            "peers reach this node at (weights_lan_address)"
        )
    return family, sockaddr


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _take_node_lock(lock_file: str, wait: float) -> int | None:
    """The node's mirror lock (an fd holding an exclusive flock), waiting up to `wait` s; None when taken."""
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.5)


def _read_pid_file(pid_file: str) -> tuple[int, str] | None:
    try:
        with open(pid_file) as handle:
            pid, _, run_id = handle.read().strip().partition(" ")
        return int(pid), run_id
    except (OSError, ValueError):
        return None


def serve(args: argparse.Namespace) -> int:
    try:
        request = json.loads(sys.stdin.read() or "{}")
    except ValueError:
        request = {}
    request = request if isinstance(request, dict) else {}
    token = request.get("token") or ""
    if not isinstance(token, str) or len(token) < 16:
        sys.stderr.write("lpfleet mirror: a token of at least 16 characters is required on stdin\n")
        return 2
    if not RUN_ID.fullmatch(args.run_id or ""):
        sys.stderr.write("lpfleet mirror: --run-id: 8 to 64 letters, digits, '_' or '-'\n")
        return 2
    try:
        family, sockaddr = bind_address(args.host, args.port)
    except ValueError as exc:
        sys.stderr.write(f"lpfleet mirror: {exc}\n")
        return 2
    lock_fd = _take_node_lock(args.lock_file, args.wait)
    if lock_fd is None:
        other = _read_pid_file(args.pid_file)
        sys.stderr.write(
            "lpfleet mirror: another lpfleet run's weights mirror is serving on this node"
            + (f" (pid {other[0]})" if other else "")
            + f"; waited {args.wait:.0f} s. It stops by "
            "itself when idle; run the deploy again then (it is never stopped by another run)\n"
        )
        return 3
    board_made = False
    try:
        index = MirrorIndex(args.models_dir, request.get("models", []), request.get("relay") or [])
        if args.relay_board:
            create_board(args.relay_board)  # before we return: the fetch that follows writes to it
            board_made = True
        server = MirrorServer(
            sockaddr[:2], index, token, family, relay_board=args.relay_board, relay_wait=args.relay_wait
        )  # bound now: peers can connect once we return
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback (LockError from a relayed model too)
        sys.stderr.write(f"lpfleet mirror: cannot serve on {args.host}:{args.port}: {exc}\n")
        if board_made:
            remove_own_folder(args.relay_board)
        os.close(lock_fd)
        return 1
    pid = os.getpid() if args.foreground else os.fork()
    if pid and not args.foreground:
        os.close(lock_fd)  # the child holds the lock now
        print(f"lpfleet mirror: serving {len(index.files)} model(s) on {args.host}:{args.port} (pid {pid})")
        return 0
    if not args.foreground:
        os.setsid()
        log = os.open(args.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
    tmp = f"{args.pid_file}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        handle.write(f"{os.getpid()} {args.run_id}\n")
    os.replace(tmp, args.pid_file)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    threading.Thread(target=_watchdog, args=(server, args.idle_exit, args.max_life), daemon=True).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if args.relay_board:
            remove_own_folder(args.relay_board)
        mine = _read_pid_file(args.pid_file)
        if mine and mine[0] == os.getpid():
            try:
                os.unlink(args.pid_file)
            except OSError:
                pass
    if args.foreground:
        return 0
    os._exit(0)


def _is_mirror(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"lpfleet.weights_mirror" in handle.read()
    except OSError:
        return False


def stop(args: argparse.Namespace) -> int:
    """Stop the mirror this run started (pid file names it with the run id); any other run's is left alone."""
    current = _read_pid_file(args.pid_file)
    if current is None or current[1] != args.run_id:
        print("lpfleet mirror: this run's mirror is not running")
        return 0
    pid = current[0]
    if _is_mirror(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if not _is_mirror(pid):
                break
            time.sleep(0.1)
    print("lpfleet mirror: stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lpfleet.weights_mirror", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve")
    p_serve.add_argument("--models-dir", required=True)
    p_serve.add_argument("--host", required=True, help="the LAN address to bind (never 0.0.0.0)")
    p_serve.add_argument("--port", type=int, required=True)
    p_serve.add_argument("--pid-file", required=True)
    p_serve.add_argument("--lock-file", required=True, help="the node-wide mirror lock (flock)")
    p_serve.add_argument("--run-id", required=True)
    p_serve.add_argument("--wait", type=float, default=60.0, help="seconds to wait for another run's mirror")
    p_serve.add_argument("--log-file", default="/dev/null")
    p_serve.add_argument("--idle-exit", type=float, default=300.0)
    p_serve.add_argument("--max-life", type=float, default=3600.0)
    p_serve.add_argument("--foreground", action="store_true")
    p_serve.add_argument("--relay-board", default=None,
                         help="fan-out chain: a new folder where this node's fetch announces files in flight")
    p_serve.add_argument("--relay-wait", type=float, default=RELAY_WAIT)
    p_serve.set_defaults(func=serve)
    p_stop = sub.add_parser("stop")
    p_stop.add_argument("--pid-file", required=True)
    p_stop.add_argument("--run-id", required=True)
    p_stop.set_defaults(func=stop)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
