"""The worker step on a running sandbox: no-op converge time, and a recreate of every node's worker.

    LPFLEET_SANDBOX=NAME .venv/bin/python bench/worker.py [--runs 5]

Needs a deployed sandbox (`lpfleet sandbox up`, `lpfleet lock inventories/sandbox.py`, `pyinfra -y
inventories/sandbox.py deploy.py`). Times `pyinfra -y inventories/sandbox.py <deploy>` where the deploy runs only
the worker step (the whole CLI process: start, SSH connect, one fact round-trip per host):
- no-op: `--runs` runs on the converged fleet, each must report 0 changes;
- recreate: the worker's flags change on every host (`worker_extra_flags = ["-v", "6"]` through a one-off
  inventory), so every worker is stopped (its runners removed), started again and waited for until go-livepeer
  answers (its warm runners started); then the flag is dropped again (a second recreate, back to the group data).
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
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEPLOY = '''
from pyinfra import host

from lpfleet.fleet import node_plan
from tasks.worker import run_ai_worker

run_ai_worker(node_plan(host))
'''


def pyinfra(inventory: str, deploy: str, env: dict[str, str]) -> tuple[float, int, str]:
    started = time.monotonic()
    result = subprocess.run([str(VENV_BIN / "pyinfra"), "-y", inventory, deploy], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    if result.returncode != 0:
        raise SystemExit(f"pyinfra failed:\n{output[-3000:]}")
    match = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", output)
    if not match:
        raise SystemExit(f"no results table in pyinfra output:\n{output[-2000:]}")
    success = match.group(2)
    changed = 0 if success == "-" else int(success)
    return elapsed, changed, output


def one_off_inventory(extra_flags: list[str]) -> Path:
    path = ROOT / "inventories" / f"_bench_worker_{uuid.uuid4().hex[:8]}.py"
    path.write_text(
        "import importlib.util as _u\n"
        f"_s = _u.spec_from_file_location('_sandbox_inventory', {str(ROOT / 'inventories' / 'sandbox.py')!r})\n"
        "_m = _u.module_from_spec(_s)\n_s.loader.exec_module(_m)\n"
        f"sandbox_consumer = [(n, {{**d, 'worker_extra_flags': {extra_flags!r}}}) for n, d in _m.sandbox_consumer]\n"
        f"sandbox_datacenter = [(n, {{**d, 'worker_extra_flags': {extra_flags!r}}}) for n, d in _m.sandbox_datacenter]\n"
        "sandbox = sandbox_consumer + sandbox_datacenter\n"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ)
    inventory = str(ROOT / "inventories" / "sandbox.py")
    with tempfile.TemporaryDirectory(prefix="lpfleet-bench-worker-") as tmp:
        deploy = Path(tmp) / "worker_deploy.py"
        deploy.write_text(DEPLOY)
        _, changed, _ = pyinfra(inventory, str(deploy), env)
        print(f"converge: {changed} changes")
        times = []
        for _ in range(args.runs):
            elapsed, changed, out = pyinfra(inventory, str(deploy), env)
            if changed:
                raise SystemExit(f"a no-op run changed {changed} operations:\n{out[-3000:]}")
            times.append(elapsed)
        print(f"no-op: min / median / max of {args.runs}: {min(times):.2f} / {statistics.median(times):.2f} / "
              f"{max(times):.2f} s (0 changes)")
        changed_inventory = one_off_inventory(["-v", "6"])
        try:
            elapsed, changed, _ = pyinfra(str(changed_inventory), str(deploy), env)
            print(f"recreate (flags changed): {elapsed:.2f} s, {changed} changes")
        finally:
            changed_inventory.unlink(missing_ok=True)
        elapsed, changed, _ = pyinfra(inventory, str(deploy), env)
        print(f"recreate (back): {elapsed:.2f} s, {changed} changes")
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
