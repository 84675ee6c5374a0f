"""The ai-runner stand-in against an in-process sandbox hub: online first like diffusers 0.31.0 /
huggingface_hub 0.23.2 (refs/main moved to the hub's commit, that commit downloaded:
_snapshot_download.py:258-262), HF_HUB_OFFLINE honoured (constants.py:117), and vLLM's first-folder lookup
(ai-runner v0.14.1 pipelines/llm.py:326-334)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lpfleet.sandbox.hub import HubControl, HubServer

STANDIN = Path(__file__).resolve().parents[2] / "lpfleet" / "sandbox" / "images" / "livepeer-standin"
MODEL = "lpfleet-sandbox/tiny-model"
FOLDER = "models--lpfleet-sandbox--tiny-model"


def start(
    cache: Path, endpoint: str | None, pipeline: str = "image-to-text", model: str = MODEL, **env: str
) -> str:
    """Run the runner until it is up (or fails); its log."""
    full = {
        **os.environ,
        "PYTHONPATH": str(STANDIN),
        "PIPELINE": pipeline,
        "MODEL_ID": model,
        "HUGGINGFACE_HUB_CACHE": str(cache),
        "LPSTANDIN_LOAD_S": "0",
        "PORT": "0",
        **env,
    }
    full.pop("HF_HUB_OFFLINE", None) if "HF_HUB_OFFLINE" not in env else None
    if endpoint:
        full["HF_ENDPOINT"] = endpoint
    proc = subprocess.Popen(
        [sys.executable, "-m", "lpstandin.airunner"],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        lines.append(line)
        if "Uvicorn running" in line:
            proc.send_signal(signal.SIGTERM)
            break
    proc.communicate(timeout=20)
    return "".join(lines)


def loaded_from(log: str) -> str:
    line = next(x for x in log.splitlines() if "message=Loading " in x)
    return line.split(" from ", 1)[1].split()[0]


@pytest.fixture
def hub():
    with HubServer() as server:
        yield server


def test_online_runner_follows_the_hubs_main_and_offline_keeps_the_cache(hub, tmp_path):
    cache = tmp_path / "models"
    first = start(cache, hub.url)
    commit0 = (cache / FOLDER / "refs" / "main").read_text()
    assert loaded_from(first).endswith(f"/snapshots/{commit0}")
    moved = HubControl(hub.url).bump(MODEL)  # main moves on the hub after the weights were fetched

    pinned = start(cache, hub.url, HF_HUB_OFFLINE="1")
    assert loaded_from(pinned).endswith(f"/snapshots/{commit0}")
    assert "offline mode is enabled" in pinned and (cache / FOLDER / "refs" / "main").read_text() == commit0
    assert sorted(os.listdir(cache / FOLDER / "snapshots")) == [commit0]

    online = start(cache, hub.url)  # the runner's default environment: online first
    assert (cache / FOLDER / "refs" / "main").read_text() == moved
    assert loaded_from(online).endswith(f"/snapshots/{moved}")
    assert sorted(os.listdir(cache / FOLDER / "snapshots")) == sorted([commit0, moved])


def test_unreachable_hub_falls_back_to_the_cache_with_diffusers_warning(hub, tmp_path):
    cache = tmp_path / "models"
    start(cache, hub.url)
    log = start(cache, "http://127.0.0.1:9")  # nothing listens there
    assert "Couldn't connect to the Hub" in log and "Will try to load from local cache." in log  # DF :1284
    assert "Started up with pipeline=ImageToTextPipeline" in log


def test_llm_takes_the_first_folder_with_weights_whatever_refs_main_says(hub, tmp_path):
    cache = tmp_path / "models"
    start(cache, hub.url)
    repo = cache / FOLDER
    commit0 = (repo / "refs" / "main").read_text()
    HubControl(hub.url).bump(MODEL)
    start(cache, hub.url)  # a second snapshot
    (repo / "refs" / "main").write_text(commit0)
    log = start(cache, None, pipeline="llm", HF_HUB_OFFLINE="1")
    expected = next(
        root for root, _d, files in os.walk(repo) if any(f.endswith((".bin", ".safetensors")) for f in files)
    )
    assert loaded_from(log) == expected  # os.walk order, not refs/main
    shutil.rmtree(repo)
    log = start(cache, None, pipeline="llm")
    assert f"FileNotFoundError: [Errno 2] No such file or directory: '{repo}'" in log  # AR llm.py:328


def prepare(cache: Path) -> subprocess.CompletedProcess:
    """The stand-in as dl_checkpoints.sh runs a live image: PREPARE_MODELS=1, no PIPELINE/MODEL_ID."""
    env = {k: v for k, v in os.environ.items() if k not in ("PIPELINE", "MODEL_ID")}
    env.update(PYTHONPATH=str(STANDIN), HUGGINGFACE_HUB_CACHE=str(cache), PREPARE_MODELS="1")
    return subprocess.run([sys.executable, "-m", "lpstandin.airunner"], env=env, capture_output=True, text=True,
                          timeout=30)


def test_prepare_mode_fills_the_engines_folder_and_exits_0(tmp_path):
    cache = tmp_path / "models"
    refused = prepare(cache)
    # live/streamdiffusion/pipeline/prepare.py:120-121: raise ValueError(f"Engines dir ({ENGINES_DIR}) does not exist")
    assert refused.returncode == 1 and "Engines dir (engines) does not exist" in refused.stderr
    (cache / "StreamDiffusion--engines").mkdir(parents=True)
    (cache / "StreamDiffusion--models").mkdir()
    done = prepare(cache)
    assert done.returncode == 0, done.stderr
    assert "message=Model preparation complete" in done.stderr  # runner/src/runner/app.py:104
    assert "Uvicorn running" not in done.stderr
    assert any((cache / "StreamDiffusion--engines").rglob("*.engine"))


def test_live_streamdiffusion_without_engines_reports_the_pipeline_load_error(tmp_path):
    cache = tmp_path / "models"
    (cache / "StreamDiffusion--engines").mkdir(parents=True)
    log = start(cache, None, pipeline="live-video-to-video", model="streamdiffusion")
    assert "message=Error loading pipeline" in log  # runner/live/process/process.py:225
    assert "message=Process is not alive. Returning ERROR state" in log  # live/process/process_guardian.py:157
    (cache / "StreamDiffusion--engines" / "unet.engine").write_text("x")
    assert "Error loading pipeline" not in start(cache, None, pipeline="live-video-to-video", model="streamdiffusion")
