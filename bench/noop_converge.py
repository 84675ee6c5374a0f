"""The whole no-op converge (`pyinfra -y INVENTORY deploy.py`) against the pyinfra floor (`pyinfra -y INVENTORY
exec -- true`), with round-trips per host and where the time goes.

    .venv/bin/python bench/noop_converge.py [--nodes 3 10] [--runs 7] [--keep] [--baseline DIR]
    .venv/bin/python bench/noop_converge.py --inventory INV.py [--runs 7] [--baseline DIR]

For each node count: brings up a sandbox of its own (`LPFLEET_SANDBOX`, default `lpfleet-bench-noop`), writes
models.lock (`lpfleet lock`), converges once, checks that the next run changes nothing, then times `--runs` runs of
each, interleaved (floor, converge, floor, ...) so a busy machine weighs on both alike: the whole CLI process,
wall clock. Every run goes through bench/pyinfra_timed.py (pyinfra's own CLI with a clock on it) and must report
0 changes; it prints the medians, the ratio, the command round-trips of each host and the median time of each
phase (start, inventory, connect, prepare, execute, end). The sandbox is removed at the end unless --keep.

`--baseline DIR` also times, interleaved with the others, the same deploy from another checkout of lpfleet (e.g.
`git archive REV | tar -x -C DIR`: its deploy.py, tasks and lpfleet, on the same sandbox), so a change is
measured old against new under the same load. Each run also reports the CPU the sandbox's containers used
(cgroup v1 cpuacct, when readable) and the controller process's CPU: on a machine whose CPUs the nodes share,
wall time follows their sum.

Python's bytecode cache is on for the timed runs (PYTHONDONTWRITEBYTECODE is removed from their environment, so
lpfleet's modules are compiled once, on the first converge, as on an operator's machine); `--no-bytecode-cache`
keeps the caller's environment (with PYTHONDONTWRITEBYTECODE=1 every run compiles lpfleet from source: ~0.1 s
more for the converge than for the floor on the project VM).
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
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
TIMED = [sys.executable, str(ROOT / "bench" / "pyinfra_timed.py")]
INVENTORY = "inventories/sandbox.py"


def run(*args: str, env: dict[str, str], timeout: float = 1800, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def container_cpu_ns(prefix: str) -> int | None:
    """CPU nanoseconds used so far by the containers whose name starts with `prefix` (the sandbox's node, hub
    and apt containers), from cgroup v1 cpuacct; None when that is not readable here."""
    listed = subprocess.run(["docker", "ps", "-q", "--no-trunc", "--filter", f"name=^{prefix}"],
                            capture_output=True, text=True)
    total = 0
    for cid in listed.stdout.split():
        usage = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        try:
            total += int(usage.read_text())
        except (OSError, ValueError):
            return None
    return total if listed.returncode == 0 else None


def changes(output: str) -> int:
    """Operations that changed something, from pyinfra's results table ("Grand total  ops success error no-change")."""
    match = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", output)
    if not match:
        raise SystemExit(f"no results table in pyinfra output:\n{output[-3000:]}")
    return 0 if match.group(2) == "-" else int(match.group(2))


class Timing:
    """One kind of run (floor or converge): wall times, round-trips per host, phase times."""

    def __init__(self) -> None:
        self.walls: list[float] = []
        self.roundtrips: dict[str, list[int]] = defaultdict(list)
        self.phases: dict[str, list[float]] = defaultdict(list)
        self.prepare: dict[str, list[float]] = defaultdict(list)
        self.cpu: dict[str, list[float]] = defaultdict(list)  # "controller", "containers": CPU-seconds per run

    def add(self, wall: float, stderr: str, cpu: dict[str, float]) -> None:
        self.walls.append(wall)
        for name, seconds in cpu.items():
            self.cpu[name].append(seconds)
        marks: dict[str, float] = {}
        calls: list[tuple[float, float]] = []
        for line in stderr.splitlines():
            words = line.split()
            if line.startswith("@@roundtrips ") and len(words) == 4:
                self.roundtrips[words[1]].append(int(words[2]))
            elif line.startswith("@@phase ") and len(words) == 3:
                self.phases[words[1]].append(float(words[2]))
            elif line.startswith("@@mark ") and len(words) == 3:
                marks[words[1]] = float(words[2])
            elif line.startswith("@@call ") and len(words) >= 4:
                calls.append((float(words[2]), float(words[3])))
        if {"prepare-start", "prepare-end"} <= marks.keys():
            # the prepare phase split: controller work before the first fact, facts (first start to last end),
            # controller work after the last fact (pyinfra building the operations)
            inside = [(at, took) for at, took in calls if marks["prepare-start"] <= at <= marks["prepare-end"]]
            if inside:
                first, last = min(at for at, _ in inside), max(at + took for at, took in inside)
                self.prepare["before facts"].append(first - marks["prepare-start"])
                self.prepare["facts"].append(last - first)
                self.prepare["after facts"].append(marks["prepare-end"] - last)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    def summary(self) -> str:
        trips = sorted({n for counts in self.roundtrips.values() for n in counts})
        phases = ", ".join(f"{name} {statistics.median(values):.2f}" for name, values in self.phases.items())
        prepare = ", ".join(f"{name} {statistics.median(values):.2f}" for name, values in self.prepare.items())
        cpu = ", ".join(f"{name} {statistics.median(values):.2f}" for name, values in self.cpu.items())
        return (
            f"min {min(self.walls):.2f} / median {self.median:.2f} / max {max(self.walls):.2f} s; "
            f"round-trips per host {trips}; median phases (s): {phases}"
            + (f"; prepare split (s): {prepare}" if prepare else "")
            + (f"; median CPU-s: {cpu}" if cpu else "")
        )


def timed(args: list[str], env: dict[str, str], timing: Timing, *, must_be_noop: bool, cwd: Path = ROOT) -> None:
    prefix = env["LPFLEET_SANDBOX"] + "-"
    containers = container_cpu_ns(prefix)
    children = os.times()
    start = time.perf_counter()
    result = run(*TIMED, *args, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = {"controller": after.children_user + after.children_system - children.children_user
           - children.children_system}
    containers_after = container_cpu_ns(prefix)
    if containers is not None and containers_after is not None:
        cpu["containers"] = (containers_after - containers) / 1e9
    if result.returncode != 0:
        raise SystemExit(f"`pyinfra {' '.join(args)}` failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    if must_be_noop and changes(result.stdout + result.stderr):
        raise SystemExit(f"a no-op run changed something:\n{result.stdout[-4000:]}")
    timing.add(wall, result.stderr, cpu)


def unbatched_deploy(folder: Path) -> Path:
    """deploy.py without its prefetch line: every step reads its own fact (one round-trip each), as before the
    batch existed. For comparison only."""
    text = (ROOT / "deploy.py").read_text()
    lines = [line for line in text.splitlines() if not line.startswith("prefetch_node_facts(")]
    if len(lines) == len(text.splitlines()):
        raise SystemExit("deploy.py has no prefetch_node_facts( line to leave out")
    path = folder / "deploy_unbatched.py"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(inventory: str, runs: int, env: dict[str, str], unbatched: Path | None,
            baseline: Path | None = None) -> dict[str, Timing]:
    """Converge, check the next run is a no-op, then `runs` interleaved floor and converge runs (and runs of the
    unbatched deploy, and of the baseline checkout's deploy, when given)."""
    deploy = ["-y", inventory, "deploy.py"]
    first = run(str(VENV_BIN / "pyinfra"), *deploy, env=env)
    if first.returncode != 0:
        raise SystemExit(f"converge failed:\n{first.stdout[-4000:]}\n{first.stderr[-4000:]}")
    timed(deploy, env, Timing(), must_be_noop=True)
    timings = {"floor": Timing(), "converge": Timing()}
    if unbatched is not None:
        timings["unbatched"] = Timing()
    baseline_env = dict(env)
    if baseline is not None:
        timings["baseline"] = Timing()
        # the baseline's own lpfleet and tasks first on the path; the same sandbox (state, keys, models.lock)
        baseline_env["PYTHONPATH"] = str(baseline)
        baseline_env.setdefault("LPFLEET_SANDBOX_DIR", str(ROOT / ".sandbox"))
        timed(deploy, baseline_env, Timing(), must_be_noop=True, cwd=baseline)
    for _ in range(runs):
        timed(["-y", inventory, "exec", "--", "true"], env, timings["floor"], must_be_noop=False)
        timed(deploy, env, timings["converge"], must_be_noop=True)
        if unbatched is not None:
            timed(["-y", inventory, str(unbatched)], env, timings["unbatched"], must_be_noop=True)
        if baseline is not None:
            timed(deploy, baseline_env, timings["baseline"], must_be_noop=True, cwd=baseline)
    return timings


def report(label: str, timings: dict[str, Timing]) -> None:
    floor = timings["floor"]
    print(f"{label}: no-op converge / floor = {timings['converge'].median / floor.median:.2f}x "
          f"(load average {os.getloadavg()[0]:.1f})", flush=True)
    for name, timing in timings.items():
        ratio = f" ({timing.median / floor.median:.2f}x)" if name != "floor" else ""
        print(f"  {name:9s}{ratio} {timing.summary()}", flush=True)
    converge = timings["converge"]
    for host in sorted(converge.roundtrips):
        print(f"    {host}: {sorted(set(converge.roundtrips[host]))} round-trips per run", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    parser.add_argument("--inventory", help="measure on this inventory instead of a sandbox of our own")
    parser.add_argument("--unbatched", action="store_true",
                        help="also time deploy.py without its one-round-trip prefetch (one fact per step)")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="keep PYTHONDONTWRITEBYTECODE as set (every run compiles lpfleet from source)")
    parser.add_argument("--baseline", type=Path,
                        help="also time the deploy of this other checkout of lpfleet (old against new)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lpfleet-bench-noop-") as folder:
        return bench(args, Path(folder))


def bench(args: argparse.Namespace, folder: Path) -> int:
    unbatched = unbatched_deploy(folder) if args.unbatched else None
    env = {**os.environ, "LPFLEET_SANDBOX": os.environ.get("LPFLEET_SANDBOX", "lpfleet-bench-noop")}
    if not args.no_bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}, bytecode cache "
          f"{'off' if env.get('PYTHONDONTWRITEBYTECODE') else 'on'}", flush=True)
    if args.inventory:
        report(args.inventory, measure(args.inventory, args.runs, env, unbatched, args.baseline))
        return 0
    lpfleet = str(VENV_BIN / "lpfleet")
    try:
        for count in sorted(args.nodes):
            up = run(lpfleet, "sandbox", "up", "--nodes", str(count), env=env)
            if up.returncode != 0:
                raise SystemExit(f"sandbox up failed:\n{up.stdout}\n{up.stderr}")
            lock = run(lpfleet, "lock", INVENTORY, env=env)
            if lock.returncode != 0:
                raise SystemExit(f"lpfleet lock failed:\n{lock.stdout}\n{lock.stderr}")
            report(f"{count:3d} sandbox nodes", measure(INVENTORY, args.runs, env, unbatched, args.baseline))
    finally:
        if not args.keep:
            run(lpfleet, "sandbox", "down", env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
