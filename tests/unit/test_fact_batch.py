"""One round-trip for several facts (lpfleet.facts.batch): the batch's shell text run with a real sh, its answers
split per fact, and the lookup that answers from the batch only while nothing ran on the host."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import FactBase, StringCommand

from lpfleet.facts.batch import FactRequest, batch_command, known_fact, prefetch, split_output
from lpfleet.facts.files import FileDigest


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
