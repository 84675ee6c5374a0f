"""The verification operation through pyinfra's API against `@fake` hosts answering the verify fact.

Checks: a healthy node is a no-op (0 changes), a broken one fails its host with a summary and no secret,
the node is asked once per run, and the end-of-run reports (JSON, JUnit) hold every targeted host.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops

from lpfleet.facts.verify import MARKER
from lpfleet.operations import verify as verify_ops
from lpfleet.operations.verify import final_results, node_verified
from tests.unit.test_verification import BYOC_TOKEN, ORCH_SECRET, RUNNERS, healthy_snapshot, make_spec


def answer(snapshot: dict) -> list[str]:
    return [MARKER + json.dumps(snapshot)]


def run(nodes: dict[str, dict], check_for_changes: bool = True):
    hosts = []
    for name, snapshot in nodes.items():
        responses = {"python3 -c": answer(snapshot), re.compile(r"exit 1$"): {"success": False}}
        hosts.append(
            (f"@fake/{name}", {"fake_responses": responses, "fake_delay": 0, "fake_delay_jitter": 0})
        )
    state = State(Inventory((hosts, {})), Config(), check_for_changes=check_for_changes)
    connect_all(state)

    def deploy_verify():
        from pyinfra import host

        spec = make_spec(host=host.name)
        node_verified(
            name="Verify the node (read-only)",
            spec=spec,
            runners=RUNNERS,
            weights=[],
            secrets=["hf_secret_token_0000"],
        )

    add_deploy(state, deploy_verify)
    try:
        run_ops(state)
    except PyinfraError as exc:
        if "No hosts remaining" not in str(exc):
            raise
    return state


def commands(state, name):
    return list(state.inventory.get_host(f"@fake/{name}").connector.executed_commands)


def test_healthy_node_is_no_change_and_asked_once():
    state = run({"node-1": healthy_snapshot()})
    host = state.inventory.get_host("@fake/node-1")
    assert host not in state.failed_hosts
    meta = next(iter(state.ops[host].values())).operation_meta
    assert meta.did_succeed() and not meta.did_change()
    # prepare + execute, but one question to the node: nothing ran in between
    assert sum("python3 -c" in c for c in commands(state, "node-1")) == 1
    (result,) = final_results(state)
    assert result.status == "healthy"


def test_with_yes_the_node_is_asked_at_execute_time_only():
    state = run({"node-1": healthy_snapshot()}, check_for_changes=False)
    assert sum("python3 -c" in c for c in commands(state, "node-1")) == 1
    assert final_results(state)[0].status == "healthy"


def test_broken_node_fails_its_host_only_with_a_summary_and_no_secret():
    broken = healthy_snapshot()
    broken["containers"][0].update(status="restarting", restarting=True, exit_code=1, restart_count=3)
    broken["logs"] = {
        RUNNERS[0].name: [
            f"token={BYOC_TOKEN} secret={ORCH_SECRET} hf=hf_secret_token_0000",
            "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB",
        ]
    }
    state = run({"node-1": healthy_snapshot(), "node-2": broken})
    failed = {h.name for h in state.failed_hosts}
    assert failed == {"@fake/node-2"}
    (failing,) = [c for c in commands(state, "node-2") if c.endswith("exit 1")]
    assert (
        "verification failed: runner text-to-image_SG161222-RealVisXL-V4.0-Lightning_8000: restart loop"
        in failing
    )
    results = {r.host: r for r in final_results(state)}
    assert results["@fake/node-2"].status == "problems"
    dumped = json.dumps([r.to_dict() for r in results.values()])
    for secret in (BYOC_TOKEN, ORCH_SECRET, "hf_secret_token_0000"):
        assert secret not in dumped and secret not in failing


def test_node_that_cannot_run_the_script_is_unchecked():
    hosts = [
        (
            "@fake/node-1",
            {
                "fake_responses": {
                    "python3 -c": ["@@no-python3"],
                    re.compile(r"exit 1$"): {"success": False},
                },
                "fake_delay": 0,
            },
        )
    ]
    state = State(Inventory((hosts, {})), Config(), check_for_changes=False)
    connect_all(state)
    add_deploy(
        state, lambda: node_verified(name="v", spec=make_spec(host="node-1"), runners=RUNNERS, weights=[])
    )
    with pytest.raises(PyinfraError):
        run_ops(state)
    (result,) = final_results(state)
    assert result.status == "unchecked" and "python3 not found" in result.checks[0].detail


def test_end_of_run_reports(tmp_path, monkeypatch, capsys):
    out_json, out_junit = tmp_path / "v.json", tmp_path / "v.xml"
    monkeypatch.setenv(verify_ops.ENV_JSON, str(out_json))
    monkeypatch.setenv(verify_ops.ENV_JUNIT, str(out_junit))
    broken = healthy_snapshot()
    broken["worker"] = None
    state = run({"node-1": healthy_snapshot(), "node-2": broken})
    disconnect_all(state)  # pyinfra's CLI does this after printing its results: the table follows
    err = capsys.readouterr().err
    assert "--> Verification:" in err
    assert "node-2  worker livepeer_ai_worker" in err
    assert (
        err.rstrip().splitlines()[-1].startswith("verify: 2 hosts: 1 healthy; 1 with problems (@fake/node-2)")
    )
    doc = json.loads(out_json.read_text())
    assert doc["exit_code"] == 1 and [h["host"] for h in doc["hosts"]] == ["@fake/node-1", "@fake/node-2"]
    suites = ET.fromstring(out_junit.read_text()).findall("testsuite")
    assert [s.attrib["failures"] for s in suites] == ["0", "1"]


# -- the gateway's view, fetched once per run from a gateway stand-in on 127.0.0.1 ---------------------------


def _gateway(doc: dict):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits = []

    class Gateway(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            body = json.dumps(doc).encode() if self.path == "/getNetworkCapabilities" else b"{}"
            self.send_response(200 if self.path == "/getNetworkCapabilities" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


def test_gateway_checks_come_from_one_fetch_per_run():
    from lpfleet.spec import VerifySpec
    from tests.unit.test_verification import gateway_doc

    doc = gateway_doc(include_a2t=False)
    doc["orchestrators"].append(dict(doc["orchestrators"][1], address="0xsecond"))
    server, hits = _gateway(doc)
    url = f"http://127.0.0.1:{server.server_address[1]}"
    addresses = {"node-1": "0xAbC0000000000000000000000000000000000001", "node-2": "0xsecond"}
    hosts = []
    for name in addresses:
        responses = {"python3 -c": answer(healthy_snapshot()), re.compile(r"exit 1$"): {"success": False}}
        hosts.append((f"@fake/{name}", {"fake_responses": responses, "fake_delay": 0}))
    state = State(Inventory((hosts, {})), Config(), check_for_changes=False)
    connect_all(state)

    def deploy_verify():
        from pyinfra import host

        name = host.name.removeprefix("@fake/")
        spec = make_spec(
            host=host.name,
            models=make_spec().models[:2],
            verify=VerifySpec(gateway_url=url, orchestrator_address=addresses[name]),
        )
        node_verified(name="v", spec=spec, runners=RUNNERS, weights=[])

    add_deploy(state, deploy_verify)
    try:
        with pytest.raises(PyinfraError, match="No hosts remaining"):  # both fail: a model is not advertised
            run_ops(state)
    finally:
        server.shutdown()
        server.server_close()
    assert hits == ["/getNetworkCapabilities"]  # one fetch for the whole run
    results = {r.host: {c.check: c for c in r.checks} for r in final_results(state)}
    for host in ("@fake/node-1", "@fake/node-2"):
        checks = results[host]
        assert checks["gateway text-to-image SG161222/RealVisXL_V4.0_Lightning"].state == "ok"
        assert checks["gateway audio-to-text openai/whisper-large-v3"].state == "fail"
    assert {h.name for h in state.failed_hosts} == {"@fake/node-1", "@fake/node-2"}
