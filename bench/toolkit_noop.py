"""No-op converge time of the docker_engine + nvidia_toolkit steps on 3 and 10 sandbox nodes.

    .venv/bin/python bench/toolkit_noop.py [--nodes 3 10] [--runs 5] [--keep]
    .venv/bin/python bench/toolkit_noop.py --inventory INV.py [--deploy DEPLOY.py] [--runs 5]

For each node count: brings up a sandbox of its own (`LPFLEET_SANDBOX=lpfleet-bench-toolkit`), converges the
two steps once, checks that a second run changes nothing, then times `--runs` more no-op runs of
`pyinfra -y inventories/sandbox.py <deploy>` (the whole CLI process: start, connect, one fact per host, 0 changes)
and prints min / median / max wall time. The sandbox is torn down at the end unless --keep.
With --inventory the same measurement runs against an existing inventory (no sandbox made or removed), and
--deploy replaces the built-in deploy file (which takes each host's plan from `lpfleet.fleet.node_plan`).
"""

from __future__ import annotations

import argparse
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
#: The floor any pyinfra run over these hosts pays: start, connect, one trivial fact per host.
FLOOR = '''
from pyinfra import host
from pyinfra.facts.server import Hostname

host.get_fact(Hostname)
'''
DEPLOY = '''
from pyinfra import host

from lpfleet.fleet import node_plan
from tasks.docker_engine import install_docker_engine
from tasks.nvidia_toolkit import install_nvidia_toolkit

plan = node_plan(host)
install_docker_engine(plan)
install_nvidia_toolkit(plan)
'''


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)


def changes(output: str) -> int:
    """Operations that changed something, from pyinfra's results table ("Grand total  ops success error no-change")."""
    match = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", output)
    if not match:
        raise SystemExit(f"no results table in pyinfra output:\n{output[-2000:]}")
    success = match.group(2)
    return 0 if success == "-" else int(success)


def converge_and_time(pyinfra: list[str], runs: int, env: dict[str, str], floor: Path) -> tuple[list, list]:
    """Converge, check a second run is a no-op, then time `runs` no-op runs, each right after a floor run
    (interleaved, so a busy machine weighs on both alike)."""
    first = run(*pyinfra, env=env)
    if first.returncode != 0:
        raise SystemExit(f"converge failed:\n{first.stdout[-4000:]}\n{first.stderr[-4000:]}")
    second = run(*pyinfra, env=env)
    if second.returncode != 0 or changes(second.stdout + second.stderr):
        raise SystemExit(f"second run was not a no-op:\n{second.stdout[-4000:]}")
    times, floors = [], []
    for _ in range(runs):
        start = time.perf_counter()
        run(*pyinfra[:-1], str(floor), env=env)
        floors.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = run(*pyinfra, env=env)
        times.append(time.perf_counter() - start)
        if result.returncode != 0 or changes(result.stdout + result.stderr):
            raise SystemExit(f"a no-op run changed something:\n{result.stdout[-4000:]}")
    return times, floors


def sandbox_bench(nodes: int, runs: int, env: dict[str, str], deploy: Path, floor: Path) -> tuple[list, list]:
    up = run(str(VENV_BIN / "lpfleet"), "sandbox", "up", "--nodes", str(nodes), env=env)
    if up.returncode != 0:
        raise SystemExit(f"sandbox up failed:\n{up.stdout}\n{up.stderr}")
    return converge_and_time([str(VENV_BIN / "pyinfra"), "-y", "inventories/sandbox.py", str(deploy)], runs, env,
                             floor)


def report(label: str, measured: tuple[list, list], runs: int) -> None:
    times, floors = measured
    print(
        f"{label}: no-op converge of docker_engine + nvidia_toolkit "
        f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, max {max(times):.2f} s; "
        f"pyinfra floor (one trivial fact per host) median {statistics.median(floors):.2f} s "
        f"({runs} interleaved runs each, whole pyinfra CLI process; load average {os.getloadavg()[0]:.1f})",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    parser.add_argument("--inventory", help="measure on this inventory instead of a sandbox of our own")
    parser.add_argument("--deploy", help="deploy file to run instead of the built-in one")
    args = parser.parse_args()
    env = {**os.environ, "LPFLEET_SANDBOX": os.environ.get("LPFLEET_BENCH_SANDBOX", "lpfleet-bench-toolkit")}
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        deploy = Path(args.deploy) if args.deploy else Path(tmp) / "toolkit_deploy.py"
        if not args.deploy:
            deploy.write_text(DEPLOY)
        floor = Path(tmp) / "floor_deploy.py"
        floor.write_text(FLOOR)
        if args.inventory:
            pyinfra = [str(VENV_BIN / "pyinfra"), "-y", args.inventory, str(deploy)]
            report(args.inventory, converge_and_time(pyinfra, args.runs, env, floor), args.runs)
            return 0
        try:
            for count in sorted(args.nodes):
                report(f"{count:3d} sandbox nodes", sandbox_bench(count, args.runs, env, deploy, floor), args.runs)
        finally:
            if not args.keep:
                run(str(VENV_BIN / "lpfleet"), "sandbox", "down", env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
