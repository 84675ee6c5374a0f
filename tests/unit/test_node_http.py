"""The node script's HTTP without http.client/urllib (lpfleet.probe.http_exchange, probe_plain, the verify
script's docker_get): the same results as urllib's, against real servers on 127.0.0.1 and a unix socket."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lpfleet.facts import verify_node_script
from lpfleet.facts.verify import node_program
from lpfleet.probe import probe, probe_plain


class Handler(BaseHTTPRequestHandler):
    """/health (OK, or LOADING with ?loading), /status/<code>, /redirect -> /health, /hang (3 s), /nolength
    (body until close), /short (Content-Length larger than the body). Counts the requests per path."""

    seen: dict[str, int] = {}

    def do_GET(self):  # noqa: N802 - http.server API
        Handler.seen[self.path] = Handler.seen.get(self.path, 0) + 1
        if self.path.startswith("/hang"):
            time.sleep(3)
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", "/health")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/nolength"):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"x" * 200_000)
            self.close_connection = True
            return
        if self.path.startswith("/short"):
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"only this")
            self.close_connection = True
            return
        code = int(self.path.split("/")[2]) if self.path.startswith("/status/") else 200
        body = json.dumps({"status": "LOADING" if "loading" in self.path else "OK",
                           "agent": self.headers.get("User-Agent"), "x": self.headers.get("X-Probe")}).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True


@pytest.fixture(scope="module")
def server():
    srv = _Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _same(a, b) -> None:
    assert (a.url, a.status, a.body, a.error, a.health) == (b.url, b.status, b.body, b.error, b.health)


@pytest.mark.parametrize("path", ["/health", "/health?loading=1", "/status/500", "/status/404", "/redirect",
                                  "/nolength", "/short"])
def test_plain_probe_answers_as_urllib_does(server, path):
    _same(probe_plain(server + path, 2.0, {"x-probe": "1"}), probe(server + path, 2.0, {"x-probe": "1"}))


@pytest.mark.parametrize("path", ["/health?once=1", "/status/503", "/nolength?once=1"])
def test_plain_probe_answers_itself_what_it_can(server, path):
    """An ordinary answer (with or without Content-Length, any non-redirect status) is read without urllib:
    one request, not a second one through probe()."""
    result = probe_plain(server + path, 2.0)
    assert result.status in (200, 503) and result.body
    assert Handler.seen[path] == 1


def test_plain_probe_hands_the_unusual_to_urllib(server):
    """A body shorter than its Content-Length: probe_plain asks again through probe() (two requests)."""
    probe_plain(server + "/short?twice=1", 2.0)
    assert Handler.seen["/short?twice=1"] == 2


def test_plain_probe_failures_as_urllib_describes_them(server):
    refused = f"http://127.0.0.1:{_free_port()}/health"
    _same(probe_plain(refused, 1.0), probe(refused, 1.0))
    assert probe_plain(refused, 1.0).error == "connection refused"
    started = time.monotonic()
    hang = probe_plain(server + "/hang", 0.5)
    assert hang.status is None and hang.error == "timeout" and time.monotonic() - started < 2.0


def test_plain_probe_of_a_server_that_is_not_http():
    """No status line: probe_plain hands the URL to urllib, so the result is urllib's."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def garbage():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conn.recv(4096)
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
            conn.close()

    threading.Thread(target=garbage, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/health"
    try:
        _same(probe_plain(url, 1.0), probe(url, 1.0))
        assert probe_plain(url, 1.0).status is None
    finally:
        listener.close()


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class EngineAPI(BaseHTTPRequestHandler):
    """/info as JSON, /containers/x/logs streamed without a length, /gone closes without answering."""

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path.startswith("/gone"):
            self.close_connection = True
            return
        if self.path.endswith("/logs"):
            self.send_response(200)
            self.end_headers()
            for i in range(50):
                self.wfile.write(b"\x01\x00\x00\x00\x00\x00\x00\x07line%02d\n" % i)
            return
        body = json.dumps({"Runtimes": {"runc": {}, "nvidia": {}}, "DefaultRuntime": "runc"}).encode()
        self.send_response(200 if self.path == "/info" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):
        return "unix"

    def log_message(self, *args):
        pass


def test_docker_get_over_a_unix_socket(tmp_path):
    path = str(tmp_path / "docker.sock")
    srv = _UnixServer(path, EngineAPI)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        assert verify_node_script.docker_json(path, "/info", 2.0)["DefaultRuntime"] == "runc"
        assert verify_node_script.docker_json(path, "/containers/none/json", 2.0) is None  # 404
        status, body = verify_node_script.docker_get(path, "/containers/w/logs", 2.0)
        assert status == 200 and verify_node_script.demux_logs(body).splitlines()[-1] == "line49"
        with pytest.raises(ConnectionResetError, match="closed connection without response"):
            verify_node_script.docker_get(path, "/gone", 2.0)
        with pytest.raises(FileNotFoundError):
            verify_node_script.docker_get(str(tmp_path / "absent.sock"), "/info", 2.0)
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_shipped_program_imports_neither_http_client_nor_urllib_request(tmp_path):
    """What the node pays at start: the verify program loads without http.client and urllib.request."""
    program = tmp_path / "program.py"
    program.write_text(node_program())
    check = (
        "import runpy, sys; runpy.run_path(sys.argv[1], run_name='not_main'); "
        "print(sorted(m for m in ('http.client', 'urllib.request', 'email.parser') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-I", "-c", check, str(program)], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
