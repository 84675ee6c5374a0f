"""Cost of validating a fleet before any host is touched: `lpfleet validate`, the inventory guard inside
`pyinfra --dry`, and `lpfleet lint` on a large file.

Generates an inventory of N hosts (the example group data: half consumer_24gb, half datacenter_80gb) in a
temp dir and times:
  - `check_fleet` in process (load with pyinfra's loader, build + render + parse back every host),
  - `lpfleet validate inventory.py` as a whole CLI process (Python start included),
  - `pyinfra inventory.py debug-inventory` without and with the `guard_inventory(__file__)` line: it loads the
    inventory exactly as a deploy does and connects to nothing, so the difference is the guard's cost,
  - `lpfleet lint` on a 1000-entry aiModels.json.

    .venv/bin/python bench/validate_fleet.py [--hosts 10 100 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def timed(cmd: list[str], cwd: Path, expect: int = 0) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def make_fleet(folder: Path, hosts: int, guard: bool) -> None:
    shutil.copytree(ROOT / "group_data", folder / "group_data", dirs_exist_ok=True)
    shutil.copytree(ROOT / "templates", folder / "templates", dirs_exist_ok=True)
    half = hosts // 2
    lines = ["from lpfleet.fleet import guard_inventory", ""]
    lines.append(f"consumer_24gb = [f'gpu-c{{i}}' for i in range({half})]")
    lines.append(f"datacenter_80gb = [f'gpu-d{{i}}' for i in range({hosts - half})]")
    if guard:
        lines.append("guard_inventory(__file__)")
    (folder / "inventory.py").write_text("\n".join(lines) + "\n")
    (folder / "deploy.py").write_text("")


def stats(samples: list[float]) -> str:
    return f"{min(samples):.2f} / {statistics.median(samples):.2f} / {max(samples):.2f} s"


IN_PROCESS = (
    "import time, sys\n"
    "from lpfleet.fleet import check_fleet\n"
    "t = time.perf_counter(); r = check_fleet('inventory.py'); t = time.perf_counter() - t\n"
    "assert not r.errors and len(r.specs) == int(sys.argv[1]), r.errors[:3]\n"
    "print(t)\n"
)


def in_process(folder: Path, hosts: int) -> float:
    out = subprocess.run([sys.executable, "-c", IN_PROCESS, str(hosts)], cwd=folder, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print("| hosts | check_fleet in process | lpfleet validate (CLI) | pyinfra debug-inventory, no guard | with guard |")
    print("|---|---|---|---|---|")
    for hosts in args.hosts:
        with tempfile.TemporaryDirectory() as tmp:
            plain, guarded = Path(tmp) / "plain", Path(tmp) / "guarded"
            make_fleet(plain, hosts, guard=False)
            make_fleet(guarded, hosts, guard=True)
            inproc = [in_process(plain, hosts) for _ in range(args.repeat)]
            validate = [timed([str(BIN / "lpfleet"), "validate", "inventory.py"], plain) for _ in range(args.repeat)]
            # debug-inventory loads the inventory (running the guard) and connects to nothing
            debug = [str(BIN / "pyinfra"), "inventory.py", "debug-inventory"]
            no_guard = [timed(debug, plain) for _ in range(args.repeat)]
            with_guard = [timed(debug, guarded) for _ in range(args.repeat)]
            print(f"| {hosts} | {stats(inproc)} | {stats(validate)} | {stats(no_guard)} | {stats(with_guard)} |")
    with tempfile.TemporaryDirectory() as tmp:
        entries = [{"pipeline": "text-to-image", "model_id": f"acme/model-{i}", "price_per_unit": 4768371 + i}
                   for i in range(1000)]
        path = Path(tmp) / "aiModels.json"
        path.write_text(json.dumps(entries, indent=2))
        lint = [timed([str(BIN / "lpfleet"), "lint", str(path)], Path(tmp)) for _ in range(args.repeat)]
        print(f"\nlpfleet lint, 1000 entries (1000 unverified-model warnings): {stats(lint)}")


if __name__ == "__main__":
    main()
