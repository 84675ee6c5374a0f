"""lpfleet.probe against real HTTP servers on 127.0.0.1 (no mocks): latency, timeouts, refusals, statuses."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lpfleet.probe import probe, probe_all


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 100 probes connect at once


def _serve(handler_cls):
    server = _Server(("127.0.0.1", 0), handler_cls)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


class Slow(BaseHTTPRequestHandler):
    """/health after 0.5 s, like a runner across a slow link; /status/<code>; /hang never answers in time."""

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path.startswith("/hang"):
            time.sleep(3)
        elif self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
            body = json.dumps({"detail": {"msg": "Failed to retrieve pipeline status."}}).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        else:
            time.sleep(0.5)
        body = json.dumps({"status": "LOADING" if "loading" in self.path else "OK"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    srv, url = _serve(Slow)
    yield url
    srv.shutdown()
    srv.server_close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_hundred_endpoints_at_half_a_second_finish_under_two_seconds(server):
    urls = [f"{server}/health?n={i}" for i in range(100)]
    started = time.monotonic()
    results = probe_all(urls, timeout_s=5)
    elapsed = time.monotonic() - started
    assert [r.url for r in results] == urls
    assert all(r.status == 200 and r.health == "OK" for r in results)
    assert all(r.elapsed_s >= 0.45 for r in results)  # each really waited for the server
    assert elapsed < 2.0, f"100 probes took {elapsed:.2f} s"


def test_sequential_would_not_meet_the_bound(server):
    # the bound above only holds because probes overlap: 5 in a row take >= 2.5 s
    started = time.monotonic()
    for i in range(5):
        assert probe(f"{server}/health?s={i}").status == 200
    assert time.monotonic() - started >= 2.5


def test_timeout_is_a_result_and_bounds_the_call(server):
    started = time.monotonic()
    results = probe_all([f"{server}/hang", f"{server}/health"], timeout_s=1.0)
    assert time.monotonic() - started < 2.5
    hang, ok = results
    assert hang.status is None and hang.error == "timeout"
    assert ok.status == 200


def test_refused_and_http_errors(server):
    refused = f"http://127.0.0.1:{_free_port()}/health"
    results = probe_all([refused, f"{server}/status/500", f"{server}/health?loading=1"], timeout_s=2)
    assert results[0].status is None and results[0].error == "connection refused"
    assert results[1].status == 500 and results[1].health is None and "Failed to retrieve" in results[1].body
    assert results[2].health == "LOADING"


def test_duplicates_probed_once_and_empty_input(server):
    assert probe_all([]) == []
    results = probe_all([f"{server}/health", f"{server}/health"])
    assert len(results) == 1


def test_result_serialises(server):
    result = probe(f"{server}/health")
    data = result.to_dict()
    assert data["status"] == 200 and data["url"].endswith("/health") and "elapsed_s" in data
