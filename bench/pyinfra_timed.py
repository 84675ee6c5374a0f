"""The pyinfra CLI with a clock on it: `python bench/pyinfra_timed.py PYINFRA-ARGS...` runs pyinfra exactly as
`pyinfra PYINFRA-ARGS...` does and, at exit, prints to stderr one line per host with its command round-trips
(every `Host.run_shell_command`: facts and operation commands alike), then where the process's time went:

    @@roundtrips HOST N SECONDS
    @@phase NAME SECONDS
    @@call HOST STARTED_AT SECONDS   (each command; with PYINFRA_TIMED_TRACE=1 also its first characters)
    @@mark NAME AT                   (when each phase began and ended, seconds since the process started)

Phases: `start` (interpreter + imports until pyinfra's CLI starts), `inventory` (loading the inventory and group
data, the lpfleet guard included), `connect` (SSH to every host), `prepare` (the deploy file run for every host:
where facts are read), `execute` (operations' commands) and `end` (results, the verify table, exit).
Used by bench/noop_converge.py; nothing here changes what pyinfra does.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from collections import defaultdict

START = time.perf_counter()

from pyinfra.api import connect as connect_module  # noqa: E402
from pyinfra.api import host as host_module  # noqa: E402
from pyinfra.api import operations as operations_module  # noqa: E402
from pyinfra_cli import cli as cli_module  # noqa: E402
from pyinfra_cli import util as cli_util  # noqa: E402
from pyinfra_cli.main import main  # noqa: E402

TRACE = bool(os.environ.get("PYINFRA_TIMED_TRACE"))
marks: dict[str, float] = {"imported": time.perf_counter()}
calls: dict[str, list[float]] = defaultdict(list)
_run_shell_command = host_module.Host.run_shell_command


def _timed_run_shell_command(self, *args, **kwargs):
    began = time.perf_counter()
    try:
        return _run_shell_command(self, *args, **kwargs)
    finally:
        calls[self.name].append(time.perf_counter() - began)
        print(f"@@call {self.name} {began - START:.3f} {time.perf_counter() - began:.3f}"
              + (f" {str(args[0])[:60]!r}" if TRACE else ""), file=sys.stderr)


def _marking(name: str, func):
    def wrapper(*args, **kwargs):
        marks.setdefault(f"{name}-start", time.perf_counter())
        try:
            return func(*args, **kwargs)
        finally:
            marks[f"{name}-end"] = time.perf_counter()
    return wrapper


host_module.Host.run_shell_command = _timed_run_shell_command
cli_module.connect_all = _marking("connect", connect_module.connect_all)
cli_module.run_ops = _marking("execute", operations_module.run_ops)
for _name in ("load_deploy_file", "load_func"):
    setattr(cli_module, _name, _marking("prepare", getattr(cli_util, _name)))
cli_module._prepare_exec_operations = _marking("prepare", cli_module._prepare_exec_operations)


@atexit.register
def _report() -> None:
    end = time.perf_counter()
    for name, at in sorted(marks.items(), key=lambda kv: kv[1]):
        print(f"@@mark {name} {at - START:.3f}", file=sys.stderr)
    for name in sorted(calls):
        print(f"@@roundtrips {name} {len(calls[name])} {sum(calls[name]):.3f}", file=sys.stderr)
    points = [("start", START), ("inventory", marks["imported"]), ("connect", marks.get("connect-start")),
              ("prepare", marks.get("prepare-start")), ("execute", marks.get("execute-start")), ("end", end)]
    known = [(n, t) for n, t in points if t is not None]
    for (name, began), (_next, until) in zip(known, known[1:]):
        print(f"@@phase {name} {until - began:.3f}", file=sys.stderr)
    if "execute-end" in marks:
        print(f"@@phase end {end - marks['execute-end']:.3f}", file=sys.stderr)


if __name__ == "__main__":
    sys.argv[0] = "pyinfra"
    sys.exit(main())
