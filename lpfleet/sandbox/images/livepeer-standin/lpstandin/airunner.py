"""The ai-runner stand-in: `livepeer/ai-runner` as go-livepeer starts it (PIPELINE, MODEL_ID, /models, port 8000).

Reads weights the way the real runner does: from the HuggingFace cache layout under HUGGINGFACE_HUB_CACHE
(`models--org--name/refs/main` -> `snapshots/<commit>/`), and refuses to start, logging the real signatures,
when they are missing or incomplete. Batch runners load before the server binds (connection refused meanwhile);
live runners bind at once and answer LOADING. Failure modes come from the model itself, like reality: the
snapshot's root config.json (or model_index.json) may carry `"sandbox_failure"` (`cuda-oom`, `load-failed`,
`lookup-failed`, `runtime-error`, `hang`) and `"sandbox_load_seconds"`. Load time defaults to
LPSTANDIN_LOAD_S (3 s).
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import sys
import threading
import time

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
    """Raised inside the app's startup: uvicorn logs the traceback and exits 3."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[-1])
        self.lines = lines


def log(level: str, msg: str) -> None:
    sys.stderr.write(f"{level + ':':<9} {msg}\n")
    sys.stderr.flush()


def app_log(level: str, msg: str) -> None:
    """The runner's own logger format."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    sys.stderr.write(f"{stamp} - app.main - {level} - {msg}\n")
    sys.stderr.flush()


def repo_folder(model_id: str) -> str:
    return "models--" + model_id.replace("/", "--")


def _not_cached(model_id: str) -> str:
    """diffusers 0.31.0 pipelines/pipeline_utils.py:1479-1483: the load error after the hub lookup failed."""
    return (f"OSError: Cannot load model {model_id}: model is not cached locally and an error occurred while trying "
            "to fetch metadata from the Hub. Please check out the root cause in the stacktrace above.")


def resolve_snapshot(cache: str, model_id: str, branch: str = "main") -> str:
    """huggingface_hub's offline lookup: the folder, refs/<branch>, then snapshots/<commit>/."""
    folder = os.path.join(cache, repo_folder(model_id))
    if not os.path.isdir(folder):
        try:
            others = os.listdir(cache)
        except OSError:
            others = []
        wrong_case = [d for d in others if d.lower() == repo_folder(model_id).lower()]
        if wrong_case:
            raise StartupError([
                f"huggingface_hub.errors.RepositoryNotFoundError: 404 Client Error. (Request ID: sandbox)",
                f"Repository Not Found for url: https://huggingface.co/api/models/{model_id}/revision/{branch}.",
                _not_cached(model_id),
            ])
        raise StartupError([
            "huggingface_hub.errors.LocalEntryNotFoundError: Cannot find an appropriate cached snapshot folder for "
            "the specified revision on the local disk and outgoing traffic has been disabled.",
            _not_cached(model_id),
        ])
    ref = os.path.join(folder, "refs", branch)
    try:
        with open(ref, encoding="utf-8") as fh:
            commit = fh.read().strip()
    except OSError:
        raise StartupError([
            "huggingface_hub.errors.LocalEntryNotFoundError: Cannot find an appropriate cached snapshot folder for "
            "the specified revision on the local disk and outgoing traffic has been disabled.",
            _not_cached(model_id),
        ]) from None
    snapshot = os.path.join(folder, "snapshots", commit)
    if not commit or not os.path.isdir(snapshot):
        raise StartupError([
            "huggingface_hub.errors.LocalEntryNotFoundError: Cannot find an appropriate cached snapshot folder for "
            "the specified revision on the local disk and outgoing traffic has been disabled.",
            _not_cached(model_id),
        ])
    return snapshot


def check_complete(snapshot: str, pipeline: str) -> None:
    """Every file the snapshot lists resolves (no dangling blob link), weights are there, diffusers components too."""
    files: list[str] = []
    for root, _dirs, names in os.walk(snapshot):
        for name in names:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, snapshot)
            if not os.path.exists(path):  # a symlink to a blob that is not there
                raise StartupError([f"OSError: Error no file named {rel} found in directory {snapshot}."])
            files.append(rel)
    weights = [f for f in files if f.endswith(WEIGHT_SUFFIXES)]
    if pipeline == "llm" and not weights:
        repo = os.path.basename(os.path.dirname(os.path.dirname(snapshot)))  # models--org--name
        model_id = repo[len("models--"):].replace("--", "/")
        raise StartupError([f"ValueError: Could not find model files for {model_id}"])  # ai-runner llm.py:71
    index = os.path.join(snapshot, "model_index.json")
    if os.path.exists(index):
        try:
            with open(index, encoding="utf-8") as fh:
                components = [k for k, v in json.load(fh).items() if isinstance(v, list)]
        except ValueError:
            raise StartupError([f"OSError: It looks like the config file at '{index}' is not a valid JSON file."]) \
                from None
        for comp in components:
            if comp in ("scheduler", "tokenizer", "tokenizer_2", "feature_extractor", "safety_checker"):
                continue
            if not any(f.startswith(comp + "/") and f.endswith(WEIGHT_SUFFIXES) for f in files):
                name = DIFFUSERS_WEIGHTS.get(comp, "diffusion_pytorch_model")
                raise StartupError([
                    f"OSError: Error no file named {name}.safetensors found in directory "
                    f"{os.path.join(snapshot, comp)}."
                ])
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
        info[str(i)] = {"id": f"GPU-sandbox-{gid}", "name": "NVIDIA Sandbox GPU", "memory_total": 25757220864,
                        "memory_free": 1073741824, "major": 8, "minor": 9}
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
            raise StartupError([f"EnvironmentError: {self.pipeline} is not a valid pipeline for model {self.model_id}"])
        load_s = float(os.environ.get("LPSTANDIN_LOAD_S", "3"))
        marker: dict = {}
        if not live:
            snapshot = resolve_snapshot(self.cache, self.model_id)
            check_complete(snapshot, self.pipeline)
            extra = EXTRA_MODELS.get(self.model_id)
            if extra:
                check_complete(resolve_snapshot(self.cache, extra), self.pipeline)
            marker = read_marker(snapshot)
        flags = {k: os.environ[k] for k in ("SFAST", "DEEPCACHE", "BFLOAT16", "TORCH_COMPILE", "USE_8BIT")
                 if k in os.environ}
        app_log("INFO", f"Loading {cls} for model_id={self.model_id}" + (f" flags={flags}" if flags else ""))
        load_s = float(marker.get("sandbox_load_seconds", load_s))
        failure = marker.get("sandbox_failure", "")
        if failure == "hang":
            threading.Event().wait()
        time.sleep(max(load_s, 0.0))
        if failure == "cuda-oom":
            raise StartupError([
                "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
                "capacity of 23.65 GiB of which 1.06 GiB is free. Process 1 has 22.58 GiB memory in use. Of the "
                "allocated memory 21.93 GiB is allocated by PyTorch, and 212.40 MiB is reserved by PyTorch but "
                "unallocated. If reserved but unallocated memory is large try setting "
                "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.",
            ])
        if failure == "load-failed":
            raise StartupError([
                "safetensors_rust.SafetensorError: Error while deserializing header: HeaderTooLarge",
            ])
        if failure == "lookup-failed":
            raise StartupError([
                f"huggingface_hub.errors.RepositoryNotFoundError: 404 Client Error. (Request ID: sandbox)",
                f"OSError: {self.model_id} is not a local folder and is not a valid model identifier listed on "
                "'https://huggingface.co/models'",
            ])
        if failure == "runtime-error":
            self.error_after = float(marker.get("sandbox_error_after_seconds", 0))
        self.status = "IDLE" if live else "OK"
        self.started = time.monotonic()
        app_log("INFO", f"Started up with pipeline={cls} model_id={self.model_id}")

    def current_status(self) -> str:
        if self.error_after is not None and time.monotonic() - self.started >= self.error_after:
            return "ERROR"
        return self.status


def serve(runner: Runner, port: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: object) -> None:
            if not self.path.startswith("/health"):
                log("INFO", f'{self.client_address[0]}:{self.client_address[1]} - "{self.requestline}" '
                            f"{args[1] if len(args) > 1 else ''}")

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
                stats = {k: {"id": v["id"], "name": v["name"], "memory_total": v["memory_total"],
                             "memory_free": v["memory_free"], "utilization_compute": 0, "utilization_memory": 0}
                         for k, v in gpu_info().items()}
                self._json(200, {**base, "gpu_stats": stats})
            elif self.path == "/version":
                self._json(200, {**base, "version": VERSION})
            else:
                self._json(404, {"detail": "Not Found"})

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    port = int(os.environ.get("PORT", "8000"))
    done = threading.Event()

    def on_term(_signum: int, _frame: object) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log("INFO", f"Started server process [{os.getpid()}]")
    log("INFO", "Waiting for application startup.")
    runner = Runner()
    live = runner.pipeline == "live-video-to-video"
    server = serve(runner, port) if live else None
    startup = threading.Thread(target=_startup, args=(runner, live, done), daemon=True)
    startup.start()
    while startup.is_alive() and not done.is_set():
        startup.join(0.2)
    if done.is_set():
        log("INFO", "Shutting down")
        log("INFO", f"Finished server process [{os.getpid()}]")
        sys.exit(0)
    if getattr(runner, "failed", False):
        log("ERROR", "Application startup failed. Exiting.")
        sys.exit(3)
    if server is None:
        server = serve(runner, port)
    log("INFO", "Application startup complete.")
    log("INFO", f"Uvicorn running on http://0.0.0.0:{port} (Press CTRL+C to quit)")
    done.wait()
    log("INFO", "Shutting down")
    server.shutdown()
    log("INFO", "Application shutdown complete.")
    log("INFO", f"Finished server process [{os.getpid()}]")
    sys.exit(0)


def _startup(runner: Runner, live: bool, done: threading.Event) -> None:
    try:
        runner.startup(live)
    except StartupError as exc:
        runner.failed = True  # type: ignore[attr-defined]
        runner.status = "ERROR"
        log("ERROR", "Traceback (most recent call last):")
        sys.stderr.write('  File "/app/app/main.py", line 34, in lifespan\n    app.pipeline = load_pipeline(pipeline, '
                         'model_id)\n')
        for line in exc.lines:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


if __name__ == "__main__":
    main()
