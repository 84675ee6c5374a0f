"""One round-trip for several facts (lpfleet.facts.batch): the batch's shell text run with a real sh, its answers
split per fact, and the lookup that answers from the batch only while nothing ran on the host."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import FactBase, StringCommand

from lpfleet.facts.batch import (
    FactRequest,
    _MarkedBatch,
    batch_command,
    fact_command,
    known_fact,
    prefetch,
    split_output,
)
from lpfleet.facts.files import FileDigest
from lpfleet.facts.remote_python import NO_PYTHON3, RemotePythonFact, pack_program


class Failing(FactBase[str]):
    def command(self) -> StringCommand:
        return StringCommand("echo half-said; exit 4")

    def process(self, output: list[str]) -> str:
        return "processed"


class Quiet(FactBase[list]):
    def command(self) -> StringCommand:
        return StringCommand("true")

    @staticmethod
    def default() -> list:
        return ["default"]


def sh(command: str) -> list[str]:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True).stdout.splitlines()


def test_every_answer_comes_back_with_its_exit_status_in_order():
    commands = ["echo a; echo 'b c'; d=5", "sleep 0.2; echo x; exit 3", "printf 'no newline'", "true"]
    want = {0: (0, ["a", "b c"]), 1: (3, ["x"]), 2: (0, ["no newline"]), 3: (0, [])}
    assert split_output(sh(batch_command(commands, "@@M-1")), "@@M-1", 4) == want
    # without mktemp the same commands run one after another, same answers
    assert split_output(sh(batch_command(commands, "@@M-1").replace("mktemp -d", "false")), "@@M-1", 4) == want


def test_the_commands_run_at_once():
    import time

    start = time.perf_counter()
    sh(batch_command(["sleep 0.5", "sleep 0.5", "sleep 0.5"], "@@M"))
    assert time.perf_counter() - start < 1.2


def test_a_batch_cut_short_keeps_only_finished_answers():
    lines = ["@@M 0", "one", "@@M 0 end 0", "@@M 1", "partial"]
    assert split_output(lines, "@@M", 2) == {0: (0, ["one"])}


@dataclass
class FakeMeta:
    executed: bool

    def is_complete(self) -> bool:
        return True


@dataclass
class FakeOp:
    operation_meta: FakeMeta


class FakeState:
    def __init__(self) -> None:
        self.ops: dict[Any, dict[str, FakeOp]] = {}


@dataclass(eq=False)
class FakeHost:
    """Runs every fact's command with a local sh, counting round-trips."""

    state: FakeState
    name: str = "node-1"
    asked: list[str] = field(default_factory=list)

    def get_fact(self, cls: type[FactBase], **kwargs: Any) -> Any:
        self.asked.append(cls.__name__)
        fact = cls()
        output = subprocess.run(["sh", "-c", str(fact.command(**kwargs).get_raw_value())], capture_output=True,
                                text=True)
        if output.returncode != 0:
            return "failed: pyinfra's own handling"
        lines = output.stdout.splitlines()
        return fact.process(lines) if lines else fact.default()


def test_steps_get_the_batch_answers_in_one_round_trip(tmp_path):
    path = tmp_path / "aiModels.json"
    path.write_text("[]")
    host = FakeHost(FakeState())
    kept = prefetch(host, [FactRequest(FileDigest, {"path": str(path)}), FactRequest(Quiet), FactRequest(Failing)])
    assert kept == 2 and host.asked == ["_MarkedBatch"]
    digest = known_fact(host, FileDigest, path=str(path))
    assert digest.sha256 == hashlib.sha256(b"[]").hexdigest() and digest.mode
    assert known_fact(host, Quiet) == ["default"]  # no output: the fact's default, as pyinfra does
    assert host.asked == ["_MarkedBatch"]
    # a fact whose command failed is asked again, so pyinfra's failure handling applies
    assert known_fact(host, Failing) == "failed: pyinfra's own handling"
    # other arguments than the batch's: asked again
    known_fact(host, FileDigest, path=str(tmp_path / "other"))
    assert host.asked == ["_MarkedBatch", "Failing", "FileDigest"]


def test_once_a_command_ran_on_the_host_every_step_asks_the_node(tmp_path):
    path = tmp_path / "aiModels.json"
    path.write_text("[]")
    host = FakeHost(FakeState())
    prefetch(host, [FactRequest(FileDigest, {"path": str(path)})])
    host.state.ops[host] = {"op-without-commands": FakeOp(FakeMeta(executed=False))}
    assert known_fact(host, FileDigest, path=str(path)).sha256 == hashlib.sha256(b"[]").hexdigest()
    path.write_text('[{"changed": true}]')
    host.state.ops[host]["op-that-ran"] = FakeOp(FakeMeta(executed=True))
    assert known_fact(host, FileDigest, path=str(path)).sha256 == hashlib.sha256(b'[{"changed": true}]').hexdigest()
    assert host.asked == ["_MarkedBatch", "FileDigest"]


class Echo(RemotePythonFact[list]):
    """A Python fact: prints its params, what __name__ and argv it saw, and a line on stderr."""

    def bootstrap(self) -> str:
        return pack_program(
            "import sys\nprint('params', sys.argv[1:], __name__)\nsys.stderr.write('on stderr\\n')\n"
            "X = 'mine'\nprint('X' in dir(sys.modules['__main__']))\n"
        )

    def process(self, output: list[str]) -> list:
        return output


class Crashing(RemotePythonFact[list]):
    def bootstrap(self) -> str:
        return pack_program("print('before')\nraise ValueError('broken on purpose')\n")

    def process(self, output: list[str]) -> list:
        return output


class Exiting(RemotePythonFact[list]):
    def bootstrap(self) -> str:
        return pack_program("import sys\nprint('leaving')\nsys.exit(3)\nprint('never')\n")

    def process(self, output: list[str]) -> list:
        return output


PYTHON_REQUESTS = [
    FactRequest(Echo, {"params": "first"}),
    FactRequest(Quiet),
    FactRequest(Crashing, {"params": "x"}),
    FactRequest(Exiting, {"params": "y"}),
    FactRequest(Echo, {"params": "second"}),
]


def test_python_facts_run_in_one_process_and_answer_as_each_alone(tmp_path):
    together = FakeHost(FakeState())
    assert prefetch(together, PYTHON_REQUESTS) == len(PYTHON_REQUESTS)
    assert together.asked == ["_MarkedBatch"]
    batch_text = fact_command(_MarkedBatch, {"commands": ["true"], "marker": "@@M"})
    assert batch_text  # the batch itself is plain sh
    answers = [known_fact(together, r.cls, **r.kwargs) for r in PYTHON_REQUESTS]
    alone = FakeHost(FakeState())
    assert answers == [alone.get_fact(r.cls, **r.kwargs) for r in PYTHON_REQUESTS]
    assert answers[0] == ["params ['first'] __main__", "on stderr", "True"]
    assert answers[2][0] == "before" and answers[2][-1] == "ValueError: broken on purpose"
    assert answers[3] == ["leaving"]
    assert together.asked == ["_MarkedBatch"]


def test_python_group_shell_text_runs_one_python3():
    from lpfleet.facts.batch import _entries

    entries = _entries(PYTHON_REQUESTS)
    assert [len(entry.requests) for entry in entries] == [4, 1]  # the group where its first member was
    assert entries[0].command.count("then python3 -c") == 1 and "exec(" not in entries[1].command


def test_python_group_without_python3_answers_as_each_fact_would():
    from lpfleet.facts.batch import _entries, python_group_command

    command = python_group_command([("print(1)", "a"), ("print(2)", "b")], "@@G").replace(
        "command -v python3", "false")
    assert split_output(sh(command), "@@G", 2) == {0: (0, [NO_PYTHON3]), 1: (0, [NO_PYTHON3])}
    assert len(_entries([FactRequest(Echo, {"params": "only"})])[0].requests) == 1  # one alone: its own command
