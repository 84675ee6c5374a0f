"""Fleet-ready time with every node's uplink capped and the hub capped likewise, for N nodes against one node alone.

    LPFLEET_SANDBOX=<name> .venv/bin/python bench/weights_fleet_ready.py [--nodes 1 2 4 6] [--rate MBPS]
        [--hub-rate MBPS] [--modes fanout direct] [--models PIPELINE=MODEL_ID ...] [--reps N] [--min-rate BPS]

What a real fleet looks like from the weights' point of view: the hub (the WAN) is a link of `--hub-rate` MB/s
shared by every node (the sandbox hub's `bandwidth` fault), and every node's upload is a link of `--rate` MB/s
(`tc tbf` on the node container's eth0, set from the host in the container's network namespace: it shapes what
the node SENDS - to peers and to the controller - not what it receives). For each N (the sandbox's first N
nodes, all configured with the same models) and each mode, the models dirs are emptied, the hub's counters
zeroed, the caps set, and the weights step (tests/integration/deploy_weights.py) run by `pyinfra -y`:

- fleet ready: that run's wall time (pyinfra start to every node verified complete), and its ratio to N = 1;
- upstream / unique: what the hub served over the locked bytes (fan-out's promise: 1.00x whatever N);
- busiest upload: the largest eth0 tx byte count of any node over the run (eth0's transmit bytes in
  /proc/<container pid>/net/dev, i.e. in its network namespace, before and after) and its ratio to the
  model's bytes - on a star (one seed serves N-1 peers) it is ~N-1, on a chain or tree ~1. The count is what
  the interface sent: packet headers (a fraction of a percent with segmentation offload on the veth) and the
  node's SSH replies to the controller (kB) are included, not subtracted;
- re-run: the same run again (caps still on) must change nothing and download nothing (hub bytes, and the most
  any node sent, which is then SSH only).

A node runtime install is done first with a tiny model (not timed), so the timed runs move only weights.
The caps are removed afterwards, also on error or Ctrl-C. Needs root (nsenter) and `tc` (iproute2; see
scripts/host-deps), and a sandbox with at least max(--nodes) nodes (`lpfleet sandbox up --nodes 6`).
For a quick series use the 200 MB model: `--models text-to-image=lpfleet-sandbox/bench-weights`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lpfleet.lock import load  # noqa: E402
from lpfleet.sandbox.hub import HubControl  # noqa: E402
from lpfleet.sandbox.state import load_state  # noqa: E402

VENV_BIN = Path(sys.executable).parent
DEPLOY = "tests/integration/deploy_weights.py"
DEFAULT_MODELS = ("text-to-image=lpfleet-sandbox/bench-weights-1g",)
WARM_MODELS = (("text-to-image", "lpfleet-sandbox/tiny-model"),)
MODELS_DIR = "/root/.lpData/models"
IFACE = "eth0"


def bench_inventory(names: list[str], models: list[tuple[str, str]], lock: Path) -> Path:
    """The sandbox hosts `names`, all with `models` (none warm: only the weights matter), their own models.lock."""
    entries = [{"pipeline": p, "model_id": m, "warm": False} for p, m in models]
    path = ROOT / "inventories" / f"_bench_fleet_ready_{uuid.uuid4().hex[:8]}.py"
    path.write_text(
        "import importlib.util as _u\n"
        f"_s = _u.spec_from_file_location('_sandbox_inventory', {str(ROOT / 'inventories' / 'sandbox.py')!r})\n"
        "_m = _u.module_from_spec(_s)\n_s.loader.exec_module(_m)\n"
        f"_keep = {sorted(names)!r}\n"
        f"_over = {{'ai_models': {entries!r}, 'models_lock': {str(lock)!r}}}\n"
        "sandbox_consumer = [(n, {**d, **_over}) for n, d in _m.sandbox_consumer if n in _keep]\n"
        "sandbox_datacenter = [(n, {**d, **_over}) for n, d in _m.sandbox_datacenter if n in _keep]\n"
        "sandbox = sandbox_consumer + sandbox_datacenter\n"
    )
    return path


def run(args: list[str | Path]) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=ROOT, capture_output=True, text=True, timeout=3600)


def changed(result: subprocess.CompletedProcess) -> int:
    """pyinfra's "Grand total" change count (-1: not found)."""
    for line in (result.stdout + result.stderr).splitlines():
        if line.strip().startswith("Grand total"):
            cols = line.split()
            return 0 if cols[3] == "-" else int(cols[3])
    return -1


class Uplinks:
    """`tc tbf` on each node container's eth0, from the host in the container's network namespace."""

    def __init__(self, containers: list[str]) -> None:
        self.pids: dict[str, str] = {}
        for container in containers:
            pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", container], capture_output=True,
                                 text=True, check=True).stdout.strip()
            if not pid.isdigit() or pid == "0":
                raise SystemExit(f"{container}: not running (pid {pid!r}); run `lpfleet sandbox up`")
            self.pids[container] = pid

    def _netns(self, container: str, *command: str, check: bool = True) -> str:
        result = subprocess.run(["nsenter", "-t", self.pids[container], "-n", *command], capture_output=True,
                                text=True, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{container}: {' '.join(command)}: {result.stderr.strip()}")
        return result.stdout

    def cap(self, containers: list[str], rate_mbps: float) -> None:
        """Egress of each container limited to `rate_mbps` MB/s (1 MB = 10^6 bytes, counted on the wire)."""
        rate_bits = int(rate_mbps * 8e6)
        burst = max(262144, int(rate_mbps * 1e6 / 100))  # >= rate / HZ at any kernel HZ, small against 1 s
        for container in containers:
            self._netns(container, "tc", "qdisc", "replace", "dev", IFACE, "root", "tbf", "rate", f"{rate_bits}bit",
                        "burst", str(burst), "latency", "50ms")

    def uncap(self) -> None:
        """Every cap this bench may have set gone (a missing one is fine)."""
        for container in self.pids:
            self._netns(container, "tc", "qdisc", "del", "dev", IFACE, "root", check=False)

    def retransmits(self, containers: list[str]) -> dict[str, int]:
        """TCP segments each container's network namespace sent again (RetransSegs, /proc/<pid>/net/snmp)."""
        counts = {}
        for container in containers:
            lines = [ln.split() for ln in Path(f"/proc/{self.pids[container]}/net/snmp").read_text().splitlines()
                     if ln.startswith("Tcp:")]
            counts[container] = int(dict(zip(lines[0], lines[1]))["RetransSegs"])
        return counts

    def shown(self, container: str) -> str:
        return self._netns(container, "tc", "qdisc", "show", "dev", IFACE).strip()

    def tx_bytes(self, containers: list[str]) -> dict[str, int]:
        """eth0's tx byte counter in each container's network namespace: /proc/<pid>/net/dev is that netns's
        (the host's /sys/class/net would show the host's interfaces, whatever namespace reads it)."""
        counts = {}
        for container in containers:
            for line in Path(f"/proc/{self.pids[container]}/net/dev").read_text().splitlines():
                name, _, fields = line.partition(":")
                if name.strip() == IFACE:
                    counts[container] = int(fields.split()[8])  # 8 receive columns, then transmit bytes
            if container not in counts:
                raise RuntimeError(f"{container}: no {IFACE} in /proc/{self.pids[container]}/net/dev")
        return counts


@dataclass
class Sample:
    ready: float
    upstream: int
    tx: dict[str, int]
    retransmits: dict[str, int]
    log: Path
    rerun_changes: int
    rerun_bytes: int
    rerun_tx: int


@dataclass
class Row:
    count: int
    mode: str
    unique: int
    samples: list[Sample] = field(default_factory=list)
    error: str = ""

    @property
    def ready(self) -> float:
        return statistics.median(s.ready for s in self.samples)

    @property
    def median_sample(self) -> Sample:
        return sorted(self.samples, key=lambda s: s.ready)[(len(self.samples) - 1) // 2]


def git_describe() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return head.stdout.strip() + (" + uncommitted changes" if dirty else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="*", default=[1, 2, 4, 6])
    parser.add_argument("--rate", type=float, default=40.0, help="each node's upload limit in MB/s (tc tbf)")
    parser.add_argument("--hub-rate", type=float, default=None, help="hub upload limit in MB/s (default: --rate)")
    parser.add_argument("--modes", nargs="*", default=["fanout"], choices=["fanout", "direct"])
    parser.add_argument("--models", nargs="*", default=list(DEFAULT_MODELS),
                        help="PIPELINE=MODEL_ID ... (default: the 1 GiB sandbox model; "
                             "text-to-image=lpfleet-sandbox/bench-weights for a quick 200 MB series)")
    parser.add_argument("--reps", type=int, default=1, help="timed runs per N and mode (median reported)")
    parser.add_argument("--min-rate", type=float, default=None,
                        help="group data weights_min_rate (bytes/s) for the runs; default: lpfleet's own")
    args = parser.parse_args()
    hub_rate = args.rate if args.hub_rate is None else args.hub_rate
    models = [tuple(m.split("=", 1)) for m in args.models]
    if any(len(m) != 2 for m in models):
        parser.error("--models takes PIPELINE=MODEL_ID")
    missing = [tool for tool in ("tc", "nsenter") if shutil.which(tool) is None]
    if missing or os.geteuid() != 0:
        print(f"needs root and tc/nsenter (missing: {', '.join(missing) or 'none'}; scripts/host-deps installs them)")
        return 2

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `timeout`/kill: the caps still come off (finally)
    state = load_state()
    assert state.hub is not None, "the sandbox has no hub"
    nodes = sorted(state.nodes, key=lambda n: n.index)
    if len(nodes) < max(args.nodes):
        print(f"the sandbox has {len(nodes)} nodes; run `lpfleet sandbox up --nodes {max(args.nodes)}`")
        return 2
    used = [n.container for n in nodes[:max(args.nodes)]]
    hub = HubControl(state.hub.controller_url, timeout=300)  # the first listing of a 1 GiB repo generates it
    uplinks = Uplinks(used)
    extra = ["--data", f"weights_min_rate={args.min_rate:g}"] if args.min_rate else []
    commit, started_at, load_before = git_describe(), datetime.now(timezone.utc), os.getloadavg()
    rows: list[Row] = []
    hub.reset()
    for _, model_id in models:
        hub.models(files=True, repo=model_id)  # generated now, not inside the first timed run
    print(f"commit {commit}; node uplinks {args.rate:g} MB/s, hub {hub_rate:g} MB/s; models "
          f"{', '.join(m for _, m in models)}; nodes {args.nodes}; modes {args.modes}", flush=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for count in args.nodes:
                hosts = used[:count]
                warm_lock = Path(tmp) / f"warm-{count}.lock"
                warm_inventory = bench_inventory(hosts, list(WARM_MODELS), warm_lock)
                lock = Path(tmp) / f"models-{count}.lock"
                inventory = bench_inventory(hosts, models, lock)
                try:
                    for inv in (warm_inventory, inventory):
                        result = run([VENV_BIN / "lpfleet", "lock", inv])
                        assert result.returncode == 0, result.stdout + result.stderr
                    unique = load(lock.read_text()).unique_bytes
                    uplinks.uncap()
                    hub.clear_faults()
                    warm = run([VENV_BIN / "pyinfra", "-y", warm_inventory, DEPLOY])  # the runtime, not timed
                    assert warm.returncode == 0, warm.stderr[-3000:]
                    for mode in args.modes:
                        row = Row(count, mode, unique)
                        rows.append(row)
                        for _ in range(args.reps):
                            sample = timed(hub, uplinks, hosts, inventory, mode, extra, args.rate, hub_rate)
                            if isinstance(sample, str):
                                row.error = sample
                                print(f"{count} nodes {mode}: FAILED\n{sample}", flush=True)
                                break
                            row.samples.append(sample)
                            busiest = max(sample.tx, key=lambda c: sample.tx[c])
                            print(f"{count} nodes {mode:7} fleet ready {sample.ready:7.1f} s  upstream "
                                  f"{sample.upstream / unique:4.2f}x unique  busiest upload {busiest} "
                                  f"{sample.tx[busiest] / 1e6:8.1f} MB ({sample.tx[busiest] / unique:4.2f}x), "
                                  f"{sample.retransmits[busiest]} TCP retransmits  re-run: "
                                  f"{sample.rerun_changes} changes, {sample.rerun_bytes} hub bytes, "
                                  f"max node tx {sample.rerun_tx / 1e6:.2f} MB  (log {sample.log})", flush=True)
                            for line in notable(sample.log):
                                print(f"    {line}", flush=True)
                finally:
                    uplinks.uncap()
                    hub.clear_faults()
                    warm_inventory.unlink(missing_ok=True)
                    inventory.unlink(missing_ok=True)
    finally:
        uplinks.uncap()
        hub.reset()
    report(rows, args, hub_rate, models, commit, started_at, load_before)
    return 1 if any(r.error for r in rows) else 0


LOG_DIR = Path(tempfile.gettempdir()) / "lpfleet-bench-fleet-ready"
NOTABLE = ("not complete within", "does not match", "resume", "gave up", "again", "falling back", "failed", "(round ")


def notable(log: Path) -> list[str]:
    """Lines of a run's output that explain extra bytes or time (a file fetched again, a deadline, a resume)."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines()
             if any(word in ln.lower() for word in NOTABLE)]
    return lines[:12] + ([f"... {len(lines) - 12} more such lines in {log}"] if len(lines) > 12 else [])


def timed(hub: HubControl, uplinks: Uplinks, hosts: list[str], inventory: Path, mode: str, extra: list[str],
          rate: float, hub_rate: float) -> Sample | str:
    """One capped run from empty models dirs, then its re-run; a failure's output tail instead of a sample.
    Each run's pyinfra output is kept in LOG_DIR."""
    LOG_DIR.mkdir(exist_ok=True)
    log = LOG_DIR / f"{len(hosts)}-nodes-{mode}-{datetime.now(timezone.utc):%H%M%S}.log"
    for host in hosts:
        subprocess.run(["docker", "exec", host, "rm", "-rf", MODELS_DIR], check=True)
    hub.clear_faults()
    hub.add_fault("bandwidth", rate=int(hub_rate * 1e6), on=["get"])
    uplinks.cap(hosts, rate)
    try:
        hub.reset_counters()
        before, resent = uplinks.tx_bytes(hosts), uplinks.retransmits(hosts)
        started = time.monotonic()
        first = run([VENV_BIN / "pyinfra", "-y", "-vvv", inventory, DEPLOY, "--data", f"weights_mode={mode}", *extra])
        ready = time.monotonic() - started
        after = uplinks.tx_bytes(hosts)
        resent = {h: n - resent[h] for h, n in uplinks.retransmits(hosts).items()}
        log.write_text(first.stdout + first.stderr)
        if first.returncode != 0:
            return (first.stdout + first.stderr)[-3000:]
        upstream = hub.counters()["bytes_total"]
        hub.reset_counters()
        again = run([VENV_BIN / "pyinfra", "-y", inventory, DEPLOY, "--data", f"weights_mode={mode}", *extra])
        rerun_tx = max(t - after[h] for h, t in uplinks.tx_bytes(hosts).items())
        rerun_bytes = hub.counters()["bytes_total"]
        if again.returncode != 0:
            return "re-run failed:\n" + (again.stdout + again.stderr)[-3000:]
        return Sample(ready, upstream, {h: after[h] - before[h] for h in hosts}, resent, log, changed(again),
                      rerun_bytes, rerun_tx)
    finally:
        uplinks.uncap()
        hub.clear_faults()


def report(rows: list[Row], args: argparse.Namespace, hub_rate: float, models: list[tuple[str, str]], commit: str,
           started_at: datetime, load_before: tuple[float, float, float]) -> None:
    alone = {r.mode: r.ready for r in rows if r.count == 1 and r.samples}
    unique = rows[0].unique if rows else 0
    print(f"\ncommit {commit}, {started_at:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs on this machine, load "
          f"average (1 min) {load_before[0]:.1f} before / {os.getloadavg()[0]:.1f} after")
    print(f"models {', '.join(m for _, m in models)}: {unique / 1e6:.1f} MB locked; each node's uplink "
          f"{args.rate:g} MB/s (tc tbf on eth0), hub {hub_rate:g} MB/s shared (one node alone at the hub's rate: "
          f"{unique / (hub_rate * 1e6):.1f} s); {args.reps} run(s) per row, median")
    print("busiest upload: eth0 tx bytes of the node that sent the most during the run (L2 bytes, its SSH replies "
          "included); / model: that over the locked bytes")
    print("\n| nodes | mode | fleet ready s | vs 1 node | upstream / unique | busiest upload MB (node) | busiest "
          "upload / model | re-run changes, hub bytes, max node tx |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        if not row.samples:
            print(f"| {row.count} | {row.mode} | failed: {row.error.strip().splitlines()[-1][:80] if row.error else '?'}"
                  " | | | | | |")
            continue
        s = row.median_sample
        node = max(s.tx, key=lambda c: s.tx[c])
        busiest = s.tx[node]
        ratio = f"{row.ready / alone[row.mode]:.2f}x" if row.mode in alone else "-"
        runs = "" if len(row.samples) == 1 else " (" + ", ".join(f"{x.ready:.1f}" for x in row.samples) + ")"
        print(f"| {row.count} | {row.mode} | {row.ready:.1f}{runs} | {ratio} | {s.upstream / row.unique:.2f}x | "
              f"{busiest / 1e6:.1f} ({node.rsplit('-', 1)[-1] if busiest > row.unique / 10 else '-'}) | "
              f"{busiest / row.unique:.2f}x | {s.rerun_changes}, {s.rerun_bytes}, "
              f"{s.rerun_tx / 1e6:.2f} MB |")


if __name__ == "__main__":
    sys.exit(main())
