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
"""

from __future__ import annotations

import argparse
import json
import os
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=40.0, help="hub upload limit in MB/s (0: none)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--node", type=int, default=1)
    parser.add_argument("--sides", nargs="*", default=list(SIDES), choices=SIDES)
    args = parser.parse_args()

    state = load_state()
    assert state.hub is not None, "the sandbox has no hub"
    node = state.node(args.node).container
    hub = HubControl(state.hub.controller_url)
    hub.reset()
    models = [lock_model(ModelRequest(m, "main", catalog.download_patterns(m)), state.hub.controller_url,
                         state.hub.token) for m in args.models]
    total = sum(f.size for m in models for f in m.files)
    urls = [f"{state.hub.node_url}/{m.model_id}/resolve/{m.commit}/{f.path}" for m in models for f in m.files]
    runtime = install_runtime(node)
    plan = json.dumps({"endpoint": state.hub.node_url, "token": state.hub.token, "branch": "main",
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
    hub.reset()
    sh(node, "rm -rf /tmp/bench-curl /tmp/bench-prefetch")
    med = {k: statistics.median(v) for k, v in times.items()}
    rate = f"{args.rate:g} MB/s link" if args.rate > 0 else "unthrottled"
    print(f"node {node}, {len(urls)} files, {total / 1e6:.1f} MB, hub {rate}, {args.reps} reps (median)")
    load = os.getloadavg()[0]
    print(f"node {node}, load average {load:.1f}")
    for side in sides:
        print(f"  {side:15} {med[side]:6.2f} s  {total / med[side] / 1e6:7.1f} MB/s   runs: "
              + ", ".join(f"{t:.2f}" for t in times[side]))
    if "prefetch" in med:
        for side in sides[:-1]:
            print(f"  prefetch throughput / {side} throughput = {med[side] / med['prefetch']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
