"""Time `lpfleet sandbox up`: from a clean daemon, with warm image caches, and as a no-op; and the stand-in image
load into a node's own dockerd.

    .venv/bin/python bench/sandbox_up.py [--nodes 3] [--cold] [--keep]

Uses its own sandbox (LPFLEET_SANDBOX=lpfleet-bench-up). Phases:
  cold    (--cold only) every image this builder made is removed first (by label lpfleet.sandbox.input-hash,
          nothing else), plus the saved-tarball cache: debootstrap, all builds, node creation, services, SSH.
          Refuses when containers of other sandboxes use those images (it would pull them from under them).
  fresh   images cached, no containers: `down` then `up` (node + service containers, SSH ready).
  no-op   everything runs: `up` again (the idempotent path the test fixture and the demo take).
  load    node 1 gets docker.io from its baked debs, then its dockerd loads the missing stand-in images
          (`load-images`, the same script the docker.service drop-in runs); timed on an empty dockerd and again
          when nothing is missing.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lpfleet.sandbox.engine import docker  # noqa: E402
from lpfleet.sandbox.images import HASH_LABEL, our_images  # noqa: E402
from lpfleet.sandbox.nodes import LOAD_IMAGES  # noqa: E402
from lpfleet.sandbox.state import LABEL, load_state, sandboxes_dir  # noqa: E402

LPFLEET = str(Path(sys.executable).parent / "lpfleet")


def timed(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"`{' '.join(args)}` failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return took


def users_of_our_images(own: str) -> list[str]:
    ids = set(our_images())
    out = docker("ps", "-a", "--format", f'{{{{.Names}}}}\t{{{{.Label "{LABEL}"}}}}').stdout
    users = []
    for line in out.splitlines():
        container, _, sandbox = line.partition("\t")
        if sandbox == own:
            continue
        image = docker("inspect", "--format", "{{.Image}}", container, check=False).stdout.strip()
        if image in ids:
            users.append(f"{container} (sandbox {sandbox or '-'})")
    return users


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="remove our images first (see above)")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    args = parser.parse_args()
    name = os.environ.get("LPFLEET_BENCH_SANDBOX", "lpfleet-bench-up")
    env = {**os.environ, "LPFLEET_SANDBOX": name}
    up = (LPFLEET, "sandbox", "up", "--nodes", str(args.nodes))
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"docker {docker('version', '--format', '{{.Server.Version}}').stdout.strip()}", flush=True)
    results: list[tuple[str, float]] = []
    try:
        if args.cold:
            users = users_of_our_images(name)
            if users:
                raise SystemExit("--cold would remove images in use by: " + ", ".join(users))
            timed(LPFLEET, "sandbox", "down", env=env)
            ids = our_images()
            if ids:
                docker("rmi", "-f", *ids)
            shutil.rmtree(sandboxes_dir() / ".image-cache", ignore_errors=True)
            assert not docker("images", "-q", "--filter", f"label={HASH_LABEL}").stdout.strip()
            results.append(("cold: clean daemon (debootstrap + every image + containers)", timed(*up, env=env)))
        timed(LPFLEET, "sandbox", "down", env=env)
        results.append(("fresh: images cached, new containers", timed(*up, env=env)))
        results.append(("no-op: everything already runs", timed(*up, env=env)))
        state = load_state(name, env)
        node = state.nodes[0].name
        install = time.perf_counter()
        docker("exec", node, "sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
               "--no-install-recommends --no-download docker.io >/dev/null", timeout=900)
        results.append(("docker.io install from baked debs + dockerd start + image load (node 1)",
                        time.perf_counter() - install))
        docker("exec", node, "sh", "-c", "docker rmi -f $(docker images -q) >/dev/null 2>&1; true")
        load = time.perf_counter()
        docker("exec", node, LOAD_IMAGES, timeout=900)
        count = f"{len(set(state.node_images.values()))} images, {len(state.node_images)} tags"
        results.append((f"load the stand-in bundle ({count}) into an empty node dockerd",
                        time.perf_counter() - load))
        noop = time.perf_counter()
        docker("exec", node, LOAD_IMAGES)
        results.append(("load-images when nothing is missing", time.perf_counter() - noop))
    finally:
        if not args.keep:
            subprocess.run([LPFLEET, "sandbox", "down"], cwd=ROOT, env=env, capture_output=True)
    for label, seconds in results:
        print(f"{label:<75} {seconds:7.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
