"""`lpfleet prefetch` (the real CLI, huggingface_hub unmodified) against the sandbox hub on 127.0.0.1.

No sandbox nodes needed: the hub runs in this process (`HubServer`), the CLI in a subprocess. Every fault ends in
a verified complete cache after a retry, or in a clear failure with no `refs/main` (nothing claims completeness).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lpfleet.sandbox.hub import HubControl, HubServer

TOKEN = "prefetch-test-token-4242"
TINY = "lpfleet-sandbox/tiny-model"
TINY_DIR = "models--lpfleet-sandbox--tiny-model"
SAM = "facebook/sam2-hiera-large"
GATED = "meta-llama/Meta-Llama-3.1-8B-Instruct"
LPFLEET = Path(sys.executable).parent / "lpfleet"


@pytest.fixture(scope="module")
def server():
    with HubServer(token=TOKEN) as srv:
        yield srv


@pytest.fixture
def hub(server):
    control = HubControl(server.url)
    control.reset()
    yield control
    control.reset()


def prefetch(server, models_dir: Path, *args: str, token: str | None = None, timeout: float = 120,
             env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": server.url, "HF_HOME": str(models_dir.parent / "hf-home"),
                "HF_HUB_DOWNLOAD_TIMEOUT": "2", "HF_HUB_ETAG_TIMEOUT": "2", **(env_extra or {})})
    if token:
        env["HF_TOKEN"] = token
    return subprocess.run([str(LPFLEET), "prefetch", *args, "--models-dir", str(models_dir), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=timeout)


def offline_snapshot(models_dir: Path, repo: str) -> Path:
    """What ai-runner does: huggingface_hub's own offline load of revision main."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo, cache_dir=str(models_dir), local_files_only=True))


def assert_verified_complete(server, models_dir: Path, repo: str) -> None:
    snapshot = offline_snapshot(models_dir, repo)
    (served,) = HubControl(server.url).models(files=True, repo=repo)
    assert snapshot.name == served["sha"]
    for f in served["files"]:
        path = snapshot / f["path"]
        assert path.is_symlink() and not os.path.isabs(os.readlink(path)), f["path"]
        data = path.read_bytes()
        if f["lfs"]:
            assert hashlib.sha256(data).hexdigest() == f["etag"], f["path"]
        else:
            assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == f["etag"], f["path"]


def assert_not_complete(models_dir: Path, folder: str = TINY_DIR) -> None:
    assert not (models_dir / folder / "refs" / "main").exists()


def test_fetch_verify_and_rerun_without_any_request(server, hub, tmp_path):
    models = tmp_path / "models"
    first = prefetch(server, models, TINY)
    assert first.returncode == 0, first.stderr
    assert_verified_complete(server, models, TINY)
    hub.reset_counters()
    again = prefetch(server, models, TINY)
    assert again.returncode == 0 and "already complete" in again.stdout
    counters = hub.counters()
    assert counters["requests"]["total"] == 0 and counters["bytes_total"] == 0  # no network at all


def test_catalog_patterns_select_files_and_offline_loader_accepts(server, hub, tmp_path):
    models = tmp_path / "models"
    result = prefetch(server, models, SAM)
    assert result.returncode == 0, result.stderr
    snapshot = offline_snapshot(models, SAM)
    assert sorted(p.name for p in snapshot.iterdir()) == ["sam2_hiera_l.yaml", "sam2_hiera_large.pt"]
    assert not (snapshot / "README.md").exists()  # "*.pt *.yaml" only


def test_pinned_commit_still_writes_refs_main(server, hub, tmp_path):
    old_sha = hub.models(files=True, repo=TINY)[0]["sha"]
    hub.bump(TINY)  # main moves on; we ask for the old commit
    models = tmp_path / "models"
    result = prefetch(server, models, TINY, "--revision", old_sha)
    assert result.returncode == 0, result.stderr
    assert (models / TINY_DIR / "refs" / "main").read_text() == old_sha
    assert offline_snapshot(models, TINY).name == old_sha


def test_gated_without_token_fails_with_the_fix_and_works_with_it(server, hub, tmp_path):
    models = tmp_path / "models"
    result = prefetch(server, models, GATED)
    assert result.returncode == 1
    assert "gated model and no token" in result.stderr and "set HF_TOKEN" in result.stderr
    wrong = prefetch(server, models, GATED, token="not-the-token")
    assert wrong.returncode == 1 and "accept the terms on the model's page" in wrong.stderr
    ok = prefetch(server, models, GATED, token=TOKEN)
    assert ok.returncode == 0, ok.stderr
    assert TOKEN not in ok.stdout + ok.stderr + wrong.stdout + wrong.stderr


def test_wrong_case_and_unknown_ids_fail_clearly(server, hub, tmp_path):
    models = tmp_path / "models"
    result = prefetch(server, models, "LPFLEET-sandbox/Tiny-Model")
    assert result.returncode == 1 and "canonical id 'lpfleet-sandbox/tiny-model'" in result.stderr
    assert not list(models.glob("models--*"))  # nothing written under the wrong name
    result = prefetch(server, models, "nobody/no-such-model")
    assert result.returncode == 1 and "not found" in result.stderr


def test_fault_5xx_once_then_verified_complete(server, hub, tmp_path):
    hub.add_fault("error", status=503, repo=TINY, path="model.safetensors", times=1)
    models = tmp_path / "models"
    result = prefetch(server, models, TINY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_verified_complete(server, models, TINY)


def test_fault_5xx_forever_is_a_clear_failure_and_no_ref(server, hub, tmp_path):
    hub.add_fault("error", status=500, repo=TINY, path="model.safetensors")
    models = tmp_path / "models"
    result = prefetch(server, models, TINY)
    assert result.returncode == 1
    assert "still not verified" in result.stderr and "refs/main not written" in result.stderr
    assert_not_complete(models)


def test_fault_stall_then_verified_complete(server, hub, tmp_path):
    hub.add_fault("stall", repo=TINY, path="model.safetensors", seconds=10, after_bytes=4096, times=1)
    models = tmp_path / "models"
    started = time.monotonic()
    result = prefetch(server, models, TINY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert time.monotonic() - started < 30
    assert_verified_complete(server, models, TINY)


def test_fault_truncated_body_then_verified_complete(server, hub, tmp_path):
    hub.add_fault("truncate", repo=TINY, path="model.safetensors", after_bytes=10000, times=1)
    models = tmp_path / "models"
    result = prefetch(server, models, TINY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert_verified_complete(server, models, TINY)


def test_fault_wrong_bytes_caught_by_hash_and_fetched_again(server, hub, tmp_path):
    hub.add_fault("wrong-bytes", repo=TINY, path="model.safetensors", times=1)
    models = tmp_path / "models"
    result = prefetch(server, models, TINY)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "does not match" in result.stdout  # the library accepted it (right size); our hash did not
    assert_verified_complete(server, models, TINY)
    assert hub.counters()["gets_by_file"][f"{TINY}/model.safetensors"] == 2


def test_fault_wrong_bytes_forever_never_claims_complete(server, hub, tmp_path):
    hub.add_fault("wrong-bytes", repo=TINY, path="model.safetensors")
    models = tmp_path / "models"
    result = prefetch(server, models, TINY)
    assert result.returncode == 1 and "still not verified" in result.stderr
    assert_not_complete(models)
    from huggingface_hub.errors import LocalEntryNotFoundError

    with pytest.raises(LocalEntryNotFoundError):
        offline_snapshot(models, TINY)


def test_interrupted_run_is_not_complete_and_next_run_finishes(server, hub, tmp_path):
    hub.add_fault("bandwidth", rate=16 * 1024, repo=TINY, path="model.safetensors")  # 64 KiB: about 4 s
    models = tmp_path / "models"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf-home")})
    proc = subprocess.Popen([str(LPFLEET), "prefetch", TINY, "--models-dir", str(models), "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not hub.counters()["bytes_by_file"].get(f"{TINY}/model.safetensors"):
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert_not_complete(models)
    hub.clear_faults()
    result = prefetch(server, models, TINY)
    assert result.returncode == 0, result.stderr
    assert_verified_complete(server, models, TINY)


def test_corrupted_blob_is_detected_and_repaired(server, hub, tmp_path):
    models = tmp_path / "models"
    assert prefetch(server, models, TINY).returncode == 0
    blob = (models / TINY_DIR / "snapshots").glob("*/model.safetensors").__next__().resolve()
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))  # same size, other content
    hub.reset_counters()
    result = prefetch(server, models, TINY)
    assert result.returncode == 0, result.stderr
    assert "does not match" in result.stdout
    assert hub.counters()["gets_by_file"] == {f"{TINY}/model.safetensors": 1}  # only the bad file again
    assert_verified_complete(server, models, TINY)


def test_deleted_blob_is_fetched_again(server, hub, tmp_path):
    models = tmp_path / "models"
    assert prefetch(server, models, TINY).returncode == 0
    next((models / TINY_DIR / "snapshots").glob("*/tokenizer.json")).resolve().unlink()
    hub.reset_counters()
    result = prefetch(server, models, TINY)
    assert result.returncode == 0, result.stderr
    assert hub.counters()["gets_by_file"] == {f"{TINY}/tokenizer.json": 1}
    assert_verified_complete(server, models, TINY)


def test_token_on_stdin_never_on_the_command_line(server, hub, tmp_path):
    models = tmp_path / "models"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": server.url, "HF_HOME": str(tmp_path / "hf-home")})
    result = subprocess.run([str(LPFLEET), "prefetch", GATED, "--models-dir", str(models), "--quiet",
                             "--token-stdin"], input=TOKEN + "\n", env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_node_mode_hashes_while_downloading(server, hub, tmp_path):
    """--plan-stdin (how nodes run it): the lock's files, hashed as their bytes arrive (same digests as reading
    them back), one JSON report line."""
    import json

    from lpfleet.hub import lock_model
    from lpfleet.lock import ModelRequest

    model = lock_model(ModelRequest(SAM, "main", ("*.pt", "*.yaml")), server.url, None)
    hub.add_fault("bandwidth", rate=512 * 1024, repo=SAM)  # 768 KiB: the hasher sees it arrive in pieces
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    plan = {"endpoint": server.url, "token": None, "branch": "main", "models": [model.to_dict()]}
    result = subprocess.run([sys.executable, "-m", "lpfleet.commands.prefetch", "--plan-stdin", "--models-dir",
                             str(tmp_path / "models")], input=json.dumps(plan), env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("@@lpfleet-weights "))
    report = json.loads(line.split(" ", 1)[1])
    assert report["errors"] == [] and report["models"][0]["fetched_files"] == 2
    assert report["models"][0]["hashed_while_downloading"] >= 1
    offline_snapshot(tmp_path / "models", SAM)


def test_runtime_bundle_runs_without_the_controllers_site_packages(server, hub, tmp_path):
    """The runtime shipped to nodes is self-contained: unpacked alone, run with `python -S` (stdlib only), it
    fetches and verifies; it carries no pyinfra, pydantic or docker."""
    import json
    import tarfile

    from lpfleet.hub import lock_model
    from lpfleet.lock import ModelRequest
    from lpfleet.operations.weights import runtime_bundle

    bundle = runtime_bundle()
    runtime = tmp_path / "runtime"
    with tarfile.open(bundle.path) as tar:
        names = tar.getnames()
        tar.extractall(runtime, filter="data")
    tops = {n.split("/", 1)[0] for n in names}
    assert {"lpfleet", "yaml"} <= tops
    assert not tops & {"pyinfra", "pydantic", "pydantic_core", "docker", "hf_xet", "huggingface_hub", "httpx2"}
    model = lock_model(ModelRequest(TINY, "main", None), server.url, None)
    plan = {"endpoint": server.url, "token": None, "branch": "main", "models": [model.to_dict()]}
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(runtime), "HF_HUB_DISABLE_TELEMETRY": "1",
           "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-S", "-m", "lpfleet.commands.prefetch", "--plan-stdin",
                             "--models-dir", str(tmp_path / "models")], input=json.dumps(plan), env=env,
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_verified_complete(server, tmp_path / "models", TINY)
