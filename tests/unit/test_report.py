"""Report renderings: the table, the JSON report (schema in docs/verify.md) and JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pytest

from lpfleet.report import (
    SCHEMA,
    Cause,
    Check,
    HostResult,
    exit_code,
    overall_status,
    results_from_json,
    to_json,
    to_junit,
    to_table,
)

OOM = Cause(
    "cuda-oom",
    "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "reduce warm count or pick a smaller variant",
)


def host(name, *states, causes=()):
    checks = tuple(
        Check(name, f"check {i}", state, f"detail {state} <&>", causes if state == "fail" else ())
        for i, state in enumerate(states)
    )
    return HostResult(name, ("gpu_a",), checks)


def test_exit_codes_and_status():
    assert exit_code([host("a", "ok", "loading", "warn", "skip")]) == 0
    assert exit_code([host("a", "ok"), host("b", "unknown")]) == 2
    assert exit_code([host("a", "fail"), host("b", "unknown")]) == 1  # a problem found outranks a gap
    assert exit_code([HostResult("a", (), ())]) == 2  # nothing checked is not healthy
    assert overall_status([host("a", "ok")]) == "healthy"
    assert host("a", "fail", "unknown").status == "problems"


def test_unknown_state_is_rejected():
    with pytest.raises(ValueError):
        Check("a", "gpus", "green", "")


def test_json_report_schema():
    when = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
    text = to_json(
        [host("node-1", "ok", "fail", causes=(OOM,)), host("node-2", "ok", "loading")],
        inventory="inventories/sandbox.py",
        generated_at=when,
        elapsed_s=1.5,
    )
    doc = json.loads(text)
    assert doc["schema"] == SCHEMA == "lpfleet.verify/1"
    assert doc["generated_at"] == "2026-11-26T12:00:00Z"
    assert doc["status"] == "problems" and doc["exit_code"] == 1 and doc["elapsed_s"] == 1.5
    assert doc["summary"] == {
        "hosts": 2,
        "healthy": 1,
        "problems": 1,
        "unchecked": 0,
        "checks": {"ok": 2, "skip": 0, "loading": 1, "warn": 0, "fail": 1, "unknown": 0},
    }
    first = doc["hosts"][0]
    assert first["host"] == "node-1" and first["groups"] == ["gpu_a"] and first["status"] == "problems"
    assert first["checks"][1] == {
        "check": "check 1",
        "state": "fail",
        "detail": "detail fail <&>",
        "causes": [OOM.to_dict()],
    }


def test_json_carries_check_data():
    result = HostResult("n", (), (Check("n", "warm slots", "ok", "1/1", data={"warm": 1, "slots": 1}),))
    assert json.loads(to_json([result]))["hosts"][0]["checks"][0]["data"] == {"warm": 1, "slots": 1}


def test_junit_is_valid_xml_with_the_right_counts():
    xml = to_junit(
        [host("node-1", "ok", "fail", "unknown", "skip", "loading", causes=(OOM,)), host("node-2", "ok")],
        elapsed_s=2.0,
    )
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    assert root.attrib == {
        "name": "lpfleet verify",
        "tests": "6",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
        "time": "2.000",
    }
    suites = root.findall("testsuite")
    assert [s.attrib["name"] for s in suites] == ["node-1", "node-2"]
    cases = suites[0].findall("testcase")
    assert [c.attrib["name"] for c in cases] == [f"check {i}" for i in range(5)]
    failure = cases[1].find("failure")
    assert failure.attrib["message"] == "detail fail <&>"
    assert (
        "cuda-oom: torch.cuda.OutOfMemoryError" in failure.text and "fix: reduce warm count" in failure.text
    )
    assert cases[2].find("error") is not None and cases[3].find("skipped") is not None
    assert "loading: detail loading" in cases[4].find("system-out").text
    assert cases[0].find("failure") is None and list(cases[0]) == []


def test_table_folds_ok_checks_and_shows_causes_with_fixes():
    text = to_table(
        [host("node-1", "ok", "ok", "fail", causes=(OOM,)), host("node-2", "ok", "ok")], elapsed_s=0.8
    )
    lines = text.splitlines()
    assert lines[0].split() == ["HOST", "CHECK", "STATE", "DETAIL"]
    fail = next(line for line in lines if "FAIL" in line)
    assert fail.startswith("node-1") and "check 2" in fail and "detail fail <&>" in fail
    following = lines[lines.index(fail) + 1 : lines.index(fail) + 3]
    assert following[0].strip().startswith("cuda-oom: torch.cuda.OutOfMemoryError")
    assert following[1].strip() == "fix: reduce warm count or pick a smaller variant"
    assert any(line.startswith("node-1") and "2 other checks" in line for line in lines)
    assert any(line.startswith("node-2") and "all 2 checks" in line for line in lines)
    assert lines[-1] == "verify: 2 hosts: 1 healthy; 1 with problems (node-1) (0.8 s)"


def test_table_full_lists_every_check_and_counts_loading():
    text = to_table([host("node-1", "ok", "loading", "unknown")], compact=False)
    assert sum(1 for line in text.splitlines() if line.startswith("node-1")) == 3
    assert text.splitlines()[-1] == (
        "verify: 1 host: 0 healthy; 1 could not be checked (node-1); 1 runner still loading"
    )


def test_table_clips_long_details_to_width():
    result = HostResult("n", (), (Check("n", "gpus", "fail", "x" * 500),))
    assert all(len(line) <= 120 for line in to_table([result], width=120).splitlines())


def test_json_round_trip():
    hosts = [
        host("node-1", "ok", "fail", causes=(OOM,)),
        HostResult("n2", ("g",), (Check("n2", "warm slots", "ok", "1/1", data={"warm": 1, "slots": 1}),)),
    ]
    assert results_from_json(to_json(hosts)) == hosts
    with pytest.raises(ValueError):
        results_from_json('{"schema": "other"}')


def test_control_characters_from_node_logs_reach_neither_xml_nor_terminal():
    """A coloured ERROR line from a runner log (and worse: NUL, a bell, an OSC title sequence)."""
    line = "\x1b[31mERROR\x1b[0m: CUDA out of memory\x00\x07 \x1b]0;pwned\x07done\x9b"
    causes = (Cause("cuda-oom", line, "fix\x1b[2J"),)
    check = Check("n1", "runner logs", "fail", f"1 cause {line}", causes=causes)
    result = HostResult("n1", ("g",), (check,))
    root = ET.fromstring(to_junit([result]))  # well-formed XML 1.0
    text = root.find("testsuite/testcase/failure").text
    assert "ERROR: CUDA out of memory done" in text and "\x1b" not in text and "\x00" not in text
    table = to_table([result])
    assert not any(ch in table for ch in "\x1b\x00\x07\x9b") and "ERROR: CUDA out of memory" in table
