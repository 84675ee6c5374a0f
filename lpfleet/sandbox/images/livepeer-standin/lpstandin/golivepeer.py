"""The go-livepeer stand-in: `livepeer -aiWorker -aiModels ... -aiModelsDir ... -nvidia ...`.

Does what go-livepeer's starter and AI worker do at startup and while running (see the project's
reference/livepeer.md): reads the same flags (and `-config` file), decodes aiModels.json with Go's rules, panics
or exits where go-livepeer does, removes runner containers left by an earlier run with its creator_id, checks
external `url`s' /health, starts warm runner containers on the node's dockerd through the mounted socket with the
real labels, names, ports, mounts, env, restart policy and GPU device requests, waits for them like go-livepeer,
watches them (2 failed health checks or ERROR -> destroyed and re-warmed) and logs the same lines.

Timeouts default to go-livepeer's; `LPSTANDIN_RUNNER_TIMEOUT_S`, `LPSTANDIN_EXTERNAL_TIMEOUT_S` and
`LPSTANDIN_WATCH_INTERVAL_S` shorten them for tests.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from fractions import Fraction

from lpstandin import golog
from lpstandin.docker_api import DockerAPI, DockerError
from lpstandin.goflags import FlagError, apply_config_file, apply_env, fail, parse_args
from lpstandin.gojson import AIModelConfig, GoJSONError, decode_ai_models

VERSION = "0.8.8-sandbox"

# name -> (kind, default). The flags the AI worker path reads, and the common ones operators pass.
FLAGS: dict[str, tuple[str, object]] = {
    "config": ("string", ""),
    "network": ("string", "offchain"),
    "dataDir": ("string", ""),
    "datadir": ("string", ""),
    "v": ("string", "3"),
    "rtmpAddr": ("string", ""),
    "cliAddr": ("string", ""),
    "httpAddr": ("string", ""),
    "httpIngest": ("bool", True),
    "serviceAddr": ("string", ""),
    "gatewayHost": ("string", ""),
    "orchAddr": ("string", ""),
    "orchSecret": ("string", ""),
    "orchestrator": ("bool", False),
    "transcoder": ("bool", False),
    "broadcaster": ("bool", False),
    "gateway": ("bool", False),
    "redeemer": ("bool", False),
    "aiWorker": ("bool", False),
    "aiModels": ("string", ""),
    "aiModelsDir": ("string", ""),
    "aiRunnerImage": ("string", ""),
    "aiRunnerImageOverrides": ("string", ""),
    "aiVerboseLogs": ("bool", False),
    "aiRunnerContainersPerGPU": ("int", 1),
    "aiProcessingRetryTimeout": ("string", "2s"),
    "aiServiceRegistry": ("bool", False),
    "nvidia": ("string", ""),
    "netint": ("string", ""),
    "maxSessions": ("string", "10"),
    "pricePerUnit": ("string", "0"),
    "pixelsPerUnit": ("string", "1"),
    # starter.go:288: the Arbitrum ETH/USD Chainlink feed
    "priceFeedAddr": ("string", "0x639Fe6ab55C921f74e7fac1ee960C0B6293ba612"),
    "maxPricePerUnit": ("string", "0"),
    "autoAdjustPrice": ("bool", True),
    "pricePerGateway": ("string", ""),
    "pricePerBroadcaster": ("string", ""),
    "ethUrl": ("string", ""),
    "ethController": ("string", ""),
    "ethAcctAddr": ("string", ""),
    "ethPassword": ("string", ""),
    "ethKeystorePath": ("string", ""),
    "ethOrchAddr": ("string", ""),
    "monitor": ("bool", False),
    "metricsPerStream": ("bool", False),
    "metricsClientIP": ("bool", False),
    "reward": ("bool", False),
    "ticketEV": ("string", "1000000000000"),
    "maxFaceValue": ("string", "0"),
    "objectStore": ("string", ""),
    "recordStore": ("string", ""),
    "liveAITrickleHostForRunner": ("string", ""),
    "version": ("bool", False),
}

BASE_PORTS = {
    "text-to-image": "8000",
    "image-to-image": "8100",
    "image-to-video": "8200",
    "upscale": "8300",
    "audio-to-text": "8400",
    "llm": "8500",
    "segment-anything-2": "8600",
    "image-to-text": "8700",
    "text-to-speech": "8800",
    "live-video-to-video": "8900",
}
CAPABILITY_NAMES = {p: p[:1].upper() + p[1:].replace("-", " ") for p in BASE_PORTS}
DEFAULT_PRICE_FEED = "0x639Fe6ab55C921f74e7fac1ee960C0B6293ba612"
#: The base and quote currencies of the default feed (ETH/USD); other feeds are taken to quote ETH in any currency
#: (the stand-in has no chain to ask).
DEFAULT_FEED_PAIR = ("ETH", "USD")
DEFAULT_IMAGE = "livepeer/ai-runner:latest"
PIPELINE_IMAGES = {
    "segment-anything-2": "livepeer/ai-runner:segment-anything-2",
    "text-to-speech": "livepeer/ai-runner:text-to-speech",
    "audio-to-text": "livepeer/ai-runner:audio-to-text",
    "llm": "livepeer/ai-runner:llm",
}
# ai/worker/docker.go:71-88 livePipelineToImage
LIVE_IMAGES = {
    **{name: f"livepeer/ai-runner:live-app-{name}"
       for name in ("streamdiffusion", "streamdiffusion-sd15", "streamdiffusion-sd15-v2v", "streamdiffusion-sdxl",
                    "streamdiffusion-sdxl-v2v", "streamdiffusion-sdxl-faceid", "comfyui", "segment_anything_2",
                    "noop")},
    "scope": "daydreamlive/scope-runner",
}


def pipeline_to_capability(pipeline: str) -> str | None:
    """core/ai.go:57-72: the first letter upper-cased, "-" as spaces, compared with every capability name."""
    if not pipeline:
        return None
    name = pipeline[:1].upper() + pipeline[1:].replace("-", " ")
    return name if name in CAPABILITY_NAMES.values() else None

POLL_S = 0.5
HEALTH_REQUEST_S = 5.0
MAX_HEALTH_FAILURES = 2


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


RUNNER_TIMEOUT_S = _env_float("LPSTANDIN_RUNNER_TIMEOUT_S", 180.0)
OPT_FLAGS_TIMEOUT_S = _env_float("LPSTANDIN_OPT_FLAGS_TIMEOUT_S", max(RUNNER_TIMEOUT_S, 300.0)
                                 if "LPSTANDIN_RUNNER_TIMEOUT_S" not in os.environ else RUNNER_TIMEOUT_S)
EXTERNAL_TIMEOUT_S = _env_float("LPSTANDIN_EXTERNAL_TIMEOUT_S", 120.0)
WATCH_INTERVAL_S = _env_float("LPSTANDIN_WATCH_INTERVAL_S", 5.0)


class Return(Exception):
    """StartLivepeer returned early (after logging why): deferred cleanup runs, the process exits 0."""


# --- pure helpers (mirrored by lpfleet.runners and checked against it in tests) ---------------------------


def port_offset(gpu: str) -> str:
    res = "00"
    m = re.match(r"colocated-(\d+)-(.*)", gpu)
    if m:
        res = m.group(1) + res[1:]
        gpu = m.group(2)
    if gpu.startswith("emulated-"):
        gpu = gpu.replace("emulated-", "", 1)
    return res[:1] + gpu


def hw_gpu(gpu: str) -> str:
    m = re.match(r"colocated-\d+-(.*)", gpu)
    return m.group(1) if m else gpu


def container_name(pipeline: str, model_id: str, host_port: str) -> str:
    return f"{pipeline}_{model_id.replace('/', '-').replace('_', '-')}_{host_port}"


def gpu_slots(gpus: list[str], per_gpu: int) -> list[str]:
    if per_gpu > 1:
        return [f"colocated-{i}-{g}" for i in range(per_gpu) for g in gpus]
    return list(gpus)


@dataclass
class ImageOverrides:
    default: str = ""
    batch: dict = field(default_factory=dict)
    live: dict = field(default_factory=dict)

    def image_for(self, pipeline: str, model_id: str) -> str:
        if pipeline == "live-video-to-video":
            if model_id in self.live:
                return self.live[model_id]
            if model_id in LIVE_IMAGES:
                return LIVE_IMAGES[model_id]
            raise RuntimeError(f"no container image found for live pipeline {model_id}")
        if pipeline in self.batch:
            return self.batch[pipeline]
        if pipeline in PIPELINE_IMAGES:
            return PIPELINE_IMAGES[pipeline]
        return self.default or DEFAULT_IMAGE


# --- runner HTTP client -------------------------------------------------------------------------------------


def _go_get_error(url: str, exc: BaseException) -> str:
    """How Go's http client words a failed GET."""
    parsed = urllib.parse.urlsplit(url)
    host = parsed.hostname or ""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if isinstance(exc, ConnectionRefusedError):
        try:
            addr = socket.gethostbyname(host)
        except OSError:
            addr = host
        return f'Get "{url}": dial tcp {addr}:{port}: connect: connection refused'
    if isinstance(exc, socket.gaierror):
        return f'Get "{url}": dial tcp: lookup {host}: no such host'
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    if isinstance(exc, (ConnectionResetError, http.client.RemoteDisconnected)):
        return f'Get "{url}": EOF'
    return f'Get "{url}": {exc}'


def http_get(url: str, token: str = "", timeout: float = HEALTH_REQUEST_S) -> tuple[int, bytes]:
    parsed = urllib.parse.urlsplit(url)
    cls = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    conn = cls(parsed.hostname, parsed.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        conn.request("GET", parsed.path or "/", headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def health(url: str, token: str = "") -> tuple[str | None, str | None]:
    """(status, error): status from {"status": ...} on HTTP 200, else an error worded like go-livepeer's."""
    target = url.rstrip("/") + "/health"
    try:
        code, body = http_get(target, token)
    except (OSError, http.client.HTTPException) as exc:
        return None, _go_get_error(target, exc)
    if code != 200:
        return None, f"health check failed with status code {code}"
    try:
        status = json.loads(body).get("status", "")
    except (ValueError, AttributeError):
        status = ""
    return status, None


def wait_until_ready(url: str, token: str, timeout_s: float) -> bool:
    """runnerWaitUntilReady (ai/worker/container.go:113-139): poll /health every 500 ms until it answers 200; ERROR
    fails, any other state is ready. Returns whether it was LOADING (the caller parks a warm one until IDLE)."""
    deadline = time.monotonic() + timeout_s
    last_err = "context deadline exceeded"
    while True:
        time.sleep(POLL_S)
        if time.monotonic() >= deadline:
            raise RuntimeError(f"timed out waiting for runner: {last_err}")
        status, err = health(url, token)
        if err:
            last_err = err
        elif status == "ERROR":
            raise RuntimeError("runner is in error state")
        else:
            return status == "LOADING"


# --- the AI worker's container manager ----------------------------------------------------------------------


@dataclass
class RunnerContainer:
    name: str
    pipeline: str
    model_id: str
    gpu: str
    url: str
    keep_warm: bool
    optimization_flags: dict
    container_id: str = ""
    token: str = ""
    external: bool = False
    borrowed: bool = False  # out of the idle pool (a job, or parked while LOADING)


class DockerManager:
    def __init__(self, api: DockerAPI, overrides: ImageOverrides, verbose: bool, gpus: list[str], models_dir: str,
                 creator_id: str) -> None:
        self.api = api
        self.overrides = overrides
        self.verbose = verbose
        self.gpus = gpus
        self.models_dir = models_dir
        self.creator_id = creator_id
        self.gpu_containers: dict[str, RunnerContainer] = {}
        self.containers: dict[str, RunnerContainer] = {}  # idle ones
        self.external: list[RunnerContainer] = []
        self.lock = threading.RLock()
        self.stopping = threading.Event()

    # go-livepeer: RemoveExistingContainers (also those without creator_id: migration from older versions)
    @staticmethod
    def remove_existing(api: DockerAPI, creator_id: str) -> int:
        removed = 0
        for c in api.list_containers("creator=ai-worker"):
            labels = c.get("Labels") or {}
            if "creator_id" in labels and labels["creator_id"] != creator_id:
                continue
            golog.slog("INFO", "Removing existing managed container", name=(c.get("Names") or ["?"])[0])
            api.stop(c["Id"])
            api.remove(c["Id"])
            removed += 1
        return removed

    def ensure_image_available(self, pipeline: str, model_id: str) -> None:
        image = self.overrides.image_for(pipeline, model_id)
        if self.api.image_exists(image):
            return
        golog.slog("ERROR", f"Image for pipeline {pipeline} and modelID {model_id} is not available locally: {image}")
        golog.slog("INFO", f"Pulling image for pipeline {pipeline} and modelID {model_id}: {image}")
        repo, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
        try:
            self.api.call("POST", "/images/create", query={"fromImage": repo, "tag": tag})
        except (DockerError, OSError) as exc:
            raise RuntimeError(f"failed to pull image: {exc}") from None

    def alloc_gpu(self) -> str:
        for gpu in self.gpus:
            if gpu not in self.gpu_containers:
                return gpu
        for gpu, rc in list(self.gpu_containers.items()):
            if rc.name in self.containers and not rc.keep_warm:
                self.destroy(rc)
                return gpu
        raise RuntimeError("insufficient capacity")

    def warm(self, pipeline: str, model_id: str, flags: dict, url: str = "", token: str = "") -> None:
        if url:
            rc = RunnerContainer(name=url, pipeline=pipeline, model_id=model_id, gpu="", url=url, keep_warm=True,
                                 optimization_flags=flags, token=token, external=True)
            wait_until_ready(url, token, EXTERNAL_TIMEOUT_S)
            self._fetch_info(rc)
            self.external.append(rc)
            return
        with self.lock:
            self.create_container(pipeline, model_id, True, flags)

    def create_container(self, pipeline: str, model_id: str, keep_warm: bool, flags: dict) -> RunnerContainer:
        gpu = self.alloc_gpu()
        host_port = BASE_PORTS[pipeline][:2] + port_offset(gpu)
        name = container_name(pipeline, model_id, host_port)
        image = self.overrides.image_for(pipeline, model_id)
        golog.slog("INFO", "Starting managed container", gpu=gpu, name=name, modelID=model_id, containerImage=image)
        env = [f"PIPELINE={pipeline}", f"MODEL_ID={model_id}"] + [f"{k}={v}" for k, v in flags.items()]
        if self.verbose:
            env.append("VERBOSE_LOGGING=1")
        host_config: dict = {
            "Mounts": [{"Type": "bind", "Source": self.models_dir, "Target": "/models"}],
            "PortBindings": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": host_port}]},
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "DeviceRequests": [],
        }
        if not hw_gpu(gpu).startswith("emulated-"):
            host_config["DeviceRequests"] = [
                {"Driver": "", "Count": 0, "DeviceIDs": [hw_gpu(gpu)], "Capabilities": [["gpu"]], "Options": {}}
            ]
        config = {
            "Image": image,
            "Env": env,
            "Volumes": {"/models": {}},
            "ExposedPorts": {"8000/tcp": {}},
            "Labels": {"creator": "ai-worker", "creator_id": self.creator_id},
            "HostConfig": host_config,
        }
        try:
            cid = self.api.create(name, config)
        except DockerError as exc:
            raise RuntimeError(exc.message) from None
        try:
            self.api.start(cid)
            self._wait_until_running(cid)
        except (DockerError, RuntimeError) as exc:
            self._remove(cid)
            raise RuntimeError(getattr(exc, "message", str(exc))) from None
        timeout = OPT_FLAGS_TIMEOUT_S if flags else RUNNER_TIMEOUT_S
        rc = RunnerContainer(name=name, pipeline=pipeline, model_id=model_id, gpu=gpu,
                             url=f"http://localhost:{host_port}", keep_warm=keep_warm, optimization_flags=flags,
                             container_id=cid)
        try:
            loading = wait_until_ready(rc.url, "", timeout)
        except RuntimeError:
            self._remove(cid)
            raise
        self._fetch_info(rc)
        self.containers[name] = rc
        self.gpu_containers[gpu] = rc
        if keep_warm and loading:
            # docker.go:510-515: parked out of the pool until the watch loop sees IDLE
            golog.slog("INFO", "Warm container started on loading state, removing from pool on startup",
                       container=rc.name)
            self._borrow(rc)
        threading.Thread(target=self.watch, args=(rc,), daemon=True).start()
        return rc

    def _borrow(self, rc: RunnerContainer) -> None:
        with self.lock:
            self.containers.pop(rc.name, None)
            rc.borrowed = True

    def _return(self, rc: RunnerContainer) -> None:
        with self.lock:
            rc.borrowed = False
            if rc.gpu in self.gpu_containers:
                self.containers[rc.name] = rc

    def _fetch_info(self, rc: RunnerContainer) -> None:
        for path in ("/hardware/info", "/version"):
            try:
                http_get(rc.url.rstrip("/") + path, rc.token)
            except (OSError, http.client.HTTPException) as exc:
                what = "hardware info" if path.startswith("/hardware") else "version"
                golog.slog("ERROR", f"Error getting {what} for runner", error=_go_get_error(rc.url + path, exc))

    def _wait_until_running(self, cid: str) -> None:
        deadline = time.monotonic() + RUNNER_TIMEOUT_S
        while True:
            time.sleep(POLL_S)
            if time.monotonic() >= deadline:
                raise RuntimeError("timed out waiting for managed container")
            state = self.api.inspect(cid).get("State") or {}
            if state.get("Running"):
                return
            status = (state.get("Status") or "").lower()
            if status in ("exited", "dead"):
                raise RuntimeError(
                    f"container entered terminal state before running: {status} (exitCode={state.get('ExitCode', 0)})"
                )
            if not state.get("Restarting") and state.get("ExitCode"):
                raise RuntimeError(
                    f"container exited before running (status={status}, exitCode={state.get('ExitCode')})"
                )
            if not state.get("Restarting") and state.get("Error"):
                raise RuntimeError(f"container error before running: {state['Error']}")

    def _remove(self, cid: str) -> None:
        try:
            self.api.stop(cid)
            self.api.remove(cid)
        except (DockerError, OSError):
            pass

    def destroy(self, rc: RunnerContainer) -> None:
        golog.slog("INFO", "Removing managed container", gpu=rc.gpu, name=rc.name, modelID=rc.model_id)
        try:
            self.api.stop(rc.container_id)
            self.api.remove(rc.container_id)
        except (DockerError, OSError) as exc:
            golog.slog("ERROR", "Error removing managed container", gpu=rc.gpu, name=rc.name, modelID=rc.model_id,
                       error=str(exc))
            return
        with self.lock:
            self.gpu_containers.pop(rc.gpu, None)
            self.containers.pop(rc.name, None)

    def watch(self, rc: RunnerContainer) -> None:
        golog.slog("INFO", "Watching container", container=rc.name)
        failures = 0
        loading_since: float | None = None
        while not self.stopping.wait(WATCH_INTERVAL_S):
            if failures >= MAX_HEALTH_FAILURES:
                golog.slog("ERROR", "Container health check failed too many times", container=rc.name)
                self.destroy(rc)
                if rc.keep_warm and not self.stopping.is_set():
                    golog.slog("INFO", "Container was kept warm, restarting", container=rc.name)
                    try:
                        with self.lock:
                            self.create_container(rc.pipeline, rc.model_id, True, rc.optimization_flags)
                    except RuntimeError as exc:
                        golog.slog("ERROR", "Error restarting warm container", container=rc.name, error=str(exc))
                return
            target = rc.url + "/health"
            try:
                code, body = http_get(target)
            except (OSError, http.client.HTTPException) as exc:
                failures += 1
                golog.slog("ERROR", "Error getting health for runner", container=rc.name,
                           error=_go_get_error(target, exc))
                continue
            if code != 200:
                failures += 1
                golog.slog("ERROR", "Container health check failed with HTTP status code", container=rc.name,
                           status_code=code, body=body.decode(errors="replace"))
                continue
            try:
                status = json.loads(body).get("status", "")
            except (ValueError, AttributeError):
                status = ""
            if status == "IDLE" and rc.borrowed:
                golog.slog("INFO", "Container is idle, returning to pool", container=rc.name)
                self._return(rc)
                continue
            if status in ("OK", "IDLE"):
                failures, loading_since = 0, None
            elif status == "LOADING":
                if loading_since is None:
                    failures, loading_since = 0, time.monotonic()
                    if not rc.borrowed:
                        golog.slog("INFO", "Container is loading, removing from pool", container=rc.name)
                        self._borrow(rc)
                loading = time.monotonic() - loading_since
                if loading > RUNNER_TIMEOUT_S:
                    failures += 1
                    golog.slog("ERROR", "Container is loading for too long", container=rc.name,
                               duration=f"{loading:.1f}s")
            elif status == "ERROR":
                failures = MAX_HEALTH_FAILURES
                golog.slog("ERROR", "Container returned ERROR state, restarting immediately", container=rc.name,
                           status=status)
            else:
                golog.slog("ERROR", "Unknown container status", container=rc.name, status=status)

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            running = list(self.gpu_containers.values())
        threads = [threading.Thread(target=self.destroy, args=(rc,)) for rc in running]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def capacity(self) -> tuple[int, int, int]:
        with self.lock:
            in_use = len(self.gpu_containers) - len(self.containers)
            return in_use, len(self.containers), len(self.gpus) - len(self.gpu_containers)


class DryManager(DockerManager):
    """The container manager without a Docker daemon: slots, images and external urls as go-livepeer allocates
    and checks them, every runner healthy at once. Used to run the startup checks on their own (tests)."""

    def __init__(self, overrides: ImageOverrides, gpus: list[str]) -> None:
        super().__init__(api=None, overrides=overrides, verbose=False,  # type: ignore[arg-type]
                         gpus=gpus, models_dir="/models", creator_id="")
        self.started: list[RunnerContainer] = []

    def ensure_image_available(self, pipeline: str, model_id: str) -> None:
        self.overrides.image_for(pipeline, model_id)

    def warm(self, pipeline: str, model_id: str, flags: dict, url: str = "", token: str = "") -> None:
        if url:
            self.external.append(RunnerContainer(name=url, pipeline=pipeline, model_id=model_id, gpu="", url=url,
                                                 keep_warm=True, optimization_flags=flags, external=True))
            return
        self.create_container(pipeline, model_id, True, flags)

    def create_container(self, pipeline: str, model_id: str, keep_warm: bool, flags: dict) -> RunnerContainer:
        gpu = self.alloc_gpu()
        host_port = BASE_PORTS[pipeline][:2] + port_offset(gpu)
        self.overrides.image_for(pipeline, model_id)
        rc = RunnerContainer(name=container_name(pipeline, model_id, host_port), pipeline=pipeline,
                             model_id=model_id, gpu=gpu, url=f"http://localhost:{host_port}", keep_warm=keep_warm,
                             optimization_flags=flags)
        self.gpu_containers[gpu] = rc
        self.containers[rc.name] = rc
        self.started.append(rc)
        return rc


# --- CLI / metrics server -------------------------------------------------------------------------------------


def _serve_cli(addr: str, state: dict) -> None:
    host, _, port = addr.rpartition(":")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/status":
                self._send(200, json.dumps(state["status"]()).encode(), "application/json")
            elif self.path == "/healthz":
                self._send(200, b"OK", "text/plain")
            elif self.path == "/metrics" and state["monitor"]:
                self._send(200, state["metrics"]().encode(), "text/plain; version=0.0.4")
            else:
                self._send(404, b"404 page not found\n", "text/plain")

    server = http.server.ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


# --- StartLivepeer --------------------------------------------------------------------------------------------


def _docker_error(api: DockerAPI, exc: Exception) -> str:
    if isinstance(exc, DockerError):
        return exc.message
    return (f"Cannot connect to the Docker daemon at unix://{api.socket_path}. Is the docker daemon running?")


def _read_secret(value: str) -> str:
    """common.ReadFromFile: the file's content when the value names a file, else the value itself."""
    try:
        with open(value, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return value


def _parse_price(text: str) -> tuple[Fraction, str]:
    # go-livepeer 176aa41 cmd/livepeer/starter/starter.go:2536-2550 (parsePricePerUnit): no sign, no exponent
    m = re.fullmatch(r"(\d+(\.\d+)?)([A-z][A-z0-9]*)?", text)
    if not m:
        raise ValueError(text)
    return Fraction(m.group(1)), m.group(3) or ""


def _parse_gpus(spec: str) -> list[str]:
    if spec == "all":
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                                 text=True, check=True, timeout=10).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            raise RuntimeError(f"unable to detect devices: {exc}") from None
        return [line.strip() for line in out.splitlines() if line.strip()]
    gpus = [g.strip() for g in spec.split(",")]
    if any(not g for g in gpus):
        raise RuntimeError(f"invalid device list {spec!r}")
    return gpus


def start(cfg: dict, state: dict) -> DockerManager | None:
    golog.info(f"***Livepeer is running on the {cfg['network']} network***", "livepeer.go:0")
    golog.info(f"Livepeer Node version: {VERSION}", "starter.go:0")
    if cfg["netint"] and cfg["nvidia"]:
        golog.error("both -netint and -nvidia arguments specified, this is not supported")
        sys.exit(1)
    orchestrator = bool(cfg["orchestrator"])
    ai_worker = bool(cfg["aiWorker"])
    state["orch_secret"] = _read_secret(str(cfg["orchSecret"])) if cfg["orchSecret"] else ""
    creator_id = str(cfg["serviceAddr"] or cfg["ethAcctAddr"] or "")
    api = DockerAPI()
    manager: DockerManager | None = None
    if ai_worker:
        try:
            removed = DockerManager.remove_existing(api, creator_id)
        except (DockerError, OSError) as exc:
            golog.error(f"Error removing existing AI worker containers: {_docker_error(api, exc)}")
            removed = 0
        if removed:
            golog.info(f"Removed {removed} existing AI worker containers")
        if cfg["nvidia"]:
            try:
                gpus = _parse_gpus(str(cfg["nvidia"]))
            except RuntimeError as exc:
                golog.error(f"Error parsing -nvidia for devices: {exc}")
                raise Return() from None
        else:
            golog.warning("!!! No GPU discovered, using CPU for AIWorker !!!")
            gpus = ["emulated-0"]
        gpus = gpu_slots(gpus, int(cfg["aiRunnerContainersPerGPU"]))  # type: ignore[arg-type]
        models_dir = str(cfg["aiModelsDir"]) or os.path.abspath(os.path.join(str(cfg["dataDir"]), "models"))
        try:
            os.makedirs(models_dir, 0o755, exist_ok=True)
        except OSError:
            golog.error(f"Error creating models dir {models_dir}")
            raise Return() from None
        overrides = ImageOverrides()
        if cfg["aiRunnerImageOverrides"]:
            try:
                raw = json.loads(str(cfg["aiRunnerImageOverrides"]))
                if not isinstance(raw, dict):
                    raise ValueError("json: cannot unmarshal into Go value of type worker.ImageOverrides")
                overrides = ImageOverrides(default=raw.get("default") or "", batch=raw.get("batch") or {},
                                           live=raw.get("live") or {})
            except ValueError as exc:
                golog.error(f"Error unmarshaling image overrides: {exc}")
                raise Return() from None
        if cfg["aiRunnerImage"]:
            golog.warning("-aiRunnerImage flag is deprecated and will be removed in a future release. "
                          "Please use -aiRunnerImageOverrides instead")
            if not overrides.default:
                overrides.default = str(cfg["aiRunnerImage"])
        # worker.NewWorker -> NewDockerManager lists (and removes) leftovers again; no daemon is fatal here.
        try:
            DockerManager.remove_existing(api, creator_id)
        except (DockerError, OSError) as exc:
            golog.error(f"Error starting AI worker: error creating docker manager: failed to list containers: "
                        f"{_docker_error(api, exc)}")
            raise Return() from None
        manager = DockerManager(api, overrides, bool(cfg["aiVerboseLogs"]), gpus, models_dir, creator_id)
        state["manager"] = manager

    if cfg["aiModels"]:
        configs = _parse_ai_models(str(cfg["aiModels"]))
        configure_models(cfg, configs, manager if ai_worker else None)
        state["models"] = [{"pipeline": c.pipeline, "model_id": c.model_id, "warm": c.warm,
                            "url": bool(c.url)} for c in configs]
    elif ai_worker and not orchestrator:
        golog.error("The '-aiWorker' flag was set, but no model configuration was provided. Please specify the "
                    "model configuration using the '-aiModels' flag.")
        raise Return()
    if ai_worker and not orchestrator and cfg["orchAddr"] and cfg["orchSecret"]:
        golog.info(f"Registering AI worker with orchestrator {cfg['orchAddr']}", "ai_worker.go:0")
    return manager


def configure_models(cfg: dict, configs: list[AIModelConfig], manager: DockerManager | None) -> None:
    """StartLivepeer's aiModels loop (starter.go:1444-1573), in its order: capability, image, warm (an error
    returns from StartLivepeer), the flags warning, the warm/cold constraint (keyed by capability and model id,
    url entries included), then prices on an on-chain node. Panics raise golog.GoPanic, returns raise Return."""
    constraints: dict[tuple[str, str], bool] = {}
    for config in configs:
        capability = pipeline_to_capability(config.pipeline)
        if capability is None:
            golog.panic(f"Pipeline is not valid capability: {config.pipeline}\n")
        if manager is not None:
            models_count = 1
            if config.capacity and not config.url:
                models_count = config.capacity
            try:
                manager.ensure_image_available(config.pipeline, config.model_id)
            except RuntimeError as exc:
                golog.error(f"Error ensuring AI worker image available for {config.pipeline}: {exc}")
            for _ in range(models_count):
                if config.warm or config.url:
                    if config.pipeline not in BASE_PORTS and not config.url:
                        # docker.go:391 containerHostPorts[pipeline][:2] of "" for an odd spelling
                        golog.panic("runtime error: slice bounds out of range [:2] with length 0")
                    try:
                        manager.warm(config.pipeline, config.model_id, config.optimization_flags, config.url,
                                     config.token)
                    except RuntimeError as exc:
                        golog.error(f"Error AI worker warming {config.pipeline} container: {exc}")
                        raise Return() from None
            if config.optimization_flags and not config.warm:
                golog.warning(f"Model {config.model_id} has 'optimization_flags' set without 'warm'. "
                              "Optimization flags are currently only used for warm containers.")
            key = (capability, config.model_id)
            if key in constraints and constraints[key] != config.warm:
                golog.panic(f"Cannot have same model_id ({config.model_id}) as cold and warm in same AI worker, "
                            "please fix aiModels json config")
            constraints.setdefault(key, config.warm)
        if cfg["network"] != "offchain":
            _check_price(cfg, config)


def _parse_ai_models(value: str) -> list[AIModelConfig]:
    if os.path.isfile(value):
        try:
            with open(value, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            golog.error(f"Error parsing -aiModels: open {value}: {exc.strerror.lower()}")
            raise Return() from None
        try:
            return decode_ai_models(text)
        except GoJSONError as exc:
            golog.error(f"Error parsing -aiModels: {exc}")
            raise Return() from None
    # Not a file: go-livepeer tries the inline form pipeline:model_id:warm,...
    configs = []
    for item in value.split(","):
        parts = item.split(":")
        if len(parts) < 3:
            golog.error("Error parsing -aiModels: invalid AI model config expected <pipeline>:<model_id>:<warm>")
            raise Return()
        try:
            warm = parts[2] in ("1", "t", "T", "TRUE", "true", "True")
            if not warm and parts[2] not in ("0", "f", "F", "FALSE", "false", "False"):
                raise ValueError
        except ValueError:
            golog.error(f'Error parsing -aiModels: strconv.ParseBool: parsing "{parts[2]}": invalid syntax')
            raise Return() from None
        configs.append(AIModelConfig(pipeline=parts[0], model_id=parts[1], warm=warm))
    return configs


def _check_price(cfg: dict, config: AIModelConfig) -> None:
    try:
        ppu_base = Fraction(str(cfg["pixelsPerUnit"]))
    except (ValueError, ZeroDivisionError):
        golog.panic(f"-pixelsPerUnit must be a valid integer, provided {cfg['pixelsPerUnit']}")
    if ppu_base.denominator != 1:
        golog.panic(f"-pixelsPerUnit must be a valid integer, provided {cfg['pixelsPerUnit']}")
    if ppu_base <= 0:
        golog.panic(f"-pixelsPerUnit must be > 0, provided {cfg['pixelsPerUnit']}")
    try:
        price_base, currency_base = _parse_price(str(cfg["pricePerUnit"]))
        if price_base < 0:
            raise ValueError
    except (ValueError, ZeroDivisionError):
        golog.panic(f"-pricePerUnit must be a valid positive integer with an optional currency, provided "
                    f"{cfg['pricePerUnit']}")
    pixels = config.pixels_per_unit if config.pixels_per_unit is not None else ppu_base
    if config.pixels_per_unit is not None and (pixels.denominator != 1 or pixels <= 0):
        golog.panic(f"'pixelsPerUnit' value specified for model '{config.model_id}' in pipeline "
                    f"'{config.pipeline}' must be a valid positive integer, provided {config.pixels_per_unit}")
    price, currency = config.price_per_unit, config.currency
    if price is None:
        if price_base == 0:
            golog.panic(f"'pricePerUnit' must be set for model '{config.model_id}' in pipeline '{config.pipeline}'")
        price, currency = price_base, currency_base
        golog.warning(f"No 'pricePerUnit' specified for model '{config.model_id}' in pipeline '{config.pipeline}'. "
                      f"Using default value from `-pricePerUnit`: {cfg['pricePerUnit']}")
    elif price < 0:
        golog.panic(f"'pricePerUnit' value specified for model '{config.model_id}' in pipeline '{config.pipeline}' "
                    f"must be a valid positive number, provided {config.price_per_unit}")
    # core/autoconvertedprice.go:48-71, called at starter.go:1564-1568
    if currency.lower() not in ("", "wei", "eth"):
        if str(cfg["priceFeedAddr"]).lower() == DEFAULT_PRICE_FEED.lower() and currency.upper() not in DEFAULT_FEED_PAIR:
            golog.panic(f"error converting price: price feed does not have {currency.upper()} as a currency "
                        f"({'/'.join(DEFAULT_FEED_PAIR)})")


_SIGNAL_TEXT = {signal.SIGTERM: "terminated", signal.SIGINT: "interrupt"}


class _Interrupted(Exception):
    """A signal arrived before the node finished starting (raised in the main thread by the handler)."""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        cfg, explicit = parse_args(argv, FLAGS)
        apply_env(cfg, explicit, FLAGS, "LP")
        if cfg["config"]:
            apply_config_file(str(cfg["config"]), cfg, explicit, FLAGS)
    except FlagError as exc:
        fail(str(exc))
        return
    if cfg["version"]:
        print(f"Livepeer Node Version: {VERSION}")
        return
    if not cfg["dataDir"]:
        cfg["dataDir"] = cfg["datadir"] or os.path.join(os.path.expanduser("~"), ".lpData", str(cfg["network"]))
    state: dict = {"monitor": bool(cfg["monitor"]), "manager": None, "models": []}
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        golog.info(f"Exiting Livepeer: {_SIGNAL_TEXT.get(signum, str(signum))}", "livepeer.go:0")
        stop.set()
        if not state.get("serving"):
            # go-livepeer's main returns on a signal even while StartLivepeer is still warming containers
            raise _Interrupted()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    manager: DockerManager | None = None
    panicked: str | None = None
    try:
        manager = start(cfg, state)
        default_cli = "127.0.0.1:7935" if cfg["orchestrator"] else "127.0.0.1:4935"
        cli_addr = str(cfg["cliAddr"] or default_cli)
        state["status"] = lambda: {"Version": VERSION, "Network": cfg["network"], "Models": state["models"],
                                   "Orchestrator": bool(cfg["orchestrator"]), "AIWorker": bool(cfg["aiWorker"])}
        state["metrics"] = lambda: _metrics(state)
        _serve_cli(cli_addr, state)
        golog.info(f"CLI server listening on {cli_addr}", "webserver.go:0")
        if cfg["aiWorker"] and not cfg["orchestrator"]:
            # starter.go:2101-2107, after warming: glog.Exit (exit 1, deferred cleanup skipped: runners stay up)
            missing = "-orchSecret" if not cfg["orchSecret"] else "-orchAddr" if not cfg["orchAddr"] else ""
            if missing:
                golog.fatal(f"Missing {missing}")
        state["serving"] = True
        stop.wait()
    except (Return, _Interrupted):
        pass
    except golog.GoPanic as exc:
        panicked = str(exc)
    finally:
        manager = manager or state.get("manager")
        if manager is not None:
            manager.stop()
            golog.info("Stopped AI worker containers")
    if panicked is not None:
        golog.report_panic(panicked)
    sys.exit(0)


def _metrics(state: dict) -> str:
    manager: DockerManager | None = state.get("manager")
    lines = ["# TYPE livepeer_ai_container_in_use gauge", "# TYPE livepeer_ai_container_idle gauge",
             "# TYPE livepeer_ai_gpus_idle gauge"]
    if manager is not None:
        in_use, idle, gpus_idle = manager.capacity()
        lines += [f"livepeer_ai_container_in_use {in_use}", f"livepeer_ai_container_idle {idle}",
                  f"livepeer_ai_gpus_idle {gpus_idle}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
