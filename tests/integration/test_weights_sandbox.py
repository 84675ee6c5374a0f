"""The weights step on the sandbox fleet: lock, fan-out and direct fetches, re-runs, repair, gated access, secrets.

Runs only the weights step (tests/integration/deploy_weights.py) so each deploy takes seconds; the module leaves
every node's models dir complete (as the sandbox group data describes it) and the hub without faults.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from lpfleet.lock import load
from lpfleet.sandbox.hub import HubControl
from lpfleet.sandbox.state import state_dir

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DEPLOY = "tests/integration/deploy_weights.py"
MODELS_DIR = "/root/.lpData/models"
RUNTIME_ROOT = "/opt/lpfleet/weights-runtime"


def run(args, env, timeout=600, **kwargs):
    return subprocess.run([str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def deploy(sandbox, *extra, env=None, inventory=None):
    return run([VENV_BIN / "pyinfra", "-y", inventory or sandbox.inventory, DEPLOY, *extra], {**sandbox.env, **(env or {})})


def changes(result) -> int:
    """Changed host-operations from pyinfra's results table ("Grand total" row: hosts, success, error, no change)."""
    for line in (result.stdout + result.stderr).splitlines():
        if line.strip().startswith("Grand total"):
            cols = line.split()
            return int(cols[3]) if cols[3] != "-" else 0
    raise AssertionError("no results table:\n" + result.stdout[-3000:] + result.stderr[-3000:])


def op_row(result, operation: str) -> tuple[int, int]:
    """(changed hosts, unchanged hosts) of one operation in pyinfra's results table."""
    for line in (result.stdout + result.stderr).splitlines():
        cols = line.split()[-4:]
        if operation in line and len(cols) == 4 and all(c == "-" or c.isdigit() for c in cols):
            success, no_change = (0 if c == "-" else int(c) for c in (cols[1], cols[3]))
            return success, no_change
    raise AssertionError(f"no row {operation!r} in:\n" + result.stderr[-3000:])


def lock_path(sandbox) -> Path:
    return state_dir(sandbox.name) / "models.lock"


def node_offline_load(sandbox, node, repo: str) -> tuple[int, str]:
    """huggingface_hub's own offline loader over a copy of the node's models dir (links, refs and all: what
    the runner reads). The node runtime carries no huggingface_hub any more, so it runs on the controller."""
    import tempfile

    from huggingface_hub import snapshot_download

    with tempfile.TemporaryDirectory() as tmp:
        copied = subprocess.run(["docker", "cp", f"{node.container}:{MODELS_DIR}", f"{tmp}/models"],
                                capture_output=True, text=True, timeout=300)
        if copied.returncode != 0:
            return copied.returncode, copied.stderr
        try:
            path = snapshot_download(repo, cache_dir=f"{tmp}/models", local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - the test reports what the loader said
            return 1, f"{type(exc).__name__}: {exc}"
        return 0, path.replace(f"{tmp}/models", MODELS_DIR) + "\n"


@pytest.fixture(scope="module")
def weights_fleet(sandbox):
    hub = HubControl(sandbox.hub_url)
    hub.reset()
    result = run([VENV_BIN / "lpfleet", "lock", sandbox.inventory], sandbox.env)
    assert result.returncode == 0, result.stdout + result.stderr
    yield sandbox
    hub.reset()
    final = deploy(sandbox)
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]


def wipe(sandbox) -> None:
    for node in sandbox.nodes:
        assert sandbox.exec(node, f"rm -rf {MODELS_DIR}")[0] == 0


def test_lock_is_current_and_not_rewritten(weights_fleet):
    path = lock_path(weights_fleet)
    before = path.stat().st_mtime_ns
    result = run([VENV_BIN / "lpfleet", "lock", weights_fleet.inventory], weights_fleet.env)
    assert result.returncode == 0 and "up to date" in result.stdout
    assert path.stat().st_mtime_ns == before
    lock = load(path.read_text())
    ids = {m.model_id for m in lock.models}
    assert "stabilityai/stable-diffusion-xl-base-1.0" in ids  # the extra model SDXL-Lightning loads
    assert next(m for m in lock.models if m.model_id.startswith("meta-llama/")).gated is True


def faulty_inventory(sandbox, overrides: dict, lock: Path) -> Path:
    path = ROOT / "inventories" / f"_c_weights_{uuid.uuid4().hex[:8]}.py"
    path.write_text(
        "import importlib.util as _u\n"
        f"_s = _u.spec_from_file_location('_sandbox_inventory', {str(ROOT / 'inventories' / 'sandbox.py')!r})\n"
        "_m = _u.module_from_spec(_s)\n_s.loader.exec_module(_m)\n"
        f"_over = {overrides!r}\n"
        "def _with(hosts):\n"
        f"    return [(n, {{**d, 'models_lock': {str(lock)!r}, **_over}}) for n, d in hosts]\n"
        "sandbox_consumer = _with(_m.sandbox_consumer)\n"
        "sandbox_datacenter = _with(_m.sandbox_datacenter)\n"
        "sandbox = sandbox_consumer + sandbox_datacenter\n"
    )
    return path


def test_lock_refuses_bad_models_before_any_node(weights_fleet, tmp_path):
    lock = tmp_path / "bad.lock"
    inventory = faulty_inventory(weights_fleet, {"ai_models": [
        {"pipeline": "image-to-text", "model_id": "LPFLEET-sandbox/Tiny-Model"},
        {"pipeline": "image-to-text", "model_id": "nobody/not-on-the-hub"},
        {"pipeline": "llm", "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct"},
    ]}, lock)
    try:
        result = run([VENV_BIN / "lpfleet", "lock", inventory],
                     {**weights_fleet.env, "LPFLEET_SANDBOX_HF_TOKEN": ""})
    finally:
        inventory.unlink()
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "LPFLEET-sandbox/Tiny-Model: differs from the hub's canonical id 'lpfleet-sandbox/tiny-model'" in out
    assert "nobody/not-on-the-hub: not found" in out
    assert "meta-llama/Meta-Llama-3.1-8B-Instruct: gated model and no token" in out
    assert "accepted the terms on the model's page" in out
    assert not lock.exists()


def test_lock_against_a_mirror_without_model_info(weights_fleet, tmp_path):
    hub = HubControl(weights_fleet.hub_url)
    hub.settings(mirror_only=True)
    lock = tmp_path / "mirror.lock"
    inventory = faulty_inventory(weights_fleet, {}, lock)
    try:
        result = run([VENV_BIN / "lpfleet", "lock", inventory], weights_fleet.env)
    finally:
        inventory.unlink()
        hub.settings(mirror_only=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not checked: model info" in result.stdout
    mirror, full = load(lock.read_text()), load(lock_path(weights_fleet).read_text())
    assert [(m.model_id, m.commit, m.files) for m in mirror.models] == [
        (m.model_id, m.commit, m.files) for m in full.models]


def test_fanout_pays_upstream_once_and_rerun_is_free(weights_fleet):
    sandbox = weights_fleet
    hub = HubControl(sandbox.hub_url)
    lock = load(lock_path(sandbox).read_text())
    wipe(sandbox)
    hub.add_fault("bandwidth", rate=20 * 1024 * 1024, on=["get"])  # a WAN-like link shared by the fleet
    hub.reset_counters()
    first = deploy(sandbox)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-3000:]
    upstream = hub.counters()["bytes_total"]
    assert upstream <= 1.05 * lock.unique_bytes, (upstream, lock.unique_bytes)
    for node in sandbox.nodes:
        rc, out = node_offline_load(sandbox, node, "ByteDance/SDXL-Lightning" if node.gpu_class == "consumer"
                                    else "meta-llama/Meta-Llama-3.1-8B-Instruct")
        assert rc == 0 and "/snapshots/" in out, out
    # consumer nodes share their models: one fetched them upstream and forwarded them, the next copied them
    consumers = [n for n in sandbox.nodes if n.gpu_class == "consumer"]
    if len(consumers) > 1:
        assert op_row(first, "serve peers")[0] >= 1
        assert op_row(first, "Weights: fetch")[0] == len(sandbox.nodes)
    hub.reset_counters()
    second = deploy(sandbox)
    assert second.returncode == 0, second.stdout[-3000:]
    assert changes(second) == 0
    assert hub.counters()["bytes_total"] == 0 and hub.counters()["requests"]["total"] == 0


def test_repair_corrupted_and_missing_blobs(weights_fleet):
    sandbox = weights_fleet
    hub = HubControl(sandbox.hub_url)
    consumers = [n for n in sandbox.nodes if n.gpu_class == "consumer"]
    target = consumers[-1]
    rc, blob = sandbox.exec(target, f"readlink -f {MODELS_DIR}/models--ByteDance--SDXL-Lightning/snapshots/*/"
                                    "sdxl_lightning_4step_unet.safetensors")
    assert rc == 0, blob
    # same size, other content: only its hash can tell
    assert sandbox.exec(target, f"printf 'XXXX' | dd of={blob.strip()} bs=1 seek=100 conv=notrunc 2>/dev/null")[0] == 0
    other = sandbox.nodes[0]
    assert sandbox.exec(other, f"rm -f $(readlink -f {MODELS_DIR}/models--*/snapshots/*/config.json | head -1)")[0] == 0
    hub.reset_counters()
    result = deploy(sandbox)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert changes(result) > 0
    again = deploy(sandbox)
    assert changes(again) == 0, again.stdout[-3000:]
    rc, _ = sandbox.exec(target, f"cd {MODELS_DIR}/models--ByteDance--SDXL-Lightning/snapshots/*/ && "
                                 "sha256sum -c /dev/stdin <<EOF\n"
                                 + "\n".join(f"{f.sha256}  {f.path}" for f in load(lock_path(sandbox).read_text()).get(
                                     "ByteDance/SDXL-Lightning", "main").files) + "\nEOF")
    assert rc == 0


def test_gated_model_without_token_fails_that_host_with_the_fix(weights_fleet):
    sandbox = weights_fleet
    datacenter = next(n for n in sandbox.nodes if n.gpu_class == "datacenter")
    assert sandbox.exec(datacenter, f"rm -rf {MODELS_DIR}/models--meta-llama--Meta-Llama-3.1-8B-Instruct")[0] == 0
    result = deploy(sandbox, env={"LPFLEET_SANDBOX_HF_TOKEN": ""})
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "gated model and no token" in out and "LPFLEET_SANDBOX_HF_TOKEN" in out
    rc, _ = sandbox.exec(datacenter, f"test -e {MODELS_DIR}/models--meta-llama--Meta-Llama-3.1-8B-Instruct/refs/main")
    assert rc != 0  # never marked complete
    ok = deploy(sandbox)
    assert ok.returncode == 0, ok.stdout[-3000:]


def test_token_stays_out_of_output_and_process_lists(weights_fleet):
    """The HF token reaches the node on stdin: not in pyinfra's output (even -vvv), not in any `ps` line."""
    sandbox = weights_fleet
    token = sandbox.hub.token
    assert token
    datacenter = next(n for n in sandbox.nodes if n.gpu_class == "datacenter")
    assert sandbox.exec(datacenter, f"rm -rf {MODELS_DIR}/models--meta-llama--Meta-Llama-3.1-8B-Instruct")[0] == 0
    hub = HubControl(sandbox.hub_url)
    hub.add_fault("bandwidth", rate=64 * 1024, repo="meta-llama/Meta-Llama-3.1-8B-Instruct")  # ~15 s to fetch
    seen: list[str] = []
    stop = threading.Event()

    def watch_ps() -> None:
        while not stop.is_set():
            rc, out = sandbox.exec(datacenter, "ps -eo args; for p in $(pgrep -f lpfleet.commands.prefetch); "
                                               "do tr '\\0' '\\n' < /proc/$p/environ; done")
            if rc == 0:
                seen.append(out)
            time.sleep(0.3)

    watcher = threading.Thread(target=watch_ps, daemon=True)
    watcher.start()
    try:
        result = deploy(sandbox, "-vvv")
    finally:
        stop.set()
        watcher.join()
        hub.clear_faults()
    assert result.returncode == 0, result.stdout[-3000:]
    assert any("lpfleet.commands.prefetch" in snap for snap in seen), "the fetch was never seen running"
    assert not any(token in snap for snap in seen)
    assert any("PYTHONPATH=/opt/lpfleet/weights-runtime" in snap for snap in seen)  # its environment was read
    assert token not in result.stdout + result.stderr


def test_direct_mode_each_node_from_the_hub(weights_fleet):
    sandbox = weights_fleet
    hub = HubControl(sandbox.hub_url)
    wipe(sandbox)
    hub.reset_counters()
    result = deploy(sandbox, "--data", "weights_mode=direct")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    direct_bytes = hub.counters()["bytes_total"]
    lock = load(lock_path(sandbox).read_text())
    consumers = [n for n in sandbox.nodes if n.gpu_class == "consumer"]
    if len(consumers) > 1:
        assert direct_bytes > 1.05 * lock.unique_bytes  # shared models crossed the WAN once per node
    again = deploy(sandbox, "--data", "weights_mode=direct")
    assert changes(again) == 0


def test_disk_space_is_checked_before_downloading(weights_fleet, tmp_path):
    """A models dir on a 4 MiB filesystem: the 17 MB model is refused up front, nothing fetched."""
    from lpfleet.operations.weights import runtime_bundle

    sandbox = weights_fleet
    hub = HubControl(sandbox.hub_url)
    hub.reset_counters()
    bundle = runtime_bundle()
    plan = {"endpoint": sandbox.hub_node_url, "token": None, "branch": "main",
            "models": [m.to_dict() for m in load(lock_path(sandbox).read_text()).models
                       if m.model_id == "openai/whisper-large-v3"]}
    result = run(["docker", "run", "--rm", "-i", "--network", sandbox.state.network, "--tmpfs", "/models:size=4m",
                  "-v", f"{bundle.path}:/rt.tgz:ro", "lpfleet-sandbox/python:bookworm", "sh", "-c",
                  "mkdir /rt && tar -xzf /rt.tgz -C /rt && PYTHONPATH=/rt HF_HUB_DISABLE_TELEMETRY=1 "
                  "python3 -m lpfleet.commands.prefetch --plan-stdin --models-dir /models"],
                 sandbox.env, input=json.dumps(plan), timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not enough disk space" in result.stderr
    assert hub.counters()["bytes_by_repo"].get("openai/whisper-large-v3", 0) == 0


def test_missing_or_stale_lock_stops_before_any_change(weights_fleet, tmp_path):
    from lpfleet.lock import ModelsLock, dump

    missing = deploy(weights_fleet, "--data", f"models_lock={tmp_path / 'none.lock'}")
    assert missing.returncode == 1 and "not found; run `lpfleet lock`" in missing.stderr
    full = load(lock_path(weights_fleet).read_text())
    stale = tmp_path / "stale.lock"
    stale.write_text(dump(ModelsLock(tuple(m for m in full.models if m.model_id != "openai/whisper-large-v3"))))
    result = deploy(weights_fleet, "--data", f"models_lock={stale}")
    assert result.returncode == 1
    assert "does not cover openai/whisper-large-v3 (main); run `lpfleet lock`" in result.stderr
    assert "Starting operation" not in result.stdout + result.stderr  # stopped while preparing: nothing ran


def test_a_chain_peer_still_busy_with_an_earlier_model_makes_the_next_node_wait_not_fail(weights_fleet, tmp_path):
    """Consumers need a 200 MB model and the tiny one, the datacenter node only the tiny one. Every node fetches in
    one order (the 200 MB model first), so the datacenter node, behind a consumer in the tiny model's chain, asks
    its peer for a file that peer has not started: the peer's mirror says "not arrived yet" (503) and it asks again until the
    bytes come, within the deadline the models before allow. Upstream stays one copy; nothing fails."""
    sandbox = weights_fleet
    big = {"pipeline": "image-to-text", "model_id": "lpfleet-sandbox/bench-weights"}
    tiny = {"pipeline": "image-to-text", "model_id": "lpfleet-sandbox/tiny-model"}
    lock = tmp_path / "chain.lock"
    inventory = ROOT / "inventories" / f"_c_chain_{uuid.uuid4().hex[:8]}.py"
    inventory.write_text(
        "import importlib.util as _u\n"
        f"_s = _u.spec_from_file_location('_sandbox_inventory', {str(ROOT / 'inventories' / 'sandbox.py')!r})\n"
        "_m = _u.module_from_spec(_s)\n_s.loader.exec_module(_m)\n"
        "def _with(hosts, models):\n"
        f"    return [(n, {{**d, 'models_lock': {str(lock)!r}, 'ai_models': models}}) for n, d in hosts]\n"
        f"sandbox_consumer = _with(_m.sandbox_consumer, {[big, tiny]!r})\n"
        f"sandbox_datacenter = _with(_m.sandbox_datacenter, {[tiny]!r})\n"
        "sandbox = sandbox_consumer + sandbox_datacenter\n"
    )
    hub = HubControl(sandbox.hub_url)
    folders = "models--lpfleet-sandbox--bench-weights models--lpfleet-sandbox--tiny-model"
    log = "/var/log/lpfleet-weights-mirror.log"
    try:
        locked = run([VENV_BIN / "lpfleet", "lock", inventory], sandbox.env, timeout=300)
        assert locked.returncode == 0, locked.stdout + locked.stderr
        unique = load(lock.read_text()).unique_bytes
        for node in sandbox.nodes:
            sandbox.exec(node, f"cd {MODELS_DIR} 2>/dev/null && rm -rf {folders}; : > {log}")
        hub.add_fault("bandwidth", rate=10 * 1024 * 1024, on=["get"])  # ~20 s for the 200 MB model
        hub.reset_counters()
        first = deploy(sandbox, inventory=inventory)
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-4000:]
        assert hub.counters()["bytes_total"] <= 1.02 * unique
        chain = sorted(sandbox.nodes, key=lambda n: n.name)  # the tiny model's chain: every node, by name
        datacenter = next(i for i, n in enumerate(chain) if n.gpu_class == "datacenter")
        assert datacenter > 0 and chain[datacenter - 1].gpu_class == "consumer", [n.name for n in chain]
        rc, out = sandbox.exec(chain[datacenter - 1], f"cat {log}")  # the datacenter node's peer
        assert " 503 " in out, out[-2000:]  # it said "not arrived yet" at least once ...
        for node in sandbox.nodes:  # ... and everyone has the tiny model complete
            rc, ref = sandbox.exec(node, f"cat {MODELS_DIR}/models--lpfleet-sandbox--tiny-model/refs/main")
            assert rc == 0 and len(ref.strip()) == 40, (node.name, ref)
        hub.reset_counters()
        again = deploy(sandbox, inventory=inventory)
        assert again.returncode == 0 and changes(again) == 0 and hub.counters()["bytes_total"] == 0
    finally:
        inventory.unlink(missing_ok=True)
        hub.clear_faults()
        for node in sandbox.nodes:
            sandbox.exec(node, f"cd {MODELS_DIR} 2>/dev/null && rm -rf {folders}")
