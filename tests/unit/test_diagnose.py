"""lpfleet.diagnose: each cause from real log lines, and from the stand-ins' own output (run here as processes).

Real lines: go-livepeer (starter.go, ai/worker), ai-runner / torch / huggingface_hub messages and the Livepeer
docs' signatures (reference/livepeer.md, livepeer-model-hosting.txt). Stand-in output: the ai-runner and
go-livepeer stand-ins run with stdlib python3, against a temporary HF cache, with no Docker daemon.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lpfleet.cli import main as cli_main
from lpfleet.diagnose import CAUSES, classify_line, diagnose

STANDIN = Path(__file__).resolve().parents[2] / "lpfleet" / "sandbox" / "images" / "livepeer-standin"

# Each line is built from a string quoted from upstream code; the comment names its source. go-livepeer is
# livepeer/go-livepeer 176aa41, ai-runner is livepeer/ai-runner v0.14.1 (50a742c), which pins diffusers 0.31.0,
# transformers 4.43.3, huggingface_hub 0.23.2 and vLLM 0.6.5 (runner/pyproject.toml:27-47).
REAL_LINES = {
    "cuda-oom": [
        # torch.cuda.OutOfMemoryError (torch/csrc/utils ... "CUDA out of memory. Tried to allocate")
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity "
        "of 23.65 GiB of which 3.06 MiB is free.",
        "RuntimeError: CUDA error: out of memory",
        # ai-runner runner/src/runner/routes/utils.py:269-272 "GPU out of memory."
        '2024-07-01 10:00:00,000 - app.routes.util - ERROR - Out of memory error: {"detail": "GPU out of memory."}',
        # vLLM 0.6.5 vllm/worker/worker.py raise_if_cache_size_invalid
        "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
        "initializing the engine.",
        "ValueError: The model's max seq len (131072) is larger than the maximum number of tokens that can be stored "
        "in KV cache (60000). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
        "initializing the engine.",
    ],
    "model-load-failed": [
        # safetensors' SafetensorError for a truncated or corrupt header
        "safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge",
        # diffusers 0.31.0 utils/hub_utils.py:389
        "OSError: Can't load the model for 'org/name'. If you were trying to load it from "
        "'https://huggingface.co/models', make sure you don't have a local directory with the same name.",
        # diffusers 0.31.0 configuration_utils.py:436
        "OSError: It looks like the config file at '/models/models--org--name/snapshots/abc/model_index.json' is not "
        "a valid JSON file.",
    ],
    "model-lookup-failed": [
        # diffusers 0.31.0 utils/hub_utils.py:360 (transformers 4.43.3 utils/hub.py words it the same)
        "OSError: sg161222/realvisxl_v4.0_lightning is not a local folder and is not a valid model identifier listed "
        "on 'https://huggingface.co/models'",
        # huggingface_hub 0.23.2 utils/_errors.py:317-321 (GatedRepoError, "Cannot access gated repo for url")
        "huggingface_hub.utils._errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-abc)",
        "Cannot access gated repo for url https://huggingface.co/meta-llama/Meta-Llama-3.1-8B-Instruct/resolve/main/"
        "config.json.",
        # huggingface_hub 0.23.2 utils/_errors.py:344-347
        "huggingface_hub.utils._errors.RepositoryNotFoundError: 404 Client Error. (Request ID: Root=1-abc)",
        "Repository Not Found for url: https://huggingface.co/api/models/org/typo.",
    ],
    "weights-missing": [
        # diffusers 0.31.0 pipelines/pipeline_utils.py:1479-1483
        "OSError: Cannot load model SG161222/RealVisXL_V4.0_Lightning: model is not cached locally and an error "
        "occurred while trying to fetch metadata from the Hub. Please check out the root cause in the stacktrace "
        "above.",
        # diffusers 0.31.0 configuration_utils.py:416
        "OSError: We couldn't connect to 'https://huggingface.co' to load this model, couldn't find it in the cached "
        "files and it looks like stabilityai/sd-turbo is not the path to a directory containing a "
        "model_index.json file.",
        # huggingface_hub 0.23.2 _snapshot_download.py:220-224
        "huggingface_hub.utils._errors.LocalEntryNotFoundError: Cannot find an appropriate cached snapshot folder "
        "for the specified revision on the local disk and outgoing traffic has been disabled. To enable repo "
        "look-ups and downloads online, pass 'local_files_only=False' as input.",
        # diffusers 0.31.0 utils/hub_utils.py:310 "Error no file named"
        "OSError: Error no file named diffusion_pytorch_model.safetensors found in directory /models/x/unet.",
        # ai-runner runner/src/runner/pipelines/llm.py:71
        "ValueError: Could not find model files for meta-llama/Meta-Llama-3.1-8B-Instruct",
        # ai-runner runner/src/runner/pipelines/llm.py:328: os.listdir of a folder that is not there
        "FileNotFoundError: [Errno 2] No such file or directory: "
        "'/models/models--meta-llama--Meta-Llama-3.1-8B-Instruct'",
        # docker's error, wrapped by go-livepeer starter.go:1477 "Error AI worker warming %v container: %v"
        "E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming text-to-image container: invalid mount "
        'config for type "bind": bind source path does not exist: /root/.lpData/models',
    ],
    "runner-timeout": [
        # go-livepeer ai/worker/container.go:121 "timed out waiting for runner: %w"
        'E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming text-to-image container: timed out '
        'waiting for runner: Get "http://localhost:8000/health": dial tcp 127.0.0.1:8000: connect: connection refused',
        # container.go:129 "health check failed with status code %d"
        "E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming text-to-image container: timed out "
        "waiting for runner: health check failed with status code 500",
        # ai/worker/docker.go:616 and :707
        "2024/07/01 10:00:00 ERROR Container health check failed too many times container=text-to-image_a-b_8000",
        "2024/07/01 10:00:00 ERROR Container returned ERROR state, restarting immediately container=x status=ERROR",
        # docker.go:821 "container entered terminal state before running: %s (exitCode=%d)"
        "E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming llm container: container entered "
        "terminal state before running: exited (exitCode=1)",
        # container.go:131
        "E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming llm container: runner is in error state",
    ],
    "external-health-failed": [
        # container.go:121 wrapping the Go http client's error for an external url (not localhost)
        'E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming llm container: timed out waiting for '
        'runner: Get "http://ollama:11434/health": dial tcp 10.0.0.5:11434: connect: connection refused',
        'E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming text-to-image container: timed out '
        'waiting for runner: Get "https://byoc.example.com/health": context deadline exceeded',
        'E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming llm container: timed out waiting for '
        'runner: Get "http://127.0.0.1:9000/health": dial tcp 127.0.0.1:9000: connect: connection refused',
    ],
    "invalid-config": [
        # core/ai.go:46 "value is not a number: %s", starter.go:1345 "Error parsing -aiModels: %v"
        'E0101 00:00:00.000000       1 starter.go:1] Error parsing -aiModels: value is not a number: "0.5e-2USD"',
        # starter.go:1551
        "panic: 'pricePerUnit' must be set for model 'a/b' in pipeline 'text-to-image'",
        # starter.go:1448
        "panic: Pipeline is not valid capability: text-to-imag",
        # starter.go:1505
        "panic: Cannot have same model_id (a/b) as cold and warm in same AI worker, please fix aiModels json config",
        # core/ai.go:111
        "E0101 00:00:00.000000       1 starter.go:1] Error parsing -aiModels: invalid AI model config expected "
        "<pipeline>:<model_id>:<warm>",
        # encoding/json's UnmarshalTypeError
        "E0101 00:00:00.000000       1 starter.go:1] Error parsing -aiModels: json: cannot unmarshal number into Go "
        "value of type string",
        # ai/worker/docker.go:557 "insufficient capacity"
        "E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming image-to-image container: insufficient "
        "capacity",
        # Go's flag package
        "flag provided but not defined: -aiModel",
        # starter.go:1043 (capital E, -pricePerUnit) and :1568 with core/autoconvertedprice.go:69-71
        "panic: Error converting price: price feed does not have EUR as a currency (ETH/USD)",
        "panic: error converting price: price feed does not have EUR as a currency (ETH/USD)",
        # ai/worker/docker.go:283
        "E0101 00:00:00.000000       1 starter.go:1] Error AI worker warming live-video-to-video container: no "
        "container image found for live pipeline my-app",
    ],
    "no-gpu": [
        # starter.go:1360 (glog warning)
        "W0101 00:00:00.000000       1 starter.go:1] !!! No GPU discovered, using CPU for AIWorker !!!",
        'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].',
        "RuntimeError: Found no NVIDIA driver on your system.",
        # ai-runner runner/src/runner/pipelines/utils/utils.py:150-151 (a warning: the runner falls back to CPU)
        "2025-12-30 14:07:09,123 - runner.pipelines.utils - WARNING - Device 'cuda' not found. Defaulting to 'cpu'.",
    ],
}

CLEAN_LOG = """\
I0101 00:00:00.000000       1 livepeer.go:1] ***Livepeer is running on the offchain network***
2024/07/01 10:00:00 INFO Starting managed container gpu=0 name=text-to-image_a-b_8000 modelID=a/b containerImage=x
2024/07/01 10:00:04 INFO Watching container container=text-to-image_a-b_8000
W0101 00:00:00.000000       1 starter.go:1] No 'pricePerUnit' specified for model 'a/b' in pipeline 'upscale'.
INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)
2024-07-01 10:00:00 - app.main - INFO - Started up with pipeline=TextToImagePipeline model_id=a/b
"""


@pytest.mark.parametrize("cause,line", [(c, line) for c, lines in REAL_LINES.items() for line in lines])
def test_real_lines(cause, line):
    finding = classify_line(line)
    assert finding is not None and finding.cause == cause, line
    assert finding.hint
    assert [f.cause for f in diagnose(line)] == [cause]


def test_every_cause_is_covered_and_documented():
    assert set(REAL_LINES) | {"unknown"} == set(CAUSES)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "diagnose.md").read_text()
    for cause in CAUSES:
        assert f"`{cause}`" in doc


def test_clean_log_has_no_failure():
    assert diagnose(CLEAN_LOG) == []


# diffusers 0.31.0 pipelines/pipeline_utils.py:1284 logs this warning with huggingface_hub 0.23.2's GatedRepoError
# text (utils/_errors.py:317-321) inside it, then loads the model from the cache (a gated model such as svd-xt-1-1
# on a runner without a token).
GATED_BUT_CACHED = """\
Couldn't connect to the Hub: 401 Client Error. (Request ID: Root=1-6789)

Cannot access gated repo for url https://huggingface.co/api/models/stabilityai/stable-video-diffusion-img2vid-xt-1-1.
Access to model stabilityai/stable-video-diffusion-img2vid-xt-1-1 is restricted. You must be authenticated to access it..
Will try to load from local cache.
2025-12-30 14:07:30,001 INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)
"""


def test_gated_model_that_loads_from_the_cache_is_no_failure():
    assert diagnose(GATED_BUT_CACHED) == []


def test_gated_model_that_is_not_cached_is_a_failure():
    # pipeline_utils.py:1479-1483 raises "Cannot load model" from the GatedRepoError after the warning
    log = GATED_BUT_CACHED.replace(
        "2025-12-30 14:07:30,001 INFO:     Uvicorn running on http://0.0.0.0:8000 (Press CTRL+C to quit)",
        "huggingface_hub.utils._errors.GatedRepoError: 401 Client Error. (Request ID: Root=1-6789)\n"
        "OSError: Cannot load model stabilityai/stable-video-diffusion-img2vid-xt-1-1: model is not cached locally "
        "and an error occurred while trying to fetch metadata from the Hub. Please check out the root cause in the "
        "stacktrace above.")
    assert [f.cause for f in diagnose(log)] == ["model-lookup-failed", "weights-missing"]


@pytest.mark.parametrize("line", [
    # go-livepeer ai/worker/docker.go:693 (slog INFO) and starter.go:1555 (glog warning)
    "2024/07/01 10:00:00 INFO Container is loading, removing from pool container=x error=none",
    "W0101 00:00:00.000000       1 starter.go:1] No 'pricePerUnit' specified for model 'a/b' in pipeline 'upscale'. "
    "Using default value from `-pricePerUnit`: 10",
    # INFO lines that mention a failure word
    "I0101 00:00:00.000000       1 starter.go:1] Error AI worker warming was retried; runner is in error state no more",
    "2025-12-30 14:07:09,123 INFO:     GPU out of memory retry succeeded",
    "timestamp=2025-12-30T14:07:09 level=INFO location=x message=CUDA out of memory earlier, recovered",
    # a signature (container.go:131) on a warning line: only causes upstream logs as warnings count there
    "2024/07/01 10:00:00 WARN retrying after: runner is in error state",
    "2025-12-30 14:07:09,123 WARNING:  retrying after: Repository Not Found for url: https://huggingface.co/x.",
])
def test_info_and_warning_lines_are_no_failures(line):
    assert classify_line(line) is None


def test_unknown_error_lines_are_reported_not_guessed():
    found = diagnose("E0101 00:00:00.000000 1 x.go:1] Error setting up orchestrator: boom\n"
                     "ERROR:    Traceback (most recent call last):\nKeyError: 'x'\n"
                     "ERROR:    Application startup failed. Exiting.\n")
    assert [(f.cause, f.line) for f in found] == [
        ("unknown", "E0101 00:00:00.000000 1 x.go:1] Error setting up orchestrator: boom"),
        ("unknown", "KeyError: 'x'"),
    ]


def test_one_finding_per_cause_and_docker_timestamps():
    log = "\n".join(["2024-07-01T10:00:00.123456789Z " + REAL_LINES["cuda-oom"][0]] * 4)
    [finding] = diagnose(log)
    assert finding.cause == "cuda-oom" and finding.line.startswith("torch.cuda.OutOfMemoryError")


def test_cli_json_and_exit_codes(tmp_path, capsys):
    log = tmp_path / "runner.log"
    log.write_text(REAL_LINES["cuda-oom"][0] + "\n")
    assert cli_main(["diagnose", str(log), "--json"]) == 1
    assert [f["cause"] for f in json.loads(capsys.readouterr().out)] == ["cuda-oom"]
    clean = tmp_path / "clean.log"
    clean.write_text(CLEAN_LOG)
    assert cli_main(["diagnose", str(clean), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert cli_main(["diagnose", str(tmp_path / "missing.log")]) == 2


def test_cli_takes_several_files(tmp_path, capsys):
    oom, clean = tmp_path / "oom.log", tmp_path / "clean.log"
    oom.write_text(REAL_LINES["cuda-oom"][0] + "\n")
    clean.write_text(CLEAN_LOG)
    assert cli_main(["diagnose", str(oom), str(clean)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{oom}: cuda-oom: ") and f"{clean}: no failure found" in out
    assert cli_main(["diagnose", "--json", str(clean), str(oom)]) == 1
    assert [(f["file"], f["cause"]) for f in json.loads(capsys.readouterr().out)] == [(str(oom), "cuda-oom")]
    assert cli_main(["diagnose", str(oom), str(tmp_path / "missing.log")]) == 2
    captured = capsys.readouterr()
    assert "cuda-oom" in captured.out and "cannot read" in captured.err


# --- the stand-ins' own output --------------------------------------------------------------------------------


def make_model(cache: Path, model_id: str, config: dict | None = None, dangling: bool = False) -> None:
    """A model in the HF cache layout: blobs, snapshots/<commit>/ links, refs/main."""
    repo = cache / ("models--" + model_id.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    files = {"config.json": json.dumps(config or {"model_type": "sandbox"}).encode(), "model.safetensors": b"x" * 64}
    for name, data in files.items():
        blob = repo / "blobs" / f"blob-{name}"
        if not (dangling and name == "model.safetensors"):
            blob.write_bytes(data)
        (snap / name).symlink_to(os.path.relpath(blob, snap))


def run_runner(cache: Path, model_id: str, pipeline: str = "image-to-text", until: str | None = None) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(STANDIN), "PIPELINE": pipeline, "MODEL_ID": model_id,
           "HUGGINGFACE_HUB_CACHE": str(cache), "LPSTANDIN_LOAD_S": "0", "PORT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "lpstandin.airunner"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if until is None:
        out, _ = proc.communicate(timeout=20)
        return proc.returncode, out
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if until in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    return proc.returncode, "".join(lines) + out


def causes(text: str) -> list[str]:
    return [f.cause for f in diagnose(text)]


def test_standin_runner_healthy_has_no_failure(tmp_path):
    make_model(tmp_path, "org/tiny")
    rc, out = run_runner(tmp_path, "org/tiny", until="Uvicorn running")
    assert "Started up with pipeline=ImageToTextPipeline model_id=org/tiny" in out
    assert rc == 0 and causes(out) == []


# diffusers 0.31.0 pipeline_utils.py:1479-1483 (the load of a model that is not in the cache, hub unreachable)
NOT_CACHED = "model is not cached locally and an error occurred while trying to fetch metadata from the Hub"


@pytest.mark.parametrize("setup,model_id,evidence,cause", [
    (lambda c: None, "org/absent", f"OSError: Cannot load model org/absent: {NOT_CACHED}", "weights-missing"),
    # the cache is case-sensitive: a differently cased folder is simply not the model's
    (lambda c: make_model(c, "Org/Tiny"), "org/tiny", f"OSError: Cannot load model org/tiny: {NOT_CACHED}",
     "weights-missing"),
    # diffusers 0.31.0 utils/hub_utils.py:310
    (lambda c: make_model(c, "org/partial", dangling=True), "org/partial", "OSError: Error no file named "
     "model.safetensors found in directory", "weights-missing"),
    (lambda c: make_model(c, "org/oom", {"sandbox_failure": "cuda-oom"}), "org/oom",
     "torch.cuda.OutOfMemoryError: CUDA out of memory.", "cuda-oom"),
    (lambda c: make_model(c, "org/bad", {"sandbox_failure": "load-failed"}), "org/bad",
     "Error while deserializing header: HeaderTooLarge", "model-load-failed"),
])
def test_standin_runner_failures(tmp_path, setup, model_id, evidence, cause):
    setup(tmp_path)
    rc, out = run_runner(tmp_path, model_id)
    assert rc == 1, out  # ai-runner v0.14.1 loads at import (main.py:3): the traceback ends uvicorn, exit 1
    assert evidence in out and "Traceback (most recent call last):" in out
    assert "Application startup failed" not in out  # the lifespan never ran
    # with the hub unreachable the traceback also shows the hub error the load was raised from (diffusers
    # pipeline_utils.py:1483 `from model_info_call_error`); the cause is found beside it
    assert cause in causes(out), out


def run_worker(tmp_path: Path, models: str | None, *flags: str) -> tuple[int, str]:
    args = list(flags)
    if models is not None:
        path = tmp_path / "aiModels.json"
        path.write_text(models)
        args += ["-aiModels", str(path)]
    env = {**os.environ, "PYTHONPATH": str(STANDIN), "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
           "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "lpstandin.golivepeer", "-cliAddr", "127.0.0.1:0", *args],
                          env=env, capture_output=True, text=True, timeout=20, input="")
    return proc.returncode, proc.stdout + proc.stderr


ONCHAIN = ("-orchestrator", "-network", "arbitrum-one-mainnet")


@pytest.mark.parametrize("models,flags,rc,needle", [
    ('[{"pipeline":"text-to-image","model_id":"a/b","price_per_unit":"0.5e-2USD"}]', ONCHAIN, 0,
     "value is not a number"),
    ('[{"pipeline":"text-to-image","model_id":"a/b","priceperunit":5}]', ONCHAIN, 2, "'pricePerUnit' must be set"),
    ('[{"pipeline":"text-to-imag","model_id":"a/b","price_per_unit":5}]', ONCHAIN, 2, "Pipeline is not valid"),
    ('[{"pipeline":"text-to-image","model_id":"a/b","price_per_unit":5,"optimization_flags":{"SFAST":1}}]',
     ONCHAIN, 0, "cannot unmarshal number"),
    ('[{"pipeline":"text-to-image","model_id":"a/b","price_per_unit":-1}]', ONCHAIN, 2, "must be a valid positive"),
    # go-livepeer's default feed is ETH/USD (starter.go:288): EUR fails (core/autoconvertedprice.go:69-71)
    ('[{"pipeline":"text-to-image","model_id":"a/b","price_per_unit":1,"currency":"EUR"}]', ONCHAIN, 2,
     "error converting price: price feed does not have EUR as a currency (ETH/USD)"),
])
def test_standin_worker_config_failures(tmp_path, models, flags, rc, needle):
    code, out = run_worker(tmp_path, models, *flags)
    assert code == rc, out
    assert needle in out
    assert causes(out) == ["invalid-config"], out


def test_standin_worker_missing_file_is_the_misleading_inline_error(tmp_path):
    code, out = run_worker(tmp_path, None, *ONCHAIN, "-aiModels", str(tmp_path / "nope.json"))
    assert "invalid AI model config expected <pipeline>:<model_id>:<warm>" in out
    assert causes(out) == ["invalid-config"]


def test_standin_worker_unknown_flag(tmp_path):
    code, out = run_worker(tmp_path, None, "-aiModel", "x")
    assert code == 2 and "flag provided but not defined: -aiModel" in out
    assert causes(out) == ["invalid-config"]


def test_standin_worker_without_nvidia_flag(tmp_path):
    code, out = run_worker(tmp_path, '[{"pipeline":"text-to-image","model_id":"a/b","warm":true}]',
                           "-orchestrator", "-aiWorker", "-aiModelsDir", str(tmp_path / "models"))
    assert code == 0
    # the missing daemon is an error no known cause explains
    assert set(causes(out)) == {"no-gpu", "unknown"}


def test_price_fields_ignored_offchain(tmp_path):
    code, out = run_worker(tmp_path, '[{"pipeline":"text-to-image","model_id":"a/b","price_per_unit":"x"}]',
                           "-orchestrator")
    # the string still fails to decode (Go decodes before it knows prices are skipped)
    assert "value is not a number" in out
