"""Bench: lpfleet.probe against N endpoints that each take LATENCY seconds to answer (the design bar: 100
endpoints at 0.5 s in under 2 s), and the same probes as the node script runs them (python3 -c, the shipped
program) so the on-node cost is measured too.

    .venv/bin/python bench/verify_probe.py [--endpoints 100] [--latency 0.5] [--repeat 5]

Servers: one ThreadingHTTPServer per 10 endpoints on 127.0.0.1, each sleeping LATENCY before answering
{"status": "OK"} - a slow runner's /health.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lpfleet.facts.verify import _bootstrap, encode_params, parse_output  # noqa: E402
from lpfleet.probe import probe_all  # noqa: E402


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve(latency: float) -> ThreadingHTTPServer:
    class Slow(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            time.sleep(latency)
            body = b'{"status": "OK"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = _Server(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    servers = [serve(args.latency) for _ in range(max(1, args.endpoints // 10))]
    urls = [
        f"http://127.0.0.1:{servers[i % len(servers)].server_address[1]}/health?e={i}"
        for i in range(args.endpoints)
    ]

    controller = []
    for _ in range(args.repeat):
        started = time.monotonic()
        results = probe_all(urls, timeout_s=5)
        controller.append(time.monotonic() - started)
        assert all(r.status == 200 for r in results), [r for r in results if r.status != 200][:3]

    node = []
    params = {
        "docker_socket": "/nonexistent.sock",
        "urls": urls,
        "timeout": 5,
        "ai_models_path": "/nonexistent",
        "models_dir": "/nonexistent",
        "weights": [],
    }
    for _ in range(args.repeat):
        started = time.monotonic()
        proc = subprocess.run(
            ["python3", "-c", _bootstrap(), encode_params(params)], capture_output=True, text=True
        )
        node.append(time.monotonic() - started)
        snap = parse_output(proc.stdout.splitlines())
        assert sum(p["status"] == 200 for p in snap["probes"]) == args.endpoints, snap.get("error")

    def stats(values):
        return {
            "min": round(min(values), 3),
            "median": round(statistics.median(values), 3),
            "max": round(max(values), 3),
        }

    print(
        json.dumps(
            {
                "endpoints": args.endpoints,
                "latency_s": args.latency,
                "repeat": args.repeat,
                "controller_probe_all_s": stats(controller),
                "node_script_s": stats(node),
                "sequential_would_take_s": round(args.endpoints * args.latency, 1),
                "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            },
            indent=2,
        )
    )
    ok = max(controller) < 2.0 and max(node) < 2.0
    print("bar (100 endpoints at 0.5 s in < 2 s):", "met" if ok else "NOT met", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
