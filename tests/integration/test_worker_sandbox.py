"""The worker task on the sandbox fleet: go-livepeer (stand-in) started by deploy.py over SSH on every node.

- after a deploy, every node runs the runner containers lpfleet.runners computes for it: names, 127.0.0.1
  ports, labels, image, /models bind of the host models dir, restart policy, GPU device requests;
- a second deploy leaves the worker alone: "No changes" for its operation, same container id;
- a changed aiModels.json (one host's ai_models) and an orch secret recreate that host's worker only; the
  secret lands in a 0600 file and appears in no command line, container config or pyinfra output.
The module leaves the fleet deployed as the sandbox group data describes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from lpfleet import runners
from lpfleet.operations.worker import SPEC_LABEL

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WORKER = "livepeer_ai_worker"
SECRET = "e1-orch-secret-" + uuid.uuid4().hex


def run(args, env, timeout=900):
    return subprocess.run([str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def deploy(sandbox, inventory=None, *extra, env=None):
    result = run([VENV_BIN / "pyinfra", "-y", *extra, inventory or sandbox.inventory, "deploy.py"],
                 {**sandbox.env, **(env or {})})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return result


def sh(sandbox, node, command: str) -> str:
    rc, out = sandbox.exec(node, command)
    assert rc == 0, f"{command!r} on {node.name} exited {rc}: {out}"
    return out


def inspect(sandbox, node, *names: str) -> list[dict]:
    return json.loads(sh(sandbox, node, "docker inspect " + " ".join(names)))


def worker_of(sandbox, node) -> dict:
    return inspect(sandbox, node, WORKER)[0]


def runner_containers(sandbox, node) -> list[dict]:
    ids = sh(sandbox, node, "docker ps -aq --filter label=creator=ai-worker").split()
    return inspect(sandbox, node, *ids) if ids else []


def specs(sandbox, inventory=None, env=None):
    """Every host's spec; `env` adds controller variables (an inventory naming env_secret needs them set)."""
    saved = sandbox.env
    sandbox.env = {**saved, **(env or {})}
    try:
        return sandbox.specs(str(inventory) if inventory else None)
    finally:
        sandbox.env = saved


def wait_runners(sandbox, node, expected, timeout=120) -> list[dict]:
    """The node's runner containers once every expected one runs and answers /health OK."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        found = runner_containers(sandbox, node)
        names = {c["Name"].lstrip("/") for c in found if c["State"]["Running"]}
        if names == {r.name for r in expected}:
            health = [sandbox.exec(node, f"curl -s --max-time 3 127.0.0.1:{r.port}/health")[1] for r in expected]
            if all('"OK"' in h for h in health):
                return found
            last = str(health)
        else:
            last = str(names)
        time.sleep(2)
    raise AssertionError(f"{node.name}: runners not healthy in {timeout} s: {last}\n"
                         + sh(sandbox, node, f"docker logs --tail 30 {WORKER} 2>&1"))


@pytest.fixture(scope="module")
def deployed(sandbox):
    locked = run([VENV_BIN / "lpfleet", "lock", sandbox.inventory], sandbox.env)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    deploy(sandbox)
    yield sandbox
    deploy(sandbox)


def test_runners_as_go_livepeer_names_and_publishes_them(deployed):
    sandbox = deployed
    by_host = specs(sandbox)
    for node in sandbox.nodes:
        spec = by_host[node.name]
        expected = runners.expected_runners(spec)
        assert expected, f"{node.name}: the sandbox group data gives every node a warm model"
        found = {c["Name"].lstrip("/"): c for c in wait_runners(sandbox, node, expected)}
        for runner in expected:
            c = found[runner.name]
            assert c["Config"]["Labels"]["creator"] == "ai-worker"
            assert c["Config"]["Labels"]["creator_id"] == spec.worker.service_addr
            assert c["Config"]["Image"] == runner.image
            assert set(runner.env) <= set(c["Config"]["Env"])
            assert c["HostConfig"]["PortBindings"] == {
                "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(runner.port)}]}
            assert c["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
            assert [(m["Source"], m["Destination"]) for m in c["Mounts"]] == [(spec.models_dir, "/models")]
            [request] = c["HostConfig"]["DeviceRequests"]
            assert request["DeviceIDs"] == [str(runner.gpu)] and request["Capabilities"] == [["gpu"]]
        worker = worker_of(sandbox, node)
        assert worker["State"]["Running"]
        assert worker["HostConfig"]["NetworkMode"] == "host"
        assert "-nvidia" in worker["Args"]
        assert worker["Args"][worker["Args"].index("-nvidia") + 1] == ",".join(map(str, spec.gpus))


def test_second_deploy_leaves_the_worker_alone(deployed):
    sandbox = deployed
    before = {n.name: worker_of(sandbox, n)["Id"] for n in sandbox.nodes}
    started = {n.name: worker_of(sandbox, n)["State"]["StartedAt"] for n in sandbox.nodes}
    plan = run([VENV_BIN / "pyinfra", "--dry", "--json", sandbox.inventory, "deploy.py"],
               {**sandbox.env, "LPFLEET_VERIFY_TABLE": "0"})
    assert plan.returncode == 0, plan.stderr[-3000:]
    ops = [op for op in json.loads(plan.stdout)["plan"] if "Worker container" in json.dumps(op)]
    assert ops and all(not op["hosts_with_change"] for op in ops), ops
    deploy(sandbox)
    assert {n.name: worker_of(sandbox, n)["Id"] for n in sandbox.nodes} == before
    assert {n.name: worker_of(sandbox, n)["State"]["StartedAt"] for n in sandbox.nodes} == started


def one_off_inventory(overrides: dict[str, str]) -> Path:
    """The sandbox's hosts and groups with host data code (`key = expression`) overridden per host."""
    path = ROOT / "inventories" / f"_e1_worker_{uuid.uuid4().hex[:8]}.py"
    per_host = {name: "{" + ", ".join(f"{k!r}: {v}" for k, v in data.items()) + "}" for name, data in overrides.items()}
    path.write_text(
        "import importlib.util as _u\n"
        "from lpfleet.spec import env_secret\n"
        f"_s = _u.spec_from_file_location('_sandbox_inventory', {str(ROOT / 'inventories' / 'sandbox.py')!r})\n"
        "_m = _u.module_from_spec(_s)\n_s.loader.exec_module(_m)\n"
        "_over = {" + ", ".join(f"{k!r}: {v}" for k, v in per_host.items()) + "}\n"
        "def _with(hosts):\n"
        "    return [(n, {**d, **_over.get(n, {})}) for n, d in hosts]\n"
        "sandbox_consumer = _with(_m.sandbox_consumer)\n"
        "sandbox_datacenter = _with(_m.sandbox_datacenter)\n"
        "sandbox = sandbox_consumer + sandbox_datacenter\n"
    )
    return path


def test_changed_models_and_secret_recreate_that_worker_only(deployed):
    sandbox = deployed
    target = sandbox.nodes[0]
    spec = specs(sandbox)[target.name]
    warm_only = [e.to_json_dict() for e in spec.models if e.warm]
    assert len(warm_only) < len(spec.models), "the group data has a cold entry to drop"
    before = {n.name: worker_of(sandbox, n)["Id"] for n in sandbox.nodes}
    inventory = one_off_inventory({target.name: {"ai_models": repr(warm_only),
                                                  "orch_secret": "env_secret('E1_TEST_ORCH_SECRET')"}})
    try:
        result = deploy(sandbox, inventory, env={"E1_TEST_ORCH_SECRET": SECRET})
        after = {n.name: worker_of(sandbox, n) for n in sandbox.nodes}
        assert after[target.name]["Id"] != before[target.name]
        assert {n: w["Id"] for n, w in after.items() if n != target.name} == \
               {n: i for n, i in before.items() if n != target.name}
        models = json.loads(sh(sandbox, target, "cat /root/.lpData/aiModels.json"))
        assert models == warm_only
        new_spec = specs(sandbox, inventory, env={"E1_TEST_ORCH_SECRET": SECRET})[target.name]
        wait_runners(sandbox, target, runners.expected_runners(new_spec))

        # the secret: a 0600 file the flag names; not in any command line, container config or output
        worker = after[target.name]
        assert worker["Args"][worker["Args"].index("-orchSecret") + 1] == "/root/.lpData/.orchSecret"
        assert sh(sandbox, target, "stat -c %a /root/.lpData/.orchSecret").strip() == "600"
        assert sh(sandbox, target, "cat /root/.lpData/.orchSecret").strip() == SECRET
        assert SECRET not in json.dumps(worker)
        assert SECRET not in sh(sandbox, target, "ps -eo args")
        assert SECRET not in result.stdout + result.stderr
        assert SECRET not in sh(sandbox, target, f"docker logs {WORKER} 2>&1")
        assert worker["Config"]["Labels"][SPEC_LABEL] != before[target.name]

        again = deploy(sandbox, inventory, env={"E1_TEST_ORCH_SECRET": SECRET})
        assert worker_of(sandbox, target)["Id"] == worker["Id"]
        assert SECRET not in again.stdout + again.stderr
    finally:
        inventory.unlink(missing_ok=True)
    deploy(sandbox)
    assert worker_of(sandbox, target)["Id"] != after[target.name]["Id"]  # back to the group data's config
