"""The ai-runner stand-in: `livepeer/ai-runner` v0.14.1 as go-livepeer starts it (PIPELINE, MODEL_ID).

What it honours, each from upstream code (docs/fidelity.md, "Weights and the runner's cache"):
- The pipeline loads when uvicorn imports `runner.main:app` (ai-runner `runner/src/runner/main.py:3`,
  `app.py:114-118`), before uvicorn logs anything; a load failure is a Python traceback and exit 1
  (uvicorn 0.38.0 `server.py:78` loads the app before "Started server process"). Batch runners bind only
  after loading.
- Online first, like diffusers 0.31.0 / huggingface_hub 0.23.2 with the runner's default environment: the
  hub (`HF_ENDPOINT`, default https://huggingface.co) is asked for `main`; when it answers, `refs/main` is
  rewritten to the hub's commit and that commit's files are downloaded into the cache
  (`_snapshot_download.py:258-262`), and that snapshot is loaded. When it does not answer (or 401s: a gated
  repo without a token) it logs diffusers' warning and loads `refs/main` from the cache
  (`pipeline_utils.py:1280-1286`). `HF_HUB_OFFLINE` (1/ON/YES/TRUE, `constants.py:10,117`) skips the hub.
  The stand-in downloads every file of the commit (diffusers picks by its own patterns).
- The LLM pipeline never asks the hub: it loads the first folder under `models--org--name` that holds a
  `.bin`/`.safetensors` file, in os.walk order, whatever `refs/main` says (ai-runner
  `pipelines/llm.py:63-71,326-334`).
- Log formats: the runner's logger (`runner/live/log.py:32-36`, installed by `app.py:16`) and uvicorn's
  (`runner/src/runner/cfg/uvicorn_logging_config.json`, levelprefix from uvicorn 0.38.0 `logging.py:58-64`).
- Live apps' prepare mode: with PREPARE_MODELS=1 (`app.py:181-185`) it prepares and exits 0 without serving.
  The sandbox has one image for every live tag, so it always prepares as the StreamDiffusion image does: it
  refuses when `/models/StreamDiffusion--engines` or `--models` is missing (`live/streamdiffusion/pipeline/
  prepare.py:120-123`) and writes small placeholder engines where that prepare writes them (`:150,212`).
  A streamdiffusion app started with an empty engines folder fails its pipeline load the way the live
  process reports it (`runner/live/process/process.py:225,239`, `process_guardian.py:157`): /health ERROR.
Sandbox failure markers in the snapshot's root config.json (or model_index.json), `"sandbox_failure"`:
`cuda-oom`, `load-failed`, `lookup-failed`, `runtime-error`, `hang`; `"sandbox_load_seconds"` (default
LPSTANDIN_LOAD_S, 3 s).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

VERSION = "0.14.1"
PIPELINE_CLASSES = {
    "text-to-image": "TextToImagePipeline",
    "image-to-image": "ImageToImagePipeline",
    "image-to-video": "ImageToVideoPipeline",
    "upscale": "UpscalePipeline",
    "audio-to-text": "AudioToTextPipeline",
    "segment-anything-2": "SegmentAnything2Pipeline",
    "llm": "LLMPipeline",
    "image-to-text": "ImageToTextPipeline",
    "text-to-speech": "TextToSpeechPipeline",
    "live-video-to-video": "LiveVideoToVideoPipeline",
}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".msgpack")
# Models whose pipeline loads a second repository too (ai-runner's text-to-image for SDXL-Lightning).
EXTRA_MODELS = {"ByteDance/SDXL-Lightning": "stabilityai/stable-diffusion-xl-base-1.0"}
# What a component folder's weights are called in diffusers, for the "no file named" message.
DIFFUSERS_WEIGHTS = {"text_encoder": "model", "text_encoder_2": "model", "image_encoder": "model"}


class StartupError(Exception):
    """The pipeline failed to load: the traceback Python prints (`lines`, the exception last), exit 1."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[-1])
        self.lines = lines


#: huggingface_hub 0.23.2 `constants.py:10`: the values HF_HUB_OFFLINE counts as true (upper-cased).
TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
DEFAULT_ENDPOINT = "https://huggingface.co"


def hub_offline() -> bool:
    """huggingface_hub 0.23.2 `constants.py:117`."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in TRUE_VALUES


def log(level: str, msg: str) -> None:
    """uvicorn's default formatter in the runner's log config: "%(asctime)s %(levelprefix)s %(message)s"."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(now)) + ",%03d" % int((now % 1) * 1000)
    sys.stderr.write(f"{stamp} {level + ':' + ' ' * (8 - len(level))} {msg}\n")
    sys.stderr.flush()


def app_log(level: str, msg: str, location: str = "app.py:112:create_app") -> None:
    """The runner's root logger (runner/live/log.py:32-36)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(
        f"timestamp={stamp} level={level} location={location} gateway_request_id= manifest_id= "
        f"stream_id= message={msg}\n"
    )
    sys.stderr.flush()


def repo_folder(model_id: str) -> str:
    return "models--" + model_id.replace("/", "--")


def not_cached(model_id: str, cause: list[str]) -> StartupError:
    """diffusers 0.31.0 `pipeline_utils.py:1479-1483`: raised `from` the hub call's error, so Python prints
    that error's traceback first ("The above exception was the direct cause ...")."""
    return StartupError(
        [
            "Traceback (most recent call last):",
            '  File "/app/.venv/lib/python3.11/site-packages/diffusers/pipelines/pipeline_utils.py", '
            "line 1282, in download",
            *cause,
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            '  File "/app/src/runner/main.py", line 3, in <module>',
            "    app = create_app()",
            f"OSError: Cannot load model {model_id}: model is not cached locally and an error occurred while "
            "trying to fetch metadata from the Hub. Please check out the root cause in the stacktrace above.",
        ]
    )


def offline_error(endpoint: str, model_id: str) -> list[str]:
    """huggingface_hub 0.23.2 `utils/_http.py:78` (OfflineModeIsEnabled, `errors.py:16`)."""
    return [
        f"huggingface_hub.errors.OfflineModeIsEnabled: Cannot reach {endpoint}/api/models/{model_id}: "
        "offline mode is enabled. To disable it, please unset the `HF_HUB_OFFLINE` environment variable."
    ]


def resolve_snapshot(cache: str, model_id: str, branch: str = "main", cause: list[str] | None = None) -> str:
    """huggingface_hub 0.23.2 `_snapshot_download.py:198-216` offline: refs/<branch>, then snapshots/<commit>/
    if the folder exists (files are not checked there); else diffusers' "not cached locally"."""
    folder = os.path.join(cache, repo_folder(model_id))
    cause = cause or offline_error(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT, model_id)
    try:
        with open(os.path.join(folder, "refs", branch), encoding="utf-8") as fh:
            commit = fh.read()
    except OSError:
        raise not_cached(model_id, cause) from None
    snapshot = os.path.join(folder, "snapshots", commit)
    if not commit or not os.path.isdir(snapshot):
        raise not_cached(model_id, cause)
    return snapshot


class Hub:
    """The few hub calls diffusers/huggingface_hub make for an online load (stdlib HTTP, no token: go-livepeer
    passes none to runners)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint.rstrip("/")

    def _open(self, url: str, method: str = "GET") -> tuple[int, dict, bytes]:
        request = urllib.request.Request(url, method=method, headers={"user-agent": "lpstandin-airunner"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read() if method == "GET" else b""

    def revision(self, model_id: str, branch: str) -> dict:
        """GET /api/models/{repo}/revision/{branch}: {"sha", "siblings"} (HfApi.repo_info)."""
        url = f"{self.endpoint}/api/models/{model_id}/revision/{urllib.parse.quote(branch, safe='')}"
        _status, _headers, body = self._open(url)
        return json.loads(body)

    def download(self, cache: str, model_id: str, commit: str, path: str) -> None:
        """hf_hub_download at a commit: blobs/<etag> then the relative snapshot link (no-op when linked)."""
        folder = os.path.join(cache, repo_folder(model_id))
        link = os.path.join(folder, "snapshots", commit, path)
        if os.path.lexists(link):
            return
        url = f"{self.endpoint}/{model_id}/resolve/{commit}/{urllib.parse.quote(path)}"
        _status, headers, body = self._open(url)
        etag = (
            (headers.get("X-Linked-Etag") or headers.get("ETag") or "")
            .strip('"')
            .removeprefix("W/")
            .strip('"')
        )
        if not etag or "/" in etag:
            raise OSError(f"no usable etag for {path}")
        blob = os.path.join(folder, "blobs", etag)
        os.makedirs(os.path.dirname(blob), exist_ok=True)
        with open(blob + ".incomplete", "wb") as fh:
            fh.write(body)
        os.replace(blob + ".incomplete", blob)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(os.path.relpath(blob, os.path.dirname(link)), link)


def load_snapshot(cache: str, model_id: str, branch: str = "main") -> str:
    """diffusers' `DiffusionPipeline.download` with the runner's environment: online first, then the cache."""
    endpoint = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    if hub_offline():
        app_log(
            "WARNING",
            f"Couldn't connect to the Hub: {offline_error(endpoint, model_id)[0].split(': ', 1)[1]}."
            "\nWill try to load from local cache.",
            "pipeline_utils.py:1284:download",
        )
        return resolve_snapshot(cache, model_id, branch)
    hub = Hub(endpoint)
    try:
        info = hub.revision(model_id, branch)
        commit, files = str(info["sha"]), [s["rfilename"] for s in info.get("siblings") or []]
    except (OSError, ValueError, KeyError, TypeError) as exc:  # URLError/HTTPError are OSErrors
        reason = f"{exc.__class__.__name__}: {getattr(exc, 'reason', exc)}"
        app_log(
            "WARNING",
            f"Couldn't connect to the Hub: {reason}.\nWill try to load from local cache.",
            "pipeline_utils.py:1284:download",
        )
        return resolve_snapshot(cache, model_id, branch, [f"requests.exceptions.ConnectionError: {reason}"])
    folder = os.path.join(cache, repo_folder(model_id))
    os.makedirs(os.path.join(folder, "refs"), exist_ok=True)
    with open(
        os.path.join(folder, "refs", branch), "w", encoding="utf-8"
    ) as fh:  # _snapshot_download.py:258-262
        fh.write(commit)
    for path in files:
        try:
            hub.download(cache, model_id, commit, path)
        except (OSError, ValueError) as exc:
            raise StartupError(
                [
                    "Traceback (most recent call last):",
                    f"OSError: could not download {path} of {model_id} at {commit}: {exc}",
                ]
            ) from None
    return os.path.join(folder, "snapshots", commit)


def find_llm_model_path(base_path: str) -> str | None:
    """ai-runner v0.14.1 `pipelines/llm.py:326-334` as written (os.listdir raises without the folder)."""
    if any(f.endswith(".bin") or f.endswith(".safetensors") for f in os.listdir(base_path)):
        return base_path
    for root, _dirs, files in os.walk(base_path):
        if any(f.endswith(".bin") or f.endswith(".safetensors") for f in files):
            return root
    return None


def load_llm(cache: str, model_id: str) -> str:
    base = os.path.join(cache, repo_folder(model_id))
    app_log("INFO", "Initializing LLM pipeline", "llm.py:60:__init__")
    try:
        path = find_llm_model_path(base)
    except FileNotFoundError:
        raise StartupError(
            [
                "Traceback (most recent call last):",
                '  File "/app/src/runner/pipelines/llm.py", line 328, in _find_model_path',
                f"FileNotFoundError: [Errno 2] No such file or directory: '{base}'",
            ]
        ) from None
    if not path:
        raise StartupError(
            [
                "Traceback (most recent call last):",
                '  File "/app/src/runner/pipelines/llm.py", line 71, in __init__',
                f"ValueError: Could not find model files for {model_id}",
            ]
        )
    return path


def check_complete(snapshot: str, pipeline: str) -> None:
    """Every file of the snapshot resolves (no dangling link); weights and diffusers components are there."""
    files: list[str] = []
    for root, _dirs, names in os.walk(snapshot):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, snapshot)
            if not os.path.exists(path):  # a symlink to a blob that is not there
                raise StartupError([f"OSError: Error no file named {rel} found in directory {snapshot}."])
            files.append(rel)
    weights = [f for f in files if f.endswith(WEIGHT_SUFFIXES)]
    index = os.path.join(snapshot, "model_index.json")
    if os.path.exists(index):
        try:
            with open(index, encoding="utf-8") as fh:
                components = [k for k, v in json.load(fh).items() if isinstance(v, list)]
        except ValueError:
            raise StartupError(
                [f"OSError: It looks like the config file at '{index}' is not a valid JSON file."]
            ) from None
        for comp in components:
            if comp in ("scheduler", "tokenizer", "tokenizer_2", "feature_extractor", "safety_checker"):
                continue
            if not any(f.startswith(comp + "/") and f.endswith(WEIGHT_SUFFIXES) for f in files):
                name = DIFFUSERS_WEIGHTS.get(comp, "diffusion_pytorch_model")
                raise StartupError(
                    [
                        f"OSError: Error no file named {name}.safetensors found in directory "
                        f"{os.path.join(snapshot, comp)}."
                    ]
                )
    elif not weights:
        raise StartupError([f"OSError: Error no file named model.safetensors found in directory {snapshot}."])


def read_marker(snapshot: str) -> dict:
    for name in ("config.json", "model_index.json"):
        try:
            with open(os.path.join(snapshot, name), encoding="utf-8") as fh:
                doc = json.load(fh)
            if isinstance(doc, dict):
                return doc
        except (OSError, ValueError):
            continue
    return {}


def gpu_info() -> dict:
    visible = os.environ.get("NVIDIA_VISIBLE_DEVICES", "")
    if not visible or visible in ("void", "none"):
        return {}
    ids = [g for g in visible.split(",") if g]
    info = {}
    for i, gid in enumerate(ids):
        info[str(i)] = {
            "id": f"GPU-sandbox-{gid}",
            "name": "NVIDIA Sandbox GPU",
            "memory_total": 25757220864,
            "memory_free": 1073741824,
            "major": 8,
            "minor": 9,
        }
    return info


class Runner:
    def __init__(self) -> None:
        self.pipeline = os.environ.get("PIPELINE", "")
        self.model_id = os.environ.get("MODEL_ID", "")
        self.cache = os.environ.get("HUGGINGFACE_HUB_CACHE", "/models")
        self.status = "LOADING"
        self.error_after: float | None = None
        self.started = time.monotonic()

    def startup(self, live: bool) -> None:
        cls = PIPELINE_CLASSES.get(self.pipeline)
        if cls is None:
            raise StartupError(
                [f"OSError: {self.pipeline} is not a valid pipeline for model {self.model_id}"]
            )
        load_s = float(os.environ.get("LPSTANDIN_LOAD_S", "3"))
        marker: dict = {}
        if not live:
            if self.pipeline == "llm":
                snapshot = load_llm(self.cache, self.model_id)
            else:
                snapshot = load_snapshot(self.cache, self.model_id)
            self.snapshot = snapshot
            check_complete(snapshot, self.pipeline)
            extra = EXTRA_MODELS.get(self.model_id)
            if extra:
                check_complete(load_snapshot(self.cache, extra), self.pipeline)
            marker = read_marker(snapshot)
        flags = {
            k: os.environ[k]
            for k in ("SFAST", "DEEPCACHE", "BFLOAT16", "TORCH_COMPILE", "USE_8BIT")
            if k in os.environ
        }
        app_log(
            "INFO",
            f"Loading {cls} for model_id={self.model_id} from {getattr(self, 'snapshot', '-')}"
            + (f" flags={flags}" if flags else ""),
            "app.py:114:create_app",
        )
        load_s = float(marker.get("sandbox_load_seconds", load_s))
        failure = marker.get("sandbox_failure", "")
        if failure == "hang":
            threading.Event().wait()
        time.sleep(max(load_s, 0.0))
        if failure == "cuda-oom":
            raise StartupError(
                [
                    "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has "
                    "a total capacity of 23.65 GiB of which 1.06 GiB is free. Process 1 has 22.58 GiB memory "
                    "in use. Of the allocated memory 21.93 GiB is allocated by PyTorch, and 212.40 MiB is "
                    "reserved by PyTorch but unallocated. If reserved but unallocated memory is large try "
                    "setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.",
                ]
            )
        if failure == "load-failed":
            raise StartupError(
                [
                    "safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge",
                ]
            )
        if failure == "lookup-failed":
            raise StartupError(
                [
                    "huggingface_hub.errors.RepositoryNotFoundError: 404 Client Error. (Request ID: sandbox)",
                    f"OSError: {self.model_id} is not a local folder and is not a valid model identifier "
                    "listed on 'https://huggingface.co/models'",
                ]
            )
        if failure == "runtime-error":
            self.error_after = float(marker.get("sandbox_error_after_seconds", 0))
        if live and self.model_id.startswith("streamdiffusion") and not engines_prepared(self.cache):
            # the pipeline process fails to load and dies; the guardian then reports ERROR
            for where, msg in (("process.py:225:_initialize_pipeline", "Error loading pipeline"),
                               ("process.py:239:_initialize_pipeline", "Error loading pipeline with default params")):
                app_log("ERROR", f"{msg}\nRuntimeError: no TensorRT engines in ./engines (sandbox: "
                        "run the image with PREPARE_MODELS=1 first)", where)
            app_log("ERROR", "Process is not alive. Returning ERROR state", "process_guardian.py:157:_compute_current_state")
            self.status = "ERROR"
            self.started = time.monotonic()
            return
        self.status = "IDLE" if live else "OK"
        self.started = time.monotonic()

    def current_status(self) -> str:
        if self.error_after is not None and time.monotonic() - self.started >= self.error_after:
            return "ERROR"
        return self.status


#: What the StreamDiffusion prepare builds under its engines folder (live/streamdiffusion/pipeline/prepare.py:150,212).
STREAMDIFFUSION_ENGINES = (
    "depth-anything/depth_anything_v2_vits.engine",
    "temporal_net/raft_small_min_384x384_max_1024x1024.engine",
)


def prepare_models(models: str) -> int:
    """PREPARE_MODELS=1: the image's prepare_models() (app.py:98-105), as StreamDiffusion's; the exit status."""
    app_log("INFO", "Preparing models for pipeline: streamdiffusion", "app.py:101:prepare_models")
    for folder, name in (("StreamDiffusion--engines", "Engines"), ("StreamDiffusion--models", "Local models")):
        if not os.path.isdir(os.path.join(models, folder)):  # prepare.py:120-123 (./engines, ./models links)
            link = "engines" if name == "Engines" else "models"
            sys.stderr.write(
                "Traceback (most recent call last):\n"
                '  File "/app/main.py", line 30, in <module>\n'
                "    start_app(pipeline=pipeline_spec)\n"
                f"ValueError: {name} dir ({link}) does not exist\n"
            )
            return 1
    app_log("INFO", f"Preparing StreamDiffusion assets in {models}", "prepare.py:125:prepare_streamdiffusion_models")
    for rel in STREAMDIFFUSION_ENGINES:
        path = os.path.join(models, "StreamDiffusion--engines", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(b"sandbox TensorRT engine placeholder\n")
    app_log("INFO", "StreamDiffusion model preparation complete.", "prepare.py:140:prepare_streamdiffusion_models")
    app_log("INFO", "Model preparation complete", "app.py:104:prepare_models")
    return 0


def engines_prepared(models: str) -> bool:
    engines = os.path.join(models, "StreamDiffusion--engines")
    return os.path.isdir(engines) and bool(os.listdir(engines))


def serve(runner: Runner, port: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: object) -> None:
            if not self.path.startswith("/health"):
                log(
                    "INFO",
                    f'{self.client_address[0]}:{self.client_address[1]} - "{self.requestline}" '
                    f"{args[1] if len(args) > 1 else ''}",
                )

        def _json(self, code: int, doc: object) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            base = {"pipeline": runner.pipeline, "model_id": runner.model_id}
            if self.path == "/health":
                self._json(200, {"status": runner.current_status()})
            elif self.path == "/hardware/info":
                self._json(200, {**base, "gpu_info": gpu_info()})
            elif self.path == "/hardware/stats":
                stats = {
                    k: {
                        "id": v["id"],
                        "name": v["name"],
                        "memory_total": v["memory_total"],
                        "memory_free": v["memory_free"],
                        "utilization_compute": 0,
                        "utilization_memory": 0,
                    }
                    for k, v in gpu_info().items()
                }
                self._json(200, {**base, "gpu_stats": stats})
            elif self.path == "/version":
                self._json(200, {**base, "version": VERSION})
            else:
                self._json(404, {"detail": "Not Found"})

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    """uvicorn runner.main:app: the import loads the pipeline (failing: traceback, exit 1), then it serves."""
    if os.environ.get("PREPARE_MODELS") == "1":  # app.py:183: prepare and return (exit 0), serve nothing
        sys.exit(prepare_models(os.environ.get("HUGGINGFACE_HUB_CACHE", "/models")))
    port = int(os.environ.get("PORT", "8000"))
    done = threading.Event()

    def on_term(_signum: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    runner = Runner()
    live = runner.pipeline == "live-video-to-video"
    app_log("INFO", f"Runner version: {VERSION}")
    server = None
    if live:  # the live app binds at once and reports LOADING while its process starts
        log("INFO", f"Started server process [{os.getpid()}]")
        log("INFO", "Waiting for application startup.")
        server = serve(runner, port)
    startup = threading.Thread(target=_startup, args=(runner, live), daemon=True)
    startup.start()
    while startup.is_alive() and not done.is_set():
        startup.join(0.2)
    if done.is_set():
        sys.exit(0)
    if getattr(runner, "failed", False):
        sys.exit(1)  # the exception left the import: Python printed the traceback
    if not live:
        log("INFO", f"Started server process [{os.getpid()}]")
        log("INFO", "Waiting for application startup.")
        server = serve(runner, port)
    app_log(
        "INFO",
        f"Started up with pipeline={PIPELINE_CLASSES[runner.pipeline]} model_id={runner.model_id}",
        "app.py:127:lifespan",
    )
    log("INFO", "Application startup complete.")
    log("INFO", f"Uvicorn running on http://:{port} (Press CTRL+C to quit)")  # the image's CMD: --host ""
    done.wait()
    log("INFO", "Shutting down")
    assert server is not None
    server.shutdown()
    app_log("INFO", "Shutting down", "app.py:131:lifespan")
    log("INFO", "Application shutdown complete.")
    log("INFO", f"Finished server process [{os.getpid()}]")
    sys.exit(0)


def _startup(runner: Runner, live: bool) -> None:
    try:
        runner.startup(live)
    except StartupError as exc:
        runner.failed = True  # type: ignore[attr-defined]
        runner.status = "ERROR"
        lines = (
            exc.lines
            if exc.lines[0].startswith("Traceback")
            else [
                "Traceback (most recent call last):",
                '  File "/app/src/runner/main.py", line 3, in <module>',
                "    app = create_app()",
                *exc.lines,
            ]
        )
        sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    main()
