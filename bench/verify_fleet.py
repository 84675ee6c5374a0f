"""Verify time on 3 and 10 sandbox nodes: a whole `lpfleet verify` and a bare `pyinfra -y INV verify.py`.

    .venv/bin/python bench/verify_fleet.py [--nodes 3 10] [--runs 5] [--keep]
    .venv/bin/python bench/verify_fleet.py --inventory INV.py [--runs 5]     # an existing, deployed fleet

For each node count: brings up a sandbox of its own (`LPFLEET_SANDBOX=lpfleet-bench-verify`), deploys it once
(`pyinfra -y inventories/sandbox.py deploy.py`), waits until it verifies healthy (runners loaded), then times
`--runs` runs of each: `lpfleet verify` (the command: python start, pyinfra run, table) and
`pyinfra -y inventories/sandbox.py verify.py` (the CLI process alone), plus the verify fact's own time on the
node (`elapsed_s` the node script reports, median over nodes). Every timed run must verify healthy with 0
changes. The sandbox is removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def run(*args: str, env: dict[str, str], timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def stats(values: list[float]) -> str:
    return f"min {min(values):.2f} s, median {statistics.median(values):.2f} s, max {max(values):.2f} s"


def timed_verify(inventory: str, runs: int, env: dict[str, str]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"lpfleet verify": [], "pyinfra verify.py": [], "node script": []}
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "r.json")
        for _ in range(runs):
            start = time.perf_counter()
            result = run(str(VENV_BIN / "lpfleet"), "verify", inventory, "--json", report, env=env)
            out["lpfleet verify"].append(time.perf_counter() - start)
            if result.returncode != 0:
                raise SystemExit(f"lpfleet verify did not come out healthy:\n{result.stdout[-4000:]}")
            start = time.perf_counter()
            result = run(
                str(VENV_BIN / "pyinfra"),
                "-y",
                inventory,
                "verify.py",
                env={**env, "LPFLEET_VERIFY_JSON": report, "LPFLEET_VERIFY_TABLE": "0"},
            )
            out["pyinfra verify.py"].append(time.perf_counter() - start)
            text = result.stdout + result.stderr
            total = re.search(r"Grand total\s+(\d+)\s+(\S+)", text)
            if result.returncode != 0 or not total or total.group(2) != "-":
                raise SystemExit(f"pyinfra verify.py failed or changed something:\n{text[-4000:]}")
    return out


def node_script_seconds(inventory: str, env: dict[str, str]) -> float:
    """Median over nodes of the time the node script itself took (what one round-trip costs on a node)."""
    code = (
        "import json,sys\n"
        "from lpfleet.fleet import load_fleet\n"
        "from lpfleet.facts.verify import _bootstrap, encode_params\n"
        "from lpfleet.verification import expected_runners, node_params, weights_wanted_from_spec\n"
        "specs = load_fleet(sys.argv[1])\n"
        "print(json.dumps({h: encode_params(node_params(s, expected_runners(s), weights_wanted_from_spec(s)))"
        " for h, s in specs.items()}))\n"
    )
    params = json.loads(run(sys.executable, "-c", code, inventory, env=env).stdout)
    from lpfleet.facts.verify import _bootstrap
    from lpfleet.sandbox.state import load_state

    state = load_state()
    times = []
    for node in state.nodes:
        if node.name not in params:
            continue
        result = subprocess.run(
            ["docker", "exec", node.container, "python3", "-c", _bootstrap(), params[node.name]],
            capture_output=True,
            text=True,
        )
        line = next(x for x in result.stdout.splitlines() if x.startswith("@@lpfleet-verify "))
        times.append(json.loads(line.split(" ", 1)[1])["elapsed_s"])
    return statistics.median(times)


def deploy_and_settle(inventory: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    first = run(str(VENV_BIN / "pyinfra"), "-y", inventory, "deploy.py", env=env)
    if first.returncode != 0:
        raise SystemExit(f"deploy failed:\n{first.stdout[-4000:]}\n{first.stderr[-4000:]}")
    settled = run(str(VENV_BIN / "lpfleet"), "verify", inventory, "--wait", "300", env=env)
    if settled.returncode != 0:
        raise SystemExit(f"the deployed fleet does not verify healthy:\n{settled.stdout[-4000:]}")
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--inventory", help="an existing, deployed fleet (no sandbox made or removed)")
    args = parser.parse_args()
    env = {**os.environ, "LPFLEET_SANDBOX": os.environ.get("LPFLEET_BENCH_SANDBOX", "lpfleet-bench-verify")}
    os.environ["LPFLEET_SANDBOX"] = env["LPFLEET_SANDBOX"]
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}",
        flush=True,
    )
    if args.inventory:
        for label, values in timed_verify(args.inventory, args.runs, env).items():
            if values:
                print(f"{args.inventory}: {label}: {stats(values)} ({args.runs} runs, healthy, 0 changes)")
        try:  # a sandbox inventory: the node script's own time too
            print(
                f"{args.inventory}: node script on a node: median {node_script_seconds(args.inventory, env):.3f} s"
            )
        except Exception as exc:  # noqa: BLE001 - not a sandbox: nothing to exec into
            print(f"{args.inventory}: node script time not measured ({exc})")
        return 0
    inventory = "inventories/sandbox.py"
    try:
        for count in sorted(args.nodes):
            up = run(str(VENV_BIN / "lpfleet"), "sandbox", "up", "--nodes", str(count), env=env)
            if up.returncode != 0:
                raise SystemExit(f"sandbox up failed:\n{up.stdout}\n{up.stderr}")
            took = deploy_and_settle(inventory, env)
            print(f"{count:3d} nodes: deploy + settle {took:.0f} s", flush=True)
            for label, values in timed_verify(inventory, args.runs, env).items():
                if values:
                    print(
                        f"{count:3d} nodes: {label}: {stats(values)} ({args.runs} runs, healthy, 0 changes)",
                        flush=True,
                    )
            print(
                f"{count:3d} nodes: node script on a node: median {node_script_seconds(inventory, env):.3f} s",
                flush=True,
            )
    finally:
        if not args.keep:
            run(str(VENV_BIN / "lpfleet"), "sandbox", "down", env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
