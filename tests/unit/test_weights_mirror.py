"""The fan-out mirror (`python -m lpfleet.weights_mirror`) on 127.0.0.1: it binds only the address given,
authenticates before anything else, serves only verified blobs (never through a link), caps connections, never
exits under a transfer in flight, and never stops or replaces another run's mirror.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from lpfleet.hub import HubError, ensure_model, lock_model
from lpfleet.lock import LockedFile, LockedModel, ModelRequest
from lpfleet.weights_fetch import FetchLimits, write_atomic
from tests.hostile_hub import COMMIT, REPO, WEIGHTS, HostileHub, sha256

TOKEN = "mirror-token-0123456789abcdef"
FOLDER = "models--evil--model"
FAST = FetchLimits(min_rate=1e9, deadline_floor=5.0, read_timeout=2.0, resumes=1)


def free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def seeded(tmp_path):
    """A models dir holding the hostile hub's model, verified (what a seed has after its fetch)."""
    with HostileHub() as hub:
        model = lock_model(ModelRequest(REPO, "main", None), hub.url, None)
        ensure_model(tmp_path / "seed", model, endpoint=hub.url, token=None, progress=False)
    return tmp_path / "seed", model


class Mirror:
    def __init__(
        self,
        tmp_path: Path,
        models_dir: Path,
        models: list,
        run_id: str = "run-aaaa1111",
        idle_exit: float = 30,
        extra: tuple = (),
        port: int | None = None,
        relay: list | None = None,
    ):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.run_dir = tmp_path
        self.args = [
            sys.executable,
            "-m",
            "lpfleet.weights_mirror",
            "serve",
            "--foreground",
            "--models-dir",
            str(models_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--pid-file",
            str(tmp_path / "mirror.pid"),
            "--lock-file",
            str(tmp_path / "mirror.lock"),
            "--run-id",
            run_id,
            "--idle-exit",
            str(idle_exit),
            "--wait",
            "1",
            *extra,
        ]
        self.proc = subprocess.Popen(
            self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.proc.stdin.write(json.dumps({"token": TOKEN, "models": models, "relay": relay or []}))
        self.proc.stdin.close()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def get(url: str, token: str | None = TOKEN, timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def file_url(mirror: Mirror, path: str = "model.safetensors") -> str:
    return f"{mirror.url}/{REPO}/resolve/{COMMIT}/{path}"


def test_a_wildcard_or_malformed_bind_address_is_refused(tmp_path, seeded):
    models_dir, _ = seeded
    for host in ("0.0.0.0", "::", "bad host; rm -rf /"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "lpfleet.weights_mirror",
                "serve",
                "--foreground",
                "--models-dir",
                str(models_dir),
                "--host",
                host,
                "--port",
                str(free_port()),
                "--pid-file",
                str(tmp_path / "p"),
                "--lock-file",
                str(tmp_path / "l"),
                "--run-id",
                "run-aaaa1111",
            ],
            input=json.dumps({"token": TOKEN, "models": []}),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2 and "lpfleet mirror: " in result.stderr, (host, result.stderr)
        assert "Traceback" not in result.stderr


def test_peers_copy_verified_bytes_with_the_token_only(tmp_path, seeded):
    models_dir, model = seeded
    mirror = Mirror(tmp_path, models_dir, [[REPO, COMMIT]])
    try:
        assert get(file_url(mirror), token=None)[0] == 401
        assert get(file_url(mirror), token="wrong-token-0123456789")[0] == 401
        status, body = get(file_url(mirror))
        assert status == 200 and body == WEIGHTS
        result = ensure_model(
            tmp_path / "peer", model, endpoint=mirror.url, token=TOKEN, progress=False, limits=FAST
        )
        assert result.fetched_files == 2
        listening = [
            line
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[1].endswith(f":{mirror.port:04X}") and line.split()[3] == "0A"
        ]
        assert listening and all(
            line.split()[1].startswith("0100007F:") for line in listening
        )  # 127.0.0.1 only
    finally:
        mirror.stop()


def test_unauthenticated_requests_do_not_keep_it_alive(tmp_path, seeded):
    models_dir, _ = seeded
    mirror = Mirror(tmp_path, models_dir, [[REPO, COMMIT]], idle_exit=2)
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and mirror.proc.poll() is None:
            try:
                get(file_url(mirror), token=None, timeout=1)
            except OSError:
                pass
            time.sleep(0.3)
        assert mirror.proc.poll() is not None, "401s kept the mirror alive"
    finally:
        mirror.stop()


def test_only_the_verified_blob_itself_is_served(tmp_path, seeded):
    """A runner container can rewrite the models dir: a repointed link, a blob swapped for a link, a blob
    changed in place. The mirror serves the verified blob or nothing."""
    models_dir, _ = seeded
    repo = models_dir / FOLDER
    mirror = Mirror(tmp_path, models_dir, [[REPO, COMMIT]])
    try:
        link = repo / "snapshots" / COMMIT / "model.safetensors"
        link.unlink()
        link.symlink_to("/etc/os-release")
        status, body = get(file_url(mirror))
        assert status == 200 and body == WEIGHTS  # read from blobs/<locked hash>, never through the link
        blob = repo / "blobs" / sha256(WEIGHTS)
        data = bytearray(blob.read_bytes())
        data[0] ^= 0xFF
        blob.write_bytes(bytes(data))  # same size, other bytes: not what was verified
        assert get(file_url(mirror))[0] == 404
        blob.unlink()
        blob.symlink_to("/etc/os-release")
        status, body = get(file_url(mirror))
        assert status == 404 and b"PRETTY_NAME" not in body
    finally:
        mirror.stop()


def test_connections_are_capped(tmp_path, seeded):
    models_dir, _ = seeded
    mirror = Mirror(tmp_path, models_dir, [[REPO, COMMIT]])
    held = []
    try:
        for _ in range(80):
            held.append(socket.create_connection(("127.0.0.1", mirror.port), timeout=2))
        time.sleep(1.0)
        import select

        readable, _, _ = select.select(held, [], [], 1.0)  # a closed connection reads as EOF (or a reset)
        closed = 0
        for sock in readable:
            try:
                closed += sock.recv(1) == b""
            except ConnectionResetError:
                closed += 1
        assert closed >= 10, closed  # beyond the cap a connection is closed at once, not given a thread
        threads = len(os.listdir(f"/proc/{mirror.proc.pid}/task"))
        assert threads <= 64 + 8, threads
    finally:
        for sock in held:
            sock.close()
        mirror.stop()


def test_a_second_run_waits_then_stops_and_never_kills_the_first(tmp_path, seeded):
    models_dir, _ = seeded
    first = Mirror(tmp_path, models_dir, [[REPO, COMMIT]], run_id="run-first111")
    try:
        second = Mirror(tmp_path, models_dir, [[REPO, COMMIT]], run_id="run-second22")
        second.proc.wait(timeout=20)
        assert second.proc.returncode == 3
        assert "another lpfleet run's weights mirror is serving" in second.proc.stderr.read()
        assert first.proc.poll() is None and get(file_url(first))[0] == 200
        other_stop = subprocess.run(
            [
                sys.executable,
                "-m",
                "lpfleet.weights_mirror",
                "stop",
                "--pid-file",
                str(tmp_path / "mirror.pid"),
                "--run-id",
                "run-second22",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "not running" in other_stop.stdout and first.proc.poll() is None
        own_stop = subprocess.run(
            [
                sys.executable,
                "-m",
                "lpfleet.weights_mirror",
                "stop",
                "--pid-file",
                str(tmp_path / "mirror.pid"),
                "--run-id",
                "run-first111",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "stopped" in own_stop.stdout
        first.proc.wait(timeout=10)
    finally:
        first.stop()


def test_idle_exit_waits_for_a_transfer_in_flight(tmp_path):
    """A peer reading slowly past the idle time gets every byte."""
    size = 48 * 1024 * 1024
    models_dir = tmp_path / "big"
    blob_dir = models_dir / "models--org--big" / "blobs"
    blob_dir.mkdir(parents=True)
    data = os.urandom(1024 * 1024) * 48
    digest = hashlib.sha256(data).hexdigest()
    (blob_dir / digest).write_bytes(data)
    st = os.stat(blob_dir / digest)
    model = LockedModel("org/big", "main", COMMIT, None, (LockedFile("w.bin", size, sha256=digest),))
    record = {
        "model": model.to_dict(),
        "files": {
            "w.bin": {"etag": digest, "stamp": [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]}
        },
    }
    path = models_dir / ".lpfleet" / "verified" / "models--org--big" / f"{COMMIT}.json"
    path.parent.mkdir(parents=True)
    write_atomic(path, json.dumps(record))
    mirror = Mirror(tmp_path, models_dir, [["org/big", COMMIT]], idle_exit=1)
    try:
        sock = socket.create_connection(("127.0.0.1", mirror.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(
            f"GET /org/big/resolve/{COMMIT}/w.bin HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
        )
        received = 0
        started = time.monotonic()
        hasher = hashlib.sha256()
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        while received < size:
            chunk = sock.recv(256 * 1024)
            if not chunk:
                break
            hasher.update(chunk)
            received += len(chunk)
            time.sleep(0.01)  # ~ 20 MB/s at most: several idle periods long
        assert received == size and hasher.hexdigest() == digest
        assert time.monotonic() - started > 2
        sock.close()
    finally:
        mirror.stop()


def test_a_peer_with_the_wrong_token_fails_with_a_message(tmp_path, seeded):
    models_dir, model = seeded
    mirror = Mirror(tmp_path, models_dir, [[REPO, COMMIT]])
    try:
        with pytest.raises(HubError, match="gated model and the token has no access|token"):
            ensure_model(
                tmp_path / "peer",
                model,
                endpoint=mirror.url,
                token="another-mirrors-token-1234",
                progress=False,
                limits=FAST,
                attempts=1,
            )
    finally:
        mirror.stop()
