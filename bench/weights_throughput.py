"""Single-node weights throughput: `lpfleet prefetch` (as the weights step runs it on a node) vs raw `curl` of the
same files from the same hub, in one run, on one sandbox node.

    LPFLEET_SANDBOX=<name> .venv/bin/python bench/weights_throughput.py [--rate MBPS] [--reps N] [--models ID ...]

Both sides run on the node, fetch the same locked files from the sandbox hub (node view URL) into an empty
directory, and are timed end to end (process start included). `--rate` throttles the hub's upload to a shared
WAN-like link (0 = unthrottled LAN); curl gets the same link and the same parallelism as huggingface_hub
(8 transfers at once). prefetch additionally hashes every byte and writes the HF cache layout, so two more columns
give a verified download's limit: `curl | tee FILE | sha256sum` (coreutils) and `curl | tee FILE | openssl dgst
-sha256` (OpenSSL's SHA-256, which uses the CPU's SHA extensions as Python's hashlib does), 8 files at once.
`--sides` picks the columns.

`--loopback` runs the same sides against a second hub started inside the node itself on 127.0.0.1 (the sandbox
hub's own code, copied into the node and run by its python3; same deterministic content, so the same lock): the
bytes cross the node's loopback interface, not the container LAN, and the hub's CPU is the node's. (The hub's
port published on the controller's 127.0.0.1 is not loopback: docker-proxy relays it onto the container LAN.)
The 1 GiB model of 8 shards is `--models lpfleet-sandbox/bench-weights-1g`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lpfleet import catalog  # noqa: E402
from lpfleet.hub import lock_model  # noqa: E402
from lpfleet.lock import ModelRequest  # noqa: E402
from lpfleet.operations.weights import runtime_bundle  # noqa: E402
from lpfleet.sandbox.hub import HubControl  # noqa: E402
from lpfleet.sandbox.state import load_state  # noqa: E402

SIDES = ("curl", "curl|sha256sum", "curl|openssl", "prefetch")
DEFAULT_MODELS = ("SG161222/RealVisXL_V4.0_Lightning", "openai/whisper-large-v3")


def sh(node: str, command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", "-i", node, "sh", "-c", command], input=stdin, capture_output=True,
                          text=True, check=False)


def install_runtime(node: str) -> str:
    bundle = runtime_bundle()
    remote = bundle.remote_dir
    if sh(node, f"test -f {remote}/.complete").returncode != 0:
        subprocess.run(["docker", "cp", bundle.path, f"{node}:/tmp/rt.tgz"], check=True)
        sh(node, f"mkdir -p {remote} && tar -xzf /tmp/rt.tgz -C {remote} && python3 -m compileall -q {remote} >/dev/null && touch {remote}/.complete && rm /tmp/rt.tgz")
    return remote


LOOPBACK_PORT = 18080
LOOPBACK_DIR = "/tmp/lpfleet-bench-hub"


class NodeLocalHub:
    """The sandbox hub run inside `node` on 127.0.0.1, driven through its control API with the node's curl."""

    def __init__(self, node: str, token: str | None) -> None:
        self.node = node
        self.url = f"http://127.0.0.1:{LOOPBACK_PORT}"
        subprocess.run(["docker", "exec", node, "rm", "-rf", LOOPBACK_DIR], check=True)
        subprocess.run(["docker", "exec", node, "mkdir", "-p", LOOPBACK_DIR], check=True)
        subprocess.run(["docker", "cp", str(ROOT / "lpfleet" / "sandbox" / "hub"), f"{node}:{LOOPBACK_DIR}/hub"],
                       check=True)
        env = {**os.environ, "LPFLEET_HUB_TOKEN": token or ""}  # by environment, never on a command line
        started = subprocess.run(
            ["docker", "exec", "-e", "LPFLEET_HUB_TOKEN", node, "sh", "-c",
             f"cd {LOOPBACK_DIR} && (PYTHONPATH={LOOPBACK_DIR} nohup python3 -m hub --host 127.0.0.1 "
             f"--port {LOOPBACK_PORT} >hub.log 2>&1 & echo $! > hub.pid)"],
            env=env, check=False, capture_output=True, text=True)
        assert started.returncode == 0, started.stderr
        for _ in range(100):
            if sh(node, f"curl -sf {self.url}/_sandbox/health").returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{node}: the loopback hub did not start: {sh(node, f'cat {LOOPBACK_DIR}/hub.log').stdout}")

    def _call(self, method: str, path: str, body: dict | None = None) -> object:
        data = f" -H 'Content-Type: application/json' --data {shlex.quote(json.dumps(body))}" if body else ""
        result = sh(self.node, f"curl -sSf -m 300 -X {method}{data} {self.url}/_sandbox/{path}")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout or "null")

    def counters(self) -> dict:
        return self._call("GET", "counters")  # type: ignore[return-value]

    def reset_counters(self) -> None:
        self._call("POST", "counters/reset")

    def add_fault(self, kind: str, **fields: object) -> None:
        self._call("POST", "faults", {"kind": kind, **fields})

    def reset(self) -> None:
        self._call("POST", "reset")

    def generate(self, repo: str) -> None:
        self._call("GET", f"models?files=1&repo={repo}")

    def stop(self) -> None:
        sh(self.node, f"kill $(cat {LOOPBACK_DIR}/hub.pid) 2>/dev/null; rm -rf {LOOPBACK_DIR}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0, help="hub upload limit in MB/s (0: none)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--node", type=int, default=1)
    parser.add_argument("--sides", nargs="*", default=list(SIDES), choices=SIDES)
    parser.add_argument("--loopback", action="store_true",
                        help="fetch from a hub inside the node on 127.0.0.1 instead of the sandbox hub (LAN)")
    args = parser.parse_args()

    state = load_state()
    assert state.hub is not None, "the sandbox has no hub"
    node = state.node(args.node).container
    lan_hub = HubControl(state.hub.controller_url, timeout=300)  # a first listing of a 1 GiB repo generates it
    lan_hub.reset()
    for model_id in args.models:
        lan_hub.models(files=True, repo=model_id)
    models = [lock_model(ModelRequest(m, "main", catalog.download_patterns(m)), state.hub.controller_url,
                         state.hub.token) for m in args.models]
    local = NodeLocalHub(node, state.hub.token) if args.loopback else None
    try:
        return measure(args, node, local or lan_hub, local.url if local else state.hub.node_url, state.hub.token,
                       models)
    finally:
        if local is not None:
            local.stop()
        lan_hub.reset()


def measure(args: argparse.Namespace, node: str, hub: HubControl | NodeLocalHub, endpoint: str, token: str | None,
            models: list) -> int:
    """Every side `args.reps` times against `endpoint` (alternating order), then the medians."""
    if isinstance(hub, NodeLocalHub):
        for model in models:
            hub.generate(model.model_id)
    total = sum(f.size for m in models for f in m.files)
    urls = [f"{endpoint}/{m.model_id}/resolve/{m.commit}/{f.path}" for m in models for f in m.files]
    runtime = install_runtime(node)
    plan = json.dumps({"endpoint": endpoint, "token": token, "branch": "main",
                       "models": [m.to_dict() for m in models]})
    curl = ("mkdir -p /tmp/bench-curl && cd /tmp/bench-curl && curl -sS --fail -Z --parallel-max 8 "
            + " ".join(f"-o f{i} '{u}'" for i, u in enumerate(urls)))
    def piped(hasher: str) -> str:
        """Each file streamed to disk and through `hasher`, as many at once as curl -Z does."""
        return ("mkdir -p /tmp/bench-curl && cd /tmp/bench-curl && printf '%s\\n' "
                + " ".join(f"'{u}'" for u in urls)
                + f" | xargs -P 8 -n 1 sh -c 'curl -sS --fail \"$0\" | tee \"$(mktemp -p .)\" | {hasher} >/dev/null'")

    commands = {"curl": curl, "curl|sha256sum": piped("sha256sum"), "curl|openssl": piped("openssl dgst -sha256")}
    prefetch = (f"PYTHONPATH={runtime} HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_XET=1 "
                "python3 -m lpfleet.commands.prefetch --plan-stdin --models-dir /tmp/bench-prefetch")
    if args.rate > 0:
        hub.add_fault("bandwidth", rate=int(args.rate * 1e6), on=["get"])
    sides = [side for side in SIDES if side in args.sides]
    times: dict[str, list[float]] = {side: [] for side in sides}
    for rep in range(args.reps):
        order = sides if rep % 2 == 0 else sides[::-1]
        for side in order:
            sh(node, "rm -rf /tmp/bench-curl /tmp/bench-prefetch")
            hub.reset_counters()
            started = time.monotonic()
            result = sh(node, prefetch, plan) if side == "prefetch" else sh(node, commands[side])
            elapsed = time.monotonic() - started
            if result.returncode != 0:
                print(result.stdout[-2000:], result.stderr[-2000:])
                return 1
            served = hub.counters()["bytes_total"]
            assert served == total, (side, served, total)
            times[side].append(elapsed)
    sh(node, "rm -rf /tmp/bench-curl /tmp/bench-prefetch")
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = f"{args.rate:g} MB/s link" if args.rate > 0 else "unthrottled"
    where = f"loopback (a hub inside {node} on {endpoint})" if args.loopback else f"container LAN ({endpoint})"
    print(f"node {node}, {len(urls)} files, {total / 1e6:.1f} MB, hub {rate}, {where}, {args.reps} reps (median)")
    load = os.getloadavg()[0]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    print(f"node {node}, load average {load:.1f}, commit {head.strip()}")
    for side in sides:
        print(f"  {side:15} {med[side]:6.2f} s  {total / med[side] / 1e6:7.1f} MB/s   runs: "
              + ", ".join(f"{t:.2f}" for t in times[side]))
    if "prefetch" in med:
        for side in sides[:-1]:
            print(f"  prefetch throughput / {side} throughput = {med[side] / med['prefetch']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
