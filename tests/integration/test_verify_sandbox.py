"""Verification against the sandbox fleet: a healthy fleet is green with 0 changes; each planted fault is found
on the right host and explained.

Two rounds of faults keep the number of deploys small:
- on the deployed fleet as the sandbox group data describes it: a stopped worker (node 1) and missing weights
  (node 2); node 3 must stay green;
- with a faulty configuration (a one-off inventory beside inventories/sandbox.py overriding `ai_models` per
  host): node 1's warm model runs out of CUDA memory, node 3's fails to load and its external (BYOC) url goes
  down, node 2's aiModels.json is hand-edited to more warm models than it has GPU slots.
The module puts the fleet back as the group data describes it at the end.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
BYOC_TOKEN = "e2-byoc-token-" + uuid.uuid4().hex[:12]
OOM_MODEL = "lpfleet-sandbox/oom-model"
LOAD_FAIL_MODEL = "lpfleet-sandbox/load-fail-model"
BYOC_PORT = 9137


def run(args, env, timeout=900):
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def verify(sandbox, inventory=None, *extra):
    """`lpfleet verify` -> (exit code, {host: {check: check dict}}, stdout)."""
    report = ROOT / ".sandbox" / f"verify-{uuid.uuid4().hex[:8]}.json"
    try:
        result = run(
            [VENV_BIN / "lpfleet", "verify", inventory or sandbox.inventory, "--json", report, *extra],
            sandbox.env,
        )
        assert report.exists(), result.stdout + result.stderr
        doc = json.loads(report.read_text())
    finally:
        report.unlink(missing_ok=True)
    hosts = {h["host"]: {c["check"]: c for c in h["checks"]} for h in doc["hosts"]}
    return result.returncode, hosts, result.stdout + result.stderr


def changes(output: str) -> int:
    """Operations that changed something, from pyinfra's results ("Grand total  ops success error no-change")."""
    match = re.search(r"Grand total\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)", output)
    assert match, output[-3000:]
    return 0 if match.group(2) == "-" else int(match.group(2))


def failing(checks: dict) -> dict:
    return {name: c for name, c in checks.items() if c["state"] in ("fail", "unknown")}


def deploy(sandbox, inventory=None):
    result = run([VENV_BIN / "pyinfra", "-y", inventory or sandbox.inventory, "deploy.py"], sandbox.env)
    return result


def wait_healthy(sandbox, inventory=None, timeout=240):
    code, hosts, out = verify(sandbox, inventory, "--wait", str(timeout))
    assert code == 0, out
    return hosts


def roles(sandbox):
    """(consumer node A, the datacenter node, consumer node B): the datacenter node has two GPUs."""
    consumer = [n for n in sandbox.nodes if n.gpu_class == "consumer"]
    datacenter = [n for n in sandbox.nodes if n.gpu_class == "datacenter"]
    assert len(consumer) >= 2 and datacenter, "the sandbox's default 3 nodes: 2 consumer, 1 datacenter"
    return consumer[0], datacenter[0], consumer[1]


class EnvSecret:
    """Written into the generated inventory as `env_secret(NAME)` (a literal secret would be refused)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"env_secret({self.name!r})"


def fault_inventory(sandbox, overrides: dict[str, dict], tmp_lock: Path | None = None) -> Path:
    """A one-off inventory: the sandbox's hosts and groups, with host data overridden per host."""
    path = ROOT / "inventories" / f"_e2_faults_{uuid.uuid4().hex[:8]}.py"
    path.write_text(
        "from lpfleet.spec import env_secret\n"
        "import importlib.util as _u\n"
        f"_s = _u.spec_from_file_location('_sandbox_inventory', {str(ROOT / 'inventories' / 'sandbox.py')!r})\n"
        "_m = _u.module_from_spec(_s)\n_s.loader.exec_module(_m)\n"
        f"_over = {overrides!r}\n"
        + (f"_lock = {{'models_lock': {str(tmp_lock)!r}}}\n" if tmp_lock else "_lock = {}\n")
        + "def _with(hosts):\n"
        "    return [(n, {**d, **_lock, **_over.get(n, {})}) for n, d in hosts]\n"
        "sandbox_consumer = _with(_m.sandbox_consumer)\n"
        "sandbox_datacenter = _with(_m.sandbox_datacenter)\n"
        "sandbox = sandbox_consumer + sandbox_datacenter\n"
    )
    return path


@pytest.fixture(scope="module")
def fleet(sandbox):
    """The sandbox deployed as its group data describes it, verified healthy; restored at the end."""
    result = deploy(sandbox)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    wait_healthy(sandbox)
    yield sandbox
    final = deploy(sandbox)
    if final.returncode:  # shown in full under "Captured stdout teardown" (a teardown error's message is cut)
        print(final.stdout[-6000:], final.stderr[-3000:])
    assert final.returncode == 0, final.stdout[-4000:]
    wait_healthy(sandbox)


def test_healthy_fleet_is_green_with_zero_changes(fleet):
    code, hosts, out = verify(fleet)
    assert code == 0, out
    assert set(hosts) == {n.name for n in fleet.nodes}
    for name, checks in hosts.items():
        assert not failing(checks), (name, failing(checks))
        kinds = {c.split(" ")[0] for c in checks}
        assert {
            "gpus",
            "docker",
            "nvidia",
            "aiModels.json",
            "warm",
            "worker",
            "runner",
            "weights",
        } <= kinds, kinds
    assert f"verify: {len(fleet.nodes)} hosts: {len(fleet.nodes)} healthy" in out
    # read-only: pyinfra's own plan for verify.py has nothing to change on any host
    plan = run(
        [VENV_BIN / "pyinfra", "--dry", "--json", fleet.inventory, "verify.py"],
        {**fleet.env, "LPFLEET_VERIFY_TABLE": "0"},
    )
    ops = json.loads(plan.stdout)["plan"]
    assert ops and all(not op["hosts_with_change"] for op in ops), plan.stdout
    # and the plain pyinfra run: "No changes" on every host, the table after pyinfra's results
    direct = run([VENV_BIN / "pyinfra", "-y", fleet.inventory, "verify.py"], fleet.env)
    assert direct.returncode == 0 and changes(direct.stderr) == 0, direct.stderr[-3000:]
    assert direct.stderr.index("--> Verification:") > direct.stderr.index("--> Results:")


class GatewayStandIn:
    """A gateway's GET /getNetworkCapabilities on 127.0.0.1, built from what each orchestrator (the go-livepeer
    stand-in's /status on its node) advertises; capability ids are the gateway's own."""

    def __init__(self, orchestrators: dict[str, list[dict]]):
        pipelines = sorted({m["pipeline"] for models in orchestrators.values() for m in models})
        ids = {p: str(40 + i) for i, p in enumerate(pipelines)}  # not go-livepeer's 27...: names map them
        self.doc = {
            "capabilities_names": {ids[p]: p[:1].upper() + p[1:].replace("-", " ") for p in pipelines},
            "orchestrators": [],
        }
        for address, models in orchestrators.items():
            per_cap: dict = {}
            for m in models:
                info = {"capacity": 1, "runnerVersion": "sandbox", "capacityInUse": 0}
                if m["warm"]:
                    info["warm"] = True
                per_cap.setdefault(ids[m["pipeline"]], {"models": {}})["models"][m["model_id"]] = info
            self.doc["orchestrators"].append(
                {
                    "address": address,
                    "orch_uri": "https://127.0.0.1:8935",
                    "capabilities": {"constraints": {"PerCapability": per_cap}},
                }
            )
        doc = self.doc

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                body = json.dumps(doc).encode()
                self.send_response(200 if self.path == "/getNetworkCapabilities" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_gateway_sees_each_orchestrators_models_warm_or_cold(fleet):
    addresses, advertised = {}, {}
    for i, node in enumerate(fleet.nodes):
        rc, status = fleet.exec(node, "curl -s http://127.0.0.1:7935/status")
        assert rc == 0, status
        addresses[node.name] = f"0x{i + 1:040x}"
        advertised[addresses[node.name]] = [m for m in json.loads(status)["Models"] if not m.get("url")]
    n1 = roles(fleet)[0]
    cooled = next(m for m in advertised[addresses[n1.name]] if m["warm"])
    cooled["warm"] = False  # the gateway sees node 1's warm model as cold
    gateway = GatewayStandIn(advertised)
    overrides = {
        name: {"gateway_url": gateway.url, "orchestrator_address": address}
        for name, address in addresses.items()
    }
    inventory = fault_inventory(fleet, overrides)
    try:
        code, hosts, out = verify(fleet, str(inventory))
    finally:
        inventory.unlink(missing_ok=True)
        gateway.server.shutdown()
        gateway.server.server_close()
    assert code == 1, out
    check = hosts[n1.name][f"gateway {cooled['pipeline']} {cooled['model_id']}"]
    assert (
        check["state"] == "fail"
        and check["detail"].startswith("cold on")
        and "configured warm" in check["detail"]
    )
    for node in fleet.nodes:
        gateway_checks = {k: c for k, c in hosts[node.name].items() if k.startswith("gateway ")}
        assert gateway_checks, hosts[node.name].keys()
        if node.name != n1.name:
            assert all(c["state"] == "ok" for c in gateway_checks.values()), gateway_checks


@pytest.fixture(scope="module")
def node_faults(fleet):
    """Round 1: node 1's worker stopped, node 2's weights for a model removed."""
    n1, n2, n3 = roles(fleet)
    rc, models = fleet.exec(n2, "ls -d /root/.lpData/models/models--* | head -1")
    assert rc == 0 and models.strip(), models
    removed = models.strip()
    assert fleet.exec(n1, "docker stop livepeer_ai_worker")[0] == 0
    assert fleet.exec(n2, f"rm -rf {removed}")[0] == 0
    try:
        yield verify(fleet), removed
    finally:
        fleet.exec(n1, "docker start livepeer_ai_worker")
        result = deploy(fleet)  # the weights step fetches the removed model again
        if result.returncode:  # shown in full under "Captured stdout teardown"
            print(result.stdout[-6000:], result.stderr[-3000:])
        assert result.returncode == 0, result.stdout[-4000:]
        wait_healthy(fleet)


def test_stopped_worker_found_on_its_host(fleet, node_faults):
    (code, hosts, out), _ = node_faults
    n1, n2, n3 = roles(fleet)
    assert code == 1
    worker = hosts[n1.name]["worker livepeer_ai_worker"]
    assert worker["state"] == "fail" and worker["detail"].startswith("stopped"), worker
    assert "worker livepeer_ai_worker" not in failing(hosts[n2.name]) and not failing(hosts[n3.name])


def test_missing_weights_found_and_explained(fleet, node_faults):
    (code, hosts, out), removed = node_faults
    n1, n2, n3 = roles(fleet)
    model_id = removed.rsplit("models--", 1)[1].replace("--", "/", 1)
    check = hosts[n2.name][f"weights {model_id}"]
    assert check["state"] == "fail" and "absent" in check["detail"], check
    assert check["causes"][0]["cause"] == "weights-missing"
    assert f"weights {model_id}" not in failing(hosts[n1.name]) and not failing(hosts[n3.name])
    assert "weights-missing" in out  # the table shows the cause under the failing check


@pytest.fixture(scope="module")
def config_faults(fleet, node_faults, tmp_path_factory):
    """Round 2: a faulty configuration deployed, then the BYOC server switched unhealthy and node 2 hand-edited."""
    n1, n2, n3 = roles(fleet)
    byoc = f"e2-byoc-{uuid.uuid4().hex[:6]}"
    rc, out = fleet.exec(
        n3,
        f"docker run -d --name {byoc} --network host -e PORT={BYOC_PORT} "
        f"-e BYOC_TOKEN={BYOC_TOKEN} lpfleet-sandbox/byoc:latest",
    )
    assert rc == 0, out
    lock = tmp_path_factory.mktemp("e2") / "models.lock"
    # group data reads secrets from the controller's environment
    fleet.env["LPFLEET_E2_BYOC_TOKEN"] = BYOC_TOKEN
    overrides = {
        n1.name: {"ai_models": [{"pipeline": "text-to-image", "model_id": OOM_MODEL, "warm": True}]},
        n3.name: {
            "ai_models": [
                {"pipeline": "image-to-image", "model_id": LOAD_FAIL_MODEL, "warm": True},
                {
                    "pipeline": "llm",
                    "model_id": "sandbox/byoc-llm",
                    "url": f"http://127.0.0.1:{BYOC_PORT}",
                    "token": EnvSecret("LPFLEET_E2_BYOC_TOKEN"),
                    "capacity": 1,
                },
            ]
        },
    }
    inventory = fault_inventory(fleet, overrides, lock)
    try:
        locked = run([VENV_BIN / "lpfleet", "lock", inventory], fleet.env)
        assert locked.returncode == 0, locked.stdout + locked.stderr
        deployed = deploy(fleet, inventory)
        assert BYOC_TOKEN not in deployed.stdout + deployed.stderr
        # the BYOC server goes down after the worker started (at start go-livepeer would refuse to run)
        assert (
            fleet.exec(
                n3,
                f'curl -s -X POST -d \'{{"mode": "unhealthy"}}\' http://127.0.0.1:{BYOC_PORT}/_sandbox/mode',
            )[0]
            == 0
        )
        # node 2: three warm entries on two GPUs, by hand, and the worker restarted to read them
        rc, text = fleet.exec(n2, "cat /root/.lpData/aiModels.json")
        entries = json.loads(text)
        warm = [dict(e, warm=True) for e in entries if not e.get("url")][:1]
        hand = warm + [dict(warm[0], pipeline=p) for p in ("image-to-image", "upscale")]
        assert (
            fleet.exec(
                n2,
                f"printf '%s' '{json.dumps(hand)}' > /root/.lpData/aiModels.json && "
                "docker restart livepeer_ai_worker",
            )[0]
            == 0
        )
        time.sleep(8)  # runners crash (3 s load) and restart; the worker gives up on the third warm model
        yield verify(fleet, str(inventory), "--wait", "60")
    finally:
        inventory.unlink(missing_ok=True)
        fleet.exec(n3, f"docker rm -f {byoc}")
        # a worker stuck warming a broken model would hold the restore deploy's `docker stop` for its full
        # timeout: remove the broken ones (the restore deploy creates them again), and their runner containers:
        # the new worker removes leftovers at start (go-livepeer's RemoveExistingContainers) and exits when one
        # that is crash-looping cannot be removed, so its restart would make the restore deploy's verify fail
        for node in (n1, n2, n3):
            fleet.exec(node, "docker rm -f livepeer_ai_worker; "
                             "docker ps -aq --filter label=creator=ai-worker | xargs -r docker rm -f")


def test_runner_crashing_with_cuda_oom(fleet, config_faults):
    code, hosts, out = config_faults
    n1, _, _ = roles(fleet)
    runners = {
        k: c
        for k, c in hosts[n1.name].items()
        if k.startswith("runner ") and OOM_MODEL.replace("/", "-") in k
    }
    assert runners, hosts[n1.name].keys()
    (check,) = runners.values()
    assert check["state"] == "fail", check
    assert "restart" in check["detail"] or "stopped" in check["detail"], check
    assert [c["cause"] for c in check["causes"]] == ["cuda-oom"], check
    assert "CUDA out of memory" in check["causes"][0]["line"]


def test_runner_failing_to_load_its_model(fleet, config_faults):
    code, hosts, out = config_faults
    _, _, n3 = roles(fleet)
    runners = [c for k, c in hosts[n3.name].items() if k.startswith("runner ")]
    assert runners and all(c["state"] == "fail" for c in runners), runners
    causes = {x["cause"] for c in runners for x in c["causes"]}
    assert "model-load-failed" in causes, runners


def test_external_url_down(fleet, config_faults):
    code, hosts, out = config_faults
    _, _, n3 = roles(fleet)
    check = hosts[n3.name]["external llm sandbox/byoc-llm"]
    assert check["state"] == "fail" and "HTTP 503" in check["detail"], check
    assert check["causes"][0]["cause"] == "external-health-failed"
    assert BYOC_TOKEN not in out
    for other in roles(fleet)[:2]:
        assert not any(k.startswith("external") for k in hosts[other.name])


def test_warm_count_above_gpu_slots(fleet, config_faults):
    code, hosts, out = config_faults
    n1, n2, _ = roles(fleet)
    slots = hosts[n2.name]["warm slots"]
    assert slots["state"] == "fail" and slots["data"]["warm"] == 3 and slots["data"]["slots"] == 2, slots
    assert hosts[n2.name]["aiModels.json"]["state"] == "fail"  # the hand edit differs from the group data
    assert "warm slots" not in failing(hosts[n1.name])


def test_faults_exit_code_and_no_secret(fleet, config_faults):
    code, hosts, out = config_faults
    assert code == 1
    assert BYOC_TOKEN not in out and BYOC_TOKEN not in json.dumps(hosts)
