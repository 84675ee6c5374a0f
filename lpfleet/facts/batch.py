"""Several facts of one host read in ONE round-trip, and the lookup every step uses to read a fact.

Why: each `host.get_fact` is an SSH round-trip, and a host's steps read their facts one after another (pyinfra
runs one host's deploy code in order). A converged fleet's run is then mostly waiting. `prefetch(host, requests)`
runs the commands of several facts as one shell command, each in its own subshell with its own exit status, and
keeps every answer for the host; `known_fact(host, cls, **kwargs)` hands a step the kept answer instead of asking
the node again.

Facts that ship a Python program (`RemotePythonFact`: the weights scan, the verify snapshot) run in ONE python3
process of the batch (`python_group_command`), each program as `python3 -c` would run it, its output kept apart:
one interpreter start and one set of standard-library imports per node instead of one per fact.

When a kept answer is used: only while no command has run on the host in this run (the same state pyinfra's own
facts see when a deploy's code runs, before any operation executes). Once an operation on the host has executed a
command, every lookup asks the node again, so a step never decides from state an earlier step changed. A fact
whose command failed (non-zero exit) in the batch is not kept: the lookup asks the node with `host.get_fact`, so
pyinfra's own failure handling applies unchanged.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gevent.event import Event
from pyinfra.api import FactBase, QuoteString, StringCommand

from lpfleet.facts.remote_python import NO_PYTHON3, RemotePythonFact

T = TypeVar("T")

#: One shell argument stays well under Linux's MAX_ARG_STRLEN (128 KiB): larger requests get a batch of their own.
MAX_BATCH_CHARS = 100_000


@dataclass(frozen=True)
class FactRequest:
    """A fact and its arguments, as a step will ask for it (`known_fact(host, cls, **kwargs)`)."""

    cls: type[FactBase]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[Any, ...]:
        return fact_key(self.cls, self.kwargs)

    def command(self) -> str:
        return fact_command(self.cls, self.kwargs)


def fact_key(cls: type[FactBase], kwargs: Mapping[str, Any]) -> tuple[Any, ...]:
    return (cls, tuple(sorted((k, repr(v)) for k, v in kwargs.items())))


def fact_command(cls: type[FactBase], kwargs: Mapping[str, Any]) -> str:
    """The shell text pyinfra would run for this fact (its `command`, arguments quoted)."""
    command = cls().command(**kwargs)
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    return str(command)


def batch_command(commands: Sequence[str], marker: str) -> str:
    """The commands run at once (each in a background subshell, stdin closed, stdout to a private temp folder),
    then each answer printed in order between two marker lines: `MARKER i` before, `MARKER i end RC` after.

    At once because they only read, and a node's answer then takes as long as its slowest fact, not their sum.
    Without mktemp (or when it fails) they run one after another. Always exits 0.
    """
    out = '"$_lpfleet_batch/{}"'
    background = [
        f"{{ ( {command}\n) </dev/null >{out.format(i)} 2>/dev/null; echo $? >{out.format(f'{i}.rc')}; }} &"
        for i, command in enumerate(commands)
    ]
    serial = [
        f"echo '{marker} {i}'; ( {command}\n) </dev/null; echo \"{marker} {i} end $?\";"
        for i, command in enumerate(commands)
    ]
    printed = " ".join(
        f"echo '{marker} {i}'; cat {out.format(i)}; echo \"{marker} {i} end $(cat {out.format(f'{i}.rc')})\";"
        for i in range(len(commands))
    )
    return (
        "if _lpfleet_batch=$(mktemp -d 2>/dev/null) && [ -d \"$_lpfleet_batch\" ]; then\n"
        + "\n".join(background)
        + f"\nwait\n{printed}\nrm -rf \"$_lpfleet_batch\"\nelse\n"
        + "\n".join(serial)
        + "\nfi\ntrue"
    )


# Runs on the node: argv = marker, then (program, params) pairs. Each program runs as `python3 -c PROGRAM PARAMS
# 2>&1; true` would: its own __main__ module, sys.argv = ["-c", PARAMS], stdout and stderr together, an uncaught
# exception printed as python3 prints it; its answer between `MARKER i` and `MARKER i end 0` (exit status 0,
# like `; true`).
_GROUP_PROGRAM = """
import io, sys, types
def _run(program, params):
    out = io.StringIO()
    saved = sys.stdout, sys.stderr, sys.argv, sys.modules["__main__"]
    main = types.ModuleType("__main__")
    main.__dict__["__builtins__"] = __builtins__
    sys.stdout = sys.stderr = out
    sys.argv = ["-c", params]
    sys.modules["__main__"] = main
    try:
        exec(compile(program, "<string>", "exec"), main.__dict__)
    except SystemExit as exc:
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code)
    except BaseException:
        import traceback
        kind, value, trace = sys.exc_info()
        traceback.print_exception(kind, value, trace.tb_next)  # from the program's own frames, as python3 -c
    finally:
        sys.stdout, sys.stderr, sys.argv, sys.modules["__main__"] = saved
    return out.getvalue()
_marker, _args = sys.argv[1], sys.argv[2:]
for _i in range(len(_args) // 2):
    _text = _run(_args[2 * _i], _args[2 * _i + 1])
    sys.stdout.write("%s %d\\n%s%s%s %d end 0\\n" % (_marker, _i, _text, "" if not _text or _text.endswith("\\n")
                     else "\\n", _marker, _i))
    sys.stdout.flush()
"""


def python_group_command(programs: Sequence[tuple[str, str]], marker: str) -> str:
    """Several (program, params) of RemotePythonFact run in one python3 process; each answer between marker lines
    as in batch_command. Without python3 each answers NO_PYTHON3, as its own command would."""
    args: list[Any] = ["python3", "-c", QuoteString(_GROUP_PROGRAM), QuoteString(marker)]
    for program, params in programs:
        args += [QuoteString(program), QuoteString(params)]
    missing = " ".join(
        f"echo '{marker} {i}'; echo {NO_PYTHON3}; echo '{marker} {i} end 0';" for i in range(len(programs))
    )
    return StringCommand(
        "if", "command", "-v", "python3", ">/dev/null", "2>&1;", "then", *args, "2>&1;", "else", missing, "fi;",
        "true",
    ).get_raw_value()


def _python_program(request: FactRequest) -> tuple[str, str] | None:
    """(program, params) of a RemotePythonFact request, or None for any other fact."""
    if not (issubclass(request.cls, RemotePythonFact) and set(request.kwargs) == {"params"}):
        return None
    params = request.kwargs["params"]
    return (request.cls().bootstrap(), params) if isinstance(params, str) else None


def split_output(lines: Sequence[str], marker: str, count: int) -> dict[int, tuple[int, list[str]]]:
    """Each command's (exit status, stdout lines) from the batch's output; a command without its end line is
    missing from the result (the batch was cut short)."""
    answers: dict[int, tuple[int, list[str]]] = {}
    current: int | None = None
    collected: list[str] = []
    for raw in lines:
        cut = raw.find(marker + " ", 1)
        if cut > 0 and current is not None:  # the answer's last line had no newline: the end marker follows it
            collected.append(raw[:cut])
            raw = raw[cut:]
        line = raw
        if line.startswith(marker + " "):
            words = line[len(marker) + 1:].split()
            if len(words) == 1 and words[0].isdigit():
                current, collected = int(words[0]), []
                continue
            if len(words) == 3 and words[1] == "end" and current is not None and words[0] == str(current):
                answers[current] = (int(words[2]) if words[2].lstrip("-").isdigit() else 1, collected)
                current, collected = None, []
                continue
        if current is not None:
            collected.append(line)
    return {i: answers[i] for i in range(count) if i in answers}


class FactBatch(FactBase[dict[int, tuple[int, list[str]]]]):
    """The answers of several facts' commands run as one: {index: (exit status, stdout lines)}.

    + commands: each fact's shell command (see fact_command)
    + marker: a line prefix no command prints (a random one per run)
    """

    def command(self, commands: Sequence[str], marker: str) -> StringCommand:
        return StringCommand(batch_command(commands, marker))

    @staticmethod
    def default() -> dict[int, tuple[int, list[str]]]:
        return {}

    def process(self, output: list[str]) -> dict[int, tuple[int, list[str]]]:
        raise NotImplementedError("FactBatch answers are split by prefetch(), which knows the marker")


@dataclass
class _Known:
    values: dict[tuple[Any, ...], Any] = field(default_factory=dict)
    ready: Event = field(default_factory=Event)  # set when the host's prefetch is done (another host may wait)


#: Per pyinfra State (one run): host name -> the answers read by prefetch.
_known: weakref.WeakKeyDictionary[Any, dict[str, _Known]] = weakref.WeakKeyDictionary()


class _MarkedBatch(FactBatch):
    """FactBatch whose process() keeps the raw lines (the marker is only known to the caller)."""

    def process(self, output: list[str]) -> Any:
        return list(output)

    @staticmethod
    def default() -> Any:
        return []


@dataclass
class _Entry:
    """One command of a batch: a fact's own command, or (group_marker set) several Python facts in one process."""

    requests: list[FactRequest]
    command: str
    group_marker: str | None = None


def _entries(requests: Sequence[FactRequest]) -> list[_Entry]:
    """Each request's command, the Python facts (two or more) joined into one python3 process, in request order
    (the group where its first member was)."""
    programs = {i: _python_program(request) for i, request in enumerate(requests)}
    grouped = [i for i, program in programs.items() if program is not None]
    entries: list[_Entry] = []
    for i, request in enumerate(requests):
        if len(grouped) >= 2 and i in grouped:
            if i == grouped[0]:
                marker = f"@@lpfleet-python-{secrets.token_hex(6)}"
                members = [programs[j] for j in grouped]
                command = python_group_command([m for m in members if m is not None], marker)
                entries.append(_Entry([requests[j] for j in grouped], command, marker))
            continue
        entries.append(_Entry([request], request.command()))
    return entries


def _chunks(requests: Sequence[FactRequest]) -> list[list[_Entry]]:
    chunks: list[list[_Entry]] = [[]]
    size = 0
    for entry in _entries(requests):
        if chunks[-1] and size + len(entry.command) > MAX_BATCH_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += len(entry.command)
    return [chunk for chunk in chunks if chunk]


def prefetch(host: Any, requests: Sequence[FactRequest]) -> int:
    """Read `requests` on `host` in one round-trip (more only when their commands exceed MAX_BATCH_CHARS) and
    keep each answer for `known_fact`. Returns how many answers were kept."""
    known = _known.setdefault(host.state, {}).setdefault(host.name, _Known())
    known.ready.clear()
    unique = list({request.key: request for request in requests if request.key not in known.values}.values())
    try:
        return _read(host, known, unique)
    finally:
        known.ready.set()


def _read(host: Any, known: _Known, requests: Sequence[FactRequest]) -> int:
    kept = 0
    for chunk in _chunks(requests):
        marker = f"@@lpfleet-batch-{secrets.token_hex(6)}"
        lines = host.get_fact(_MarkedBatch, commands=[entry.command for entry in chunk], marker=marker)
        for index, (status, output) in split_output(lines or [], marker, len(chunk)).items():
            entry = chunk[index]
            answers = {0: (status, output)}
            if entry.group_marker is not None:  # the group's own markers split it per fact
                answers = split_output(output, entry.group_marker, len(entry.requests)) if status == 0 else {}
            for member, (member_status, member_output) in answers.items():
                if member_status != 0:
                    continue  # known_fact asks the node itself: pyinfra's failure handling applies
                request = entry.requests[member]
                fact = request.cls()
                known.values[request.key] = fact.process(member_output) if member_output else fact.default()
                kept += 1
    return kept


def _command_ran(host: Any) -> bool:
    """Whether an operation has executed a command on `host` in this run (the node may differ from the batch)."""
    for data in host.state.ops.get(host, {}).values():
        meta = data.operation_meta
        if meta.is_complete() and meta.executed:
            return True
    return False


def known_fact(host: Any, cls: type[FactBase[T]], **kwargs: Any) -> T:
    """`host.get_fact(cls, **kwargs)`, answered from this run's prefetch while no command has run on the host."""
    known = _known.get(host.state, {}).get(host.name)
    if known is not None:
        known.ready.wait()  # another host's step (the fleet-wide weights scan) may ask while this host's batch runs
        key = fact_key(cls, kwargs)
        if key in known.values:
            if not _command_ran(host):
                return known.values[key]
            known.values.clear()  # the node has changed since: never use these answers again
    return host.get_fact(cls, **kwargs)
