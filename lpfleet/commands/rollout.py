"""`lpfleet rollout INVENTORY`: converge the fleet batch by batch, each batch gated on verification.

1. Validate every host's spec (nothing is touched when one is wrong).
2. Ask pyinfra which hosts deploy.py would change (`pyinfra --dry --json`): only those are rolled out;
   converged hosts are left alone (`--every-host` rolls every host).
3. Cut them into batches (rollout_batch_size / rollout_batch_percent; lpfleet.rollout) so that every
   (pipeline, model_id) warm on two or more hosts keeps a serving host outside each batch
   (rollout_max_unavailable caps how many of its hosts go at once); hosts alone serving a model go last.
4. Per batch: `pyinfra -y INVENTORY deploy.py --limit <batch>` (pyinfra's own output, as in a plain run),
   then verify the batch (`lpfleet verify` machinery, waiting for runners that are still loading).
   A host failed when its deploy failed or its verification did not come out healthy.
5. More failed hosts in a batch than rollout_fail_threshold: stop, name the failures and every host not
   touched. Exit 0 when the rollout completed healthy, 1 when it stopped or a host failed, 2 when it could
   not start (invalid specs, pyinfra could not plan).

`--dry` prints the plan (step 2-3) and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lpfleet.commands.verify import default_verify_deploy, pyinfra_command, verify_fleet, write_html
from lpfleet.report import HostResult, to_json, to_junit, to_table
from lpfleet.rollout import Rollout, fleet_settings

DEFAULT_WAIT_S = 300.0


def say(text: str) -> None:
    print(f"--> {text}", file=sys.stderr, flush=True)


def default_deploy() -> Path:
    here = Path.cwd() / "deploy.py"
    if here.is_file():
        return here
    checkout = Path(__file__).resolve().parents[2] / "deploy.py"
    # a pip-installed lpfleet has no checkout: the starter's deploy.py (the same file) runs its steps
    return checkout if checkout.is_file() else Path(__file__).resolve().parents[1] / "starter" / "deploy.py"


def hosts_with_changes(inventory: str, deploy: Path) -> tuple[list[str] | None, str]:
    """Hosts on which deploy.py would change something, from pyinfra's own dry-run plan (None: it failed)."""
    env = dict(os.environ, LPFLEET_VERIFY_TABLE="0")
    env.pop("LPFLEET_VERIFY_JSON", None)
    env.pop("LPFLEET_VERIFY_JUNIT", None)
    proc = subprocess.run(
        [*pyinfra_command(), "--dry", "--json", inventory, str(deploy)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        plan = json.loads(proc.stdout)
    except ValueError:
        return None, proc.stderr + proc.stdout
    changed: set[str] = set()
    for op in plan.get("plan") or []:
        changed.update(op.get("hosts_with_change") or [])
        changed.update(op.get("hosts_with_conditional_change") or [])
    return sorted(changed), proc.stderr


def warm_models(specs) -> dict[str, tuple[tuple[str, str], ...]]:
    """Every host's warm runners as (pipeline, model_id): what must keep a serving host during the rollout."""
    from lpfleet.runners import expected_runners

    return {
        host: tuple(dict.fromkeys((r.pipeline, r.model_id) for r in expected_runners(spec)))
        for host, spec in specs.items()
    }


def deploy_batch(inventory: str, deploy: Path, hosts: tuple[str, ...], report: str) -> int:
    """pyinfra -y on the batch's hosts; its output goes straight to the user; returns its exit code."""
    env = dict(os.environ, LPFLEET_VERIFY_JSON=report, LPFLEET_VERIFY_TABLE="0")
    env.pop("LPFLEET_VERIFY_JUNIT", None)
    command = [*pyinfra_command(), "-y", inventory, str(deploy)]
    for name in hosts:
        command += ["--limit", name]
    return subprocess.run(command, env=env).returncode


def deploy_failures(report: str, hosts: tuple[str, ...]) -> dict[str, str]:
    """Hosts the batch's deploy failed on: no result, or 'could not check' because an earlier step failed."""
    try:
        from lpfleet.report import results_from_json

        results = {r.host: r for r in results_from_json(Path(report).read_text())}
    except (OSError, ValueError):
        return {host: "the deploy produced no report (pyinfra stopped early)" for host in hosts}
    failed = {}
    for host in hosts:
        result = results.get(host)
        if result is None:
            failed[host] = "not deployed (pyinfra did not reach this host)"
        elif result.status == "unchecked":
            failed[host] = f"deploy failed: {result.checks[0].detail}"
    return failed


def run(args: argparse.Namespace) -> int:
    deploy = Path(args.deploy) if args.deploy else default_deploy()
    verify_deploy = Path(args.verify_deploy) if args.verify_deploy else default_verify_deploy()
    for path, what in (
        (Path(args.inventory), "inventory"),
        (deploy, "deploy.py"),
        (verify_deploy, "verify.py"),
    ):
        if not path.is_file():
            print(f"lpfleet rollout: {what} {path} not found", file=sys.stderr)
            return 2
    started = time.monotonic()

    from lpfleet.fleet import FleetError, load_fleet

    try:
        specs = load_fleet(args.inventory)
    except FleetError as exc:
        print(f"lpfleet rollout: invalid specs, nothing was touched:\n{exc}", file=sys.stderr)
        return 2
    order = list(specs)
    settings = fleet_settings(spec.rollout for spec in specs.values())

    if args.every_host:
        targets = order
    else:
        say("planning: which hosts would deploy.py change (pyinfra --dry)")
        changed, output = hosts_with_changes(args.inventory, deploy)
        if changed is None:
            sys.stderr.write(output)
            print("lpfleet rollout: pyinfra could not plan the deploy (its output is above)", file=sys.stderr)
            return 2
        targets = [host for host in order if host in changed]
    rollout = Rollout.plan(
        targets,
        settings,
        serving=warm_models(specs),
        unchanged=[host for host in order if host not in targets],
    )
    for line in rollout.describe_plan():
        say(line)
    if args.dry:
        return 0

    verified: dict[str, HostResult] = {}
    with tempfile.TemporaryDirectory(prefix="lpfleet-rollout-") as tmp:
        while (step := rollout.next_batch()) is not None:
            index, hosts = step
            batch_started = time.monotonic()
            say(f"batch {index}/{len(rollout.batches)}: deploying {', '.join(hosts)}")
            report = os.path.join(tmp, f"batch-{index}.json")
            deploy_batch(args.inventory, deploy, hosts, report)
            failed = deploy_failures(report, hosts)
            say(f"batch {index}/{len(rollout.batches)}: verifying {', '.join(hosts)}")
            outcome = verify_fleet(args.inventory, verify_deploy, list(hosts), args.wait, say=say)
            if not outcome.ok:
                sys.stderr.write(outcome.output)
            for result in outcome.results:
                verified[result.host] = result
                if result.host in hosts and result.status != "healthy" and result.host not in failed:
                    bad = [c for c in result.checks if c.state in ("fail", "unknown", "loading")]
                    failed[result.host] = (
                        "; ".join(f"{c.check}: {c.detail}" for c in bad[:2]) or result.status
                    )
                elif result.host in hosts and any(c.state == "loading" for c in result.checks):
                    failed.setdefault(result.host, f"runners still loading after {args.wait:.0f} s")
            for host in hosts:
                if host not in verified and host not in failed:
                    failed[host] = "could not be verified"
            batch = rollout.record(
                hosts, failed, batch_started - started, time.monotonic() - batch_started
            )
            say(rollout.describe_outcome()[batch.index - 1])

    results = [verified[h] for h in order if h in verified]
    elapsed = time.monotonic() - started
    if results:
        sys.stdout.write(to_table(results, elapsed_s=elapsed))
    print(rollout.describe_outcome()[-1])
    if args.json:
        Path(args.json).write_text(
            to_json(
                results,
                inventory=args.inventory,
                elapsed_s=round(elapsed, 3),
                extra={"rollout": rollout.to_dict()},
            )
        )
    if args.junit:
        Path(args.junit).write_text(to_junit(results, suite_name="lpfleet rollout", elapsed_s=elapsed))
    if args.html:
        write_html(args.html, results, args.inventory, elapsed, rollout.to_dict(), "lpfleet rollout")
    return 0 if rollout.status == "completed" else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rollout",
        help="converge the fleet in batches, each gated on verification; stop on a failed batch",
        description="Roll deploy.py across the fleet batch by batch (rollout_batch_size or "
        "rollout_batch_percent), verify each batch, stop when one fails beyond rollout_fail_threshold. See docs/rollout.md.",
    )
    parser.add_argument("inventory", help="pyinfra inventory file")
    parser.add_argument(
        "--dry", action="store_true", help="print the plan (hosts with changes, batches) and exit"
    )
    parser.add_argument(
        "--every-host",
        action="store_true",
        help="roll every host, not only those pyinfra's dry run says would change",
    )
    parser.add_argument(
        "--wait",
        metavar="SECONDS",
        type=float,
        default=DEFAULT_WAIT_S,
        help=f"how long a batch's runners may keep loading before it counts as failed "
        f"(default {DEFAULT_WAIT_S:.0f})",
    )
    parser.add_argument("--json", metavar="FILE", help="write the JSON report (with a `rollout` section)")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    parser.add_argument(
        "--html",
        metavar="FILE",
        help="write the fleet page: hosts by checks, problems, the batches as a timeline",
    )
    parser.add_argument(
        "--deploy", metavar="PATH", help="deploy.py to roll out (default: ./deploy.py or the project's)"
    )
    parser.add_argument("--verify-deploy", metavar="PATH", help="verify.py used as the gate")
    parser.set_defaults(func=run)
