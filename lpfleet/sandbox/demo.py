"""`make demo`: from a bare machine to a converged, verified sandbox fleet, one progress line per phase;
it ends by printing the path of the fleet page (`lpfleet verify --html`).

    python -m lpfleet.sandbox.demo [--nodes N] [--keep-going]

Phases are data (PHASES): each names what it needs (modules, files); a phase whose pieces do not exist yet is
skipped with a line saying which, never faked. Output of every command goes to .sandbox/<name>/demo-<phase>.log;
its tail is shown when the phase fails. The sandbox stays up afterwards (`lpfleet sandbox down` removes it).
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lpfleet.sandbox.state import project_root, sandbox_name, state_dir

ROOT = project_root()
VENV_BIN = Path(sys.executable).parent
INVENTORY = "inventories/sandbox.py"


@dataclass
class Context:
    name: str
    nodes: int
    env: dict[str, str]
    logs: Path
    notes: list[str] = field(default_factory=list)  # lines for the final report
    fleet_page: Path | None = None  # the fleet page verify wrote (lpfleet verify --html)


@dataclass(frozen=True)
class Outcome:
    status: str  # "ok" | "skipped" | "failed"
    detail: str = ""


@dataclass(frozen=True)
class Phase:
    name: str
    title: str
    run: Callable[[Context], Outcome]
    needs_modules: tuple[str, ...] = ()
    needs_files: tuple[str, ...] = ()


def _missing(phase: Phase) -> list[str]:
    missing = [path for path in phase.needs_files if not (ROOT / path).exists()]
    for module in phase.needs_modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(module)
    return missing


def _command(ctx: Context, phase: str, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run a command from the project root; its whole output goes to the phase's log file."""
    log = ctx.logs / f"demo-{phase}.log"
    result = subprocess.run(args, cwd=ROOT, env=ctx.env, capture_output=True, text=True, timeout=timeout)
    log.write_text(f"$ {' '.join(args)}\n{result.stdout}{result.stderr}")
    return result


def _failed(result: subprocess.CompletedProcess, log_name: str, ctx: Context) -> Outcome:
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
    return Outcome("failed", f"exit {result.returncode}; log {ctx.logs / f'demo-{log_name}.log'}\n{tail}")


def deploy_imports(path: Path) -> tuple[str, ...]:
    """Modules a deploy file imports (pure parse, nothing executed)."""
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
    return tuple(dict.fromkeys(modules))


def changed_operations(output: str) -> int | None:
    """Operations that changed something, from pyinfra's results table (None without a table)."""
    match = re.search(r"Grand total\s+\d+\s+(\S+)\s+\S+\s+\S+", re.sub(r"\x1b\[[0-9;]*m", "", output))
    if not match:
        return None
    return 0 if match.group(1) == "-" else int(match.group(1))


# --- phases -----------------------------------------------------------------------------------------------------

def host_deps(ctx: Context) -> Outcome:
    result = _command(ctx, "host-deps", str(ROOT / "scripts" / "host-deps"))
    if result.returncode != 0:
        return _failed(result, "host-deps", ctx)
    lines = [line for line in result.stdout.splitlines() if line.startswith("host-deps:")]
    return Outcome("ok", "; ".join(lines) or "all present, dockerd answers")


def sandbox_up(ctx: Context) -> Outcome:
    result = _command(ctx, "up", str(VENV_BIN / "lpfleet"), "sandbox", "up", "--nodes", str(ctx.nodes))
    if result.returncode != 0:
        return _failed(result, "up", ctx)
    from lpfleet.sandbox.state import load_state

    state = load_state(ctx.name, ctx.env)  # the hub token reaches `lock` through group data, not from here
    services = ", ".join(sorted(state.services)) or "none"
    ctx.notes.append(f"nodes: {', '.join(f'{n.name} (127.0.0.1:{n.ssh_port}, {n.gpu_class})' for n in state.nodes)}")
    return Outcome("ok", f"{len(state.nodes)} nodes, services: {services}")


def lock(ctx: Context) -> Outcome:
    result = _command(ctx, "lock", str(VENV_BIN / "lpfleet"), "lock", INVENTORY)
    return Outcome("ok", result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "") \
        if result.returncode == 0 else _failed(result, "lock", ctx)


def _deploy(ctx: Context, phase: str) -> tuple[subprocess.CompletedProcess, int | None]:
    result = _command(ctx, phase, str(VENV_BIN / "pyinfra"), "-y", INVENTORY, "deploy.py")
    return result, changed_operations(result.stdout + result.stderr)


def deploy(ctx: Context) -> Outcome:
    result, changes = _deploy(ctx, "deploy")
    if result.returncode != 0:
        return _failed(result, "deploy", ctx)
    return Outcome("ok", f"{changes} operations changed something")


def deploy_again(ctx: Context) -> Outcome:
    result, changes = _deploy(ctx, "deploy-again")
    if result.returncode != 0:
        return _failed(result, "deploy-again", ctx)
    if changes != 0:
        return Outcome("failed", f"second run changed {changes} operations (must be 0); "
                                 f"log {ctx.logs / 'demo-deploy-again.log'}")
    return Outcome("ok", "0 changes: the converge is idempotent")


def verify(ctx: Context) -> Outcome:
    report = ctx.logs / "verify.json"
    page = ctx.logs / "fleet.html"
    result = _command(ctx, "verify", str(VENV_BIN / "lpfleet"), "verify", INVENTORY, "--wait", "120",
                      "--json", str(report), "--html", str(page))
    ctx.notes.append("verification:\n" + (result.stdout.rstrip() or result.stderr.rstrip()))
    if page.is_file():
        ctx.fleet_page = page
    if result.returncode != 0:
        return _failed(result, "verify", ctx)
    return Outcome("ok", f"healthy; JSON report {report}")


def _deploy_phase_modules() -> tuple[str, ...]:
    path = ROOT / "deploy.py"
    return deploy_imports(path) if path.is_file() else ()


PHASES: tuple[Phase, ...] = (
    Phase("host-deps", "host dependencies and dockerd", host_deps, needs_files=("scripts/host-deps",)),
    Phase("up", "sandbox up", sandbox_up),
    Phase("lock", "lpfleet lock (models.lock from the hub)", lock, needs_modules=("lpfleet.commands.lock",)),
    Phase("deploy", "pyinfra deploy.py", deploy, needs_files=("deploy.py",), needs_modules=_deploy_phase_modules()),
    Phase("deploy-again", "pyinfra deploy.py again (idempotency)", deploy_again, needs_files=("deploy.py",),
          needs_modules=_deploy_phase_modules()),
    Phase("verify", "lpfleet verify", verify, needs_modules=("lpfleet.commands.verify",),
          needs_files=("verify.py",)),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--keep-going", action="store_true", help="run later phases after a failed one")
    args = parser.parse_args(argv)
    name = sandbox_name()
    logs = state_dir(name)
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    ctx = Context(name=name, nodes=args.nodes, env={**os.environ, "LPFLEET_SANDBOX": name}, logs=logs)
    started = time.monotonic()
    results: list[tuple[Phase, Outcome, float]] = []
    failed = False
    print(f"lpfleet demo: sandbox {name}, {args.nodes} nodes, logs in {logs}", flush=True)
    for number, phase in enumerate(PHASES, 1):
        prefix = f"[{number}/{len(PHASES)}] {phase.title}"
        missing = _missing(phase)
        if failed and not args.keep_going:
            outcome, took = Outcome("skipped", "an earlier phase failed"), 0.0
        elif missing:
            outcome, took = Outcome("skipped", f"not written yet: {', '.join(missing)}"), 0.0
        else:
            print(f"{prefix} ...", flush=True)
            phase_start = time.monotonic()
            try:
                outcome = phase.run(ctx)
            except Exception as exc:  # a phase's own bug or a timeout: report it, keep the summary
                outcome = Outcome("failed", f"{type(exc).__name__}: {exc}")
            took = time.monotonic() - phase_start
        failed = failed or outcome.status == "failed"
        results.append((phase, outcome, took))
        first, *rest = (outcome.detail or "").splitlines() or [""]
        print(f"{prefix}: {outcome.status}" + (f" ({took:.1f} s)" if took else "") + (f" - {first}" if first else ""),
              flush=True)
        for line in rest:
            print(f"    {line}")
    total = time.monotonic() - started
    print("\n== report ==")
    for note in ctx.notes:
        print(note)
    for phase, outcome, took in results:
        print(f"  {phase.name:<14} {outcome.status:<8} {took:6.1f} s")
    print(f"total {total:.1f} s; the sandbox stays up: `LPFLEET_SANDBOX={name} lpfleet sandbox down` removes it")
    if ctx.fleet_page is not None:
        print(f"fleet page: {ctx.fleet_page} (open it in a browser; it needs no network)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
