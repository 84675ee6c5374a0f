"""Fleet weight fetch: fan-out vs direct, side by side in one run, with the hub throttled to a WAN-like link.

    LPFLEET_SANDBOX=<name> .venv/bin/python bench/weights_fanout.py [--nodes 3 5] [--rate MBPS] [--models ID ...]

For each node count N (the sandbox's first N nodes, all configured with the same models) and each mode, the
models dirs are emptied, the hub's counters zeroed, and the weights step (tests/integration/deploy_weights.py)
run by pyinfra: fleet-ready time is that run's wall time (pyinfra start to every node verified complete), upstream
bytes are what the hub served. A second run of the same mode must then change nothing and download nothing.
The sandbox needs at least max(--nodes) nodes (`lpfleet sandbox up --nodes 5`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lpfleet.lock import load  # noqa: E402
from lpfleet.sandbox.hub import HubControl  # noqa: E402
from lpfleet.sandbox.state import load_state  # noqa: E402

VENV_BIN = Path(sys.executable).parent
DEPLOY = "tests/integration/deploy_weights.py"
DEFAULT_MODELS = (("text-to-image", "SG161222/RealVisXL_V4.0_Lightning"), ("audio-to-text", "openai/whisper-large-v3"))
MODELS_DIR = "/root/.lpData/models"


def bench_inventory(nodes: int, models: list[tuple[str, str]], lock: Path) -> Path:
    """The sandbox's first `nodes` hosts, all with `models`, their own models.lock."""
    entries = [{"pipeline": p, "model_id": m, "warm": i == 0} for i, (p, m) in enumerate(models)]
    path = ROOT / "inventories" / f"_bench_weights_{uuid.uuid4().hex[:8]}.py"
    path.write_text(
        "import importlib.util as _u\n"
        f"_s = _u.spec_from_file_location('_sandbox_inventory', {str(ROOT / 'inventories' / 'sandbox.py')!r})\n"
        "_m = _u.module_from_spec(_s)\n_s.loader.exec_module(_m)\n"
        f"_all = sorted(_m.sandbox_consumer + _m.sandbox_datacenter, key=lambda h: h[0])[:{nodes}]\n"
        f"_over = {{'ai_models': {entries!r}, 'models_lock': {str(lock)!r}}}\n"
        "sandbox_consumer = [(n, {**d, **_over}) for n, d in _all if n in {h[0] for h in _m.sandbox_consumer}]\n"
        "sandbox_datacenter = [(n, {**d, **_over}) for n, d in _all if n in {h[0] for h in _m.sandbox_datacenter}]\n"
        "sandbox = sandbox_consumer + sandbox_datacenter\n"
    )
    return path


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=1800)


def changed(result: subprocess.CompletedProcess) -> int:
    for line in (result.stdout + result.stderr).splitlines():
        if line.strip().startswith("Grand total"):
            cols = line.split()
            return 0 if cols[3] == "-" else int(cols[3])
    return -1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="*", default=[3, 5])
    parser.add_argument("--rate", type=float, default=20.0, help="hub upload limit in MB/s, shared (a WAN link)")
    parser.add_argument("--models", nargs="*", default=None, help="PIPELINE=MODEL_ID ... (default: RealVisXL + whisper)")
    args = parser.parse_args()
    models = [tuple(m.split("=", 1)) for m in args.models] if args.models else list(DEFAULT_MODELS)

    state = load_state()
    assert state.hub is not None
    if len(state.nodes) < max(args.nodes):
        print(f"the sandbox has {len(state.nodes)} nodes; run `lpfleet sandbox up --nodes {max(args.nodes)}`")
        return 2
    hub = HubControl(state.hub.controller_url)
    hub.reset()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.nodes:
            lock = Path(tmp) / f"models-{count}.lock"
            inventory = bench_inventory(count, models, lock)
            try:
                result = run([VENV_BIN / "lpfleet", "lock", inventory])
                assert result.returncode == 0, result.stdout + result.stderr
                unique = load(lock.read_text()).unique_bytes
                hosts = sorted(n.container for n in state.nodes)[:count]
                warm = run([VENV_BIN / "pyinfra", "-y", inventory, DEPLOY])  # runtime on every node, not timed
                assert warm.returncode == 0, warm.stderr[-3000:]
                for mode in ("direct", "fanout"):
                    for host in hosts:
                        subprocess.run(["docker", "exec", host, "rm", "-rf", MODELS_DIR], check=True)
                    hub.clear_faults()
                    hub.add_fault("bandwidth", rate=int(args.rate * 1e6), on=["get"])
                    hub.reset_counters()
                    started = time.monotonic()
                    first = run([VENV_BIN / "pyinfra", "-y", inventory, DEPLOY, "--data", f"weights_mode={mode}"])
                    ready = time.monotonic() - started
                    assert first.returncode == 0, first.stderr[-3000:]
                    upstream = hub.counters()["bytes_total"]
                    hub.reset_counters()
                    again = run([VENV_BIN / "pyinfra", "-y", inventory, DEPLOY, "--data", f"weights_mode={mode}"])
                    rerun_bytes = hub.counters()["bytes_total"]
                    rows.append((count, mode, unique, upstream, ready, changed(again), rerun_bytes))
                    print(f"{count} nodes {mode:7} upstream {upstream / 1e6:7.1f} MB = {upstream / unique:4.2f}x unique"
                          f"  fleet ready {ready:6.1f} s   re-run: {changed(again)} changes, {rerun_bytes} bytes",
                          flush=True)
            finally:
                inventory.unlink(missing_ok=True)
                hub.reset()
    print(f"\nhub link {args.rate:g} MB/s shared; models: {', '.join(m for _, m in models)}")
    print("| nodes | mode | unique MB | upstream MB | upstream / unique | fleet ready s | re-run changes | re-run bytes |")
    print("|---|---|---|---|---|---|---|---|")
    for count, mode, unique, upstream, ready, changes, rerun in rows:
        print(f"| {count} | {mode} | {unique / 1e6:.1f} | {upstream / 1e6:.1f} | {upstream / unique:.2f}x | "
              f"{ready:.1f} | {changes} | {rerun} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
