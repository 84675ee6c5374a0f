"""The go-livepeer, ai-runner and BYOC stand-in images on the local Docker daemon (no sandbox nodes needed).

Every container here is created by the test (names `lpfleet-e-<id>-...`, runners labelled with a creator_id
unique to the test) and removed after it. The worker runs with host networking and the daemon's socket, as on
a node; runners publish on 127.0.0.1 only. Timeouts are shortened with the stand-ins' LPSTANDIN_* variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from lpfleet import runners
from lpfleet.diagnose import diagnose
from lpfleet.spec import AIModelEntry, NodeSpec

pytestmark = pytest.mark.integration

IMAGES = ("livepeer-standin", "go-livepeer", "ai-runner", "byoc")
WORKER = "livepeer/go-livepeer:sandbox"
RUNNER = "livepeer/ai-runner:latest"
BYOC = "lpfleet-sandbox/byoc:latest"
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr or result.stdout}")
    return result


@pytest.fixture(scope="module")
def images():
    from lpfleet.sandbox.engine import daemon_problem
    from lpfleet.sandbox.images import build_images, discover

    problem = daemon_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    specs = discover()
    wanted: dict = {}
    for name in IMAGES:
        while name in specs and name not in wanted:
            wanted[name] = specs[name]
            name = specs[name].base
    build_images(wanted, log=lambda line: print(line, flush=True))


class Run:
    """One test's containers and files; everything it made is removed at the end."""

    def __init__(self, root: Path):
        self.id = uuid.uuid4().hex[:8]
        self.creator = f"127.0.0.1:{41000 + int(self.id[:4], 16) % 2000}"
        self.root = root
        self.models = root / "models"
        self.models.mkdir()
        self.names: list[str] = []

    def name(self, what: str) -> str:
        name = f"lpfleet-e-{self.id}-{what}"
        self.names.append(name)
        return name

    def model(self, model_id: str, config: dict | None = None, files: dict[str, bytes] | None = None) -> None:
        repo = self.models / ("models--" + model_id.replace("/", "--"))
        snap = repo / "snapshots" / COMMIT
        snap.mkdir(parents=True)
        (repo / "blobs").mkdir()
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
        content = {"config.json": json.dumps(config or {"model_type": "sandbox"}).encode(),
                   "model.safetensors": b"\0" * 1024, **(files or {})}
        for i, (path, data) in enumerate(content.items()):
            blob = repo / "blobs" / f"{i:040x}"
            blob.write_bytes(data)
            target = snap / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.path.relpath(blob, target.parent))
        os.system(f"chmod -R a+rX {self.models}")

    def worker(self, entries: list[dict], *flags: str, env: dict[str, str] | None = None, extra: tuple = (),
               orchestrator: bool = True) -> str:
        (self.root / "aiModels.json").write_text(json.dumps(entries))
        name = self.name(f"worker{len(self.names)}")
        env_args = [a for k, v in {"LPSTANDIN_RUNNER_TIMEOUT_S": "20", "LPSTANDIN_EXTERNAL_TIMEOUT_S": "4",
                                    "LPSTANDIN_WATCH_INTERVAL_S": "1", **(env or {})}.items()
                    for a in ("-e", f"{k}={v}")]
        docker("run", "-d", "--name", name, "--network", "host", *env_args, *extra,
               "-v", "/var/run/docker.sock:/var/run/docker.sock", "-v", f"{self.root}:{self.root}:ro",
               WORKER, *(["-orchestrator"] if orchestrator else []), "-serviceAddr", self.creator,
               "-cliAddr", f"127.0.0.1:{self.cli_port}",
               "-aiWorker", "-aiModels", str(self.root / "aiModels.json"), "-aiModelsDir", str(self.models), *flags)
        return name

    @property
    def cli_port(self) -> int:
        return 43000 + int(self.id[:4], 16) % 2000

    def runners(self) -> list[dict]:
        ids = docker("ps", "-aq", "--filter", "label=creator=ai-worker",
                     "--filter", f"label=creator_id={self.creator}").stdout.split()
        return json.loads(docker("inspect", *ids).stdout) if ids else []

    def cleanup(self) -> None:
        for name in self.names:
            docker("rm", "-f", name, check=False)
        for runner in self.runners():
            docker("rm", "-f", runner["Id"], check=False)


@pytest.fixture
def run(images, tmp_path):
    root = tmp_path / "lpdata"
    root.mkdir()
    os.chmod(tmp_path, 0o755)
    r = Run(root)
    try:
        yield r
    finally:
        r.cleanup()


def logs(name: str) -> str:
    result = docker("logs", name, check=False)
    return result.stdout + result.stderr


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def state(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]["State"]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def test_worker_starts_warm_runners_like_go_livepeer(run):
    run.model("org/tiny-a")
    run.model("org/tiny-b")
    entries = [{"pipeline": "image-to-text", "model_id": "org/tiny-a", "warm": True},
               {"pipeline": "image-to-text", "model_id": "org/tiny-b", "warm": True},
               {"pipeline": "upscale", "model_id": "org/cold"}]
    worker = run.worker(entries, "-aiRunnerContainersPerGPU", "2", env={"LPSTANDIN_LOAD_S": "1"})
    wait_for(lambda: "CLI server listening" in logs(worker), 60, "the worker to warm its runners")

    spec = NodeSpec(host="h", groups=(), gpus=(), containers_per_gpu=2,
                    models=tuple(AIModelEntry(**e) for e in entries))
    expected = {r.name: r for r in runners.expected_runners(spec)}
    found = {c["Name"].lstrip("/"): c for c in run.runners()}
    assert set(found) == set(expected) == {"image-to-text_org-tiny-a_8700", "image-to-text_org-tiny-b_8710"}
    for name, c in found.items():
        assert c["State"]["Running"]
        assert c["Config"]["Labels"]["creator"] == "ai-worker"
        assert c["Config"]["Labels"]["creator_id"] == run.creator
        assert c["Config"]["Image"] == RUNNER
        assert set(expected[name].env) <= set(c["Config"]["Env"])
        assert c["HostConfig"]["PortBindings"] == {"8000/tcp": [{"HostIp": "127.0.0.1",
                                                                  "HostPort": str(expected[name].port)}]}
        assert c["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert [(m["Source"], m["Destination"]) for m in c["Mounts"]] == [(str(run.models), "/models")]
        assert not c["HostConfig"].get("DeviceRequests")  # no -nvidia: emulated GPU, no device request
        port = expected[name].port
        assert get_json(f"http://127.0.0.1:{port}/health") == {"status": "OK"}
        assert get_json(f"http://127.0.0.1:{port}/version")["model_id"] == expected[name].model_id
        assert get_json(f"http://127.0.0.1:{port}/hardware/info")["pipeline"] == "image-to-text"
        assert "Started up with pipeline=ImageToTextPipeline" in logs(c["Id"])
    text = logs(worker)
    assert "Starting managed container gpu=colocated-0-emulated-0 name=image-to-text_org-tiny-a_8700" in text
    assert [f.cause for f in diagnose(text)] == ["no-gpu"]  # no -nvidia: go-livepeer's warning, nothing else

    # A runner that dies is destroyed after two failed health checks and warmed again.
    victim = found["image-to-text_org-tiny-a_8700"]["Id"]
    docker("rm", "-f", victim)
    wait_for(lambda: "Container was kept warm, restarting" in logs(worker), 30, "the re-warm")
    wait_for(lambda: any(c["Name"] == "/image-to-text_org-tiny-a_8700" and c["State"]["Running"]
                         for c in run.runners()), 30, "the re-warmed runner")

    # Stopping go-livepeer removes its runners.
    docker("stop", "-t", "30", worker)
    assert run.runners() == []
    assert "Stopped AI worker containers" in logs(worker)


def test_leftover_runners_of_this_creator_are_removed_at_start(run):
    run.model("org/tiny")
    leftover = run.name("leftover")
    docker("run", "-d", "--init", "--name", leftover, "--label", "creator=ai-worker", "--label", f"creator_id={run.creator}",
           RUNNER, "sleep", "600")
    other = run.name("other-creator")
    docker("run", "-d", "--init", "--name", other, "--label", "creator=ai-worker", "--label", "creator_id=someone-else",
           RUNNER, "sleep", "600")
    worker = run.worker([{"pipeline": "image-to-text", "model_id": "org/tiny", "warm": True}],
                        env={"LPSTANDIN_LOAD_S": "0"})
    wait_for(lambda: "CLI server listening" in logs(worker), 60, "the worker to start")
    assert docker("inspect", leftover, check=False).returncode != 0
    assert state(other)["Running"]
    assert f"Removing existing managed container name=/{leftover}" in logs(worker)


def test_oom_runner_crash_loops_then_worker_times_out(run):
    run.model("org/oom", {"sandbox_failure": "cuda-oom"})
    worker = run.worker([{"pipeline": "image-to-text", "model_id": "org/oom", "warm": True}],
                        env={"LPSTANDIN_LOAD_S": "0", "LPSTANDIN_RUNNER_TIMEOUT_S": "12"})
    runner_name = "image-to-text_org-oom_8700"
    runner_log = wait_for(lambda: "OutOfMemoryError" in logs(runner_name) and logs(runner_name), 30, "the OOM")
    restarts = wait_for(lambda: json.loads(docker("inspect", runner_name, check=False).stdout or "[{}]")[0]
                        .get("RestartCount", 0), 30, "a restart under on-failure")
    assert restarts >= 1
    assert [f.cause for f in diagnose(runner_log)] == ["cuda-oom"]
    wait_for(lambda: state(worker)["Status"] == "exited", 40, "the worker to give up")
    text = logs(worker)
    assert "Error AI worker warming image-to-text container: timed out waiting for runner" in text
    assert state(worker)["ExitCode"] == 0  # StartLivepeer returns; the restart policy decides what comes next
    assert {f.cause for f in diagnose(text)} == {"no-gpu", "runner-timeout"}
    assert run.runners() == []  # the failed runner was removed


def test_missing_weights_signature(run):
    worker = run.worker([{"pipeline": "image-to-text", "model_id": "org/not-fetched", "warm": True}],
                        env={"LPSTANDIN_RUNNER_TIMEOUT_S": "6"})
    runner_name = "image-to-text_org-not-fetched_8700"
    # diffusers 0.31.0 pipelines/pipeline_utils.py:1479-1483: the hub is not reachable and the cache lacks it
    evidence = ("OSError: Cannot load model org/not-fetched: model is not cached locally and an error "
                "occurred while trying to fetch metadata from the Hub.")
    runner_log = wait_for(lambda: evidence in logs(runner_name) and logs(runner_name), 30, "the runner")
    assert "Will try to load from local cache." in runner_log  # DF pipeline_utils.py:1284: online first
    assert "weights-missing" in [f.cause for f in diagnose(runner_log)]
    wait_for(lambda: state(worker)["Status"] == "exited", 30, "the worker to give up")


def test_too_many_warm_containers_exit_and_restart_loop(run):
    run.model("org/a")
    run.model("org/b")
    worker = run.worker([{"pipeline": "image-to-text", "model_id": "org/a", "warm": True},
                         {"pipeline": "upscale", "model_id": "org/b", "warm": True}],
                        env={"LPSTANDIN_LOAD_S": "0"}, extra=("--restart", "unless-stopped"))
    wait_for(lambda: state(worker)["Restarting"] or json.loads(docker("inspect", worker).stdout)[0]["RestartCount"],
             60, "a restart loop")
    text = logs(worker)
    assert "Error AI worker warming upscale container: insufficient capacity" in text
    assert "invalid-config" in {f.cause for f in diagnose(text)}


def test_same_model_warm_and_cold_panics_after_cleanup(run):
    run.model("org/a")
    worker = run.worker([{"pipeline": "image-to-text", "model_id": "org/a", "warm": True},
                         {"pipeline": "image-to-text", "model_id": "org/a"}],
                        "-aiRunnerContainersPerGPU", "2", env={"LPSTANDIN_LOAD_S": "0"})
    wait_for(lambda: state(worker)["Status"] == "exited", 60, "the panic")
    text = logs(worker)
    assert state(worker)["ExitCode"] == 2
    assert "panic: Cannot have same model_id (org/a) as cold and warm" in text
    assert text.index("Stopped AI worker containers") < text.index("panic:")
    assert run.runners() == []


def test_warm_runner_answering_loading_is_ready_and_parked_until_idle(run):
    # go-livepeer 176aa41 ai/worker/container.go:130-135 (any 200 that is not ERROR is ready, LOADING noted),
    # docker.go:510-515 (a warm one is parked out of the pool) and :678-682 (IDLE returns it to the pool)
    # the live runner stand-in binds at once and answers LOADING for its load time (3 s in the image)
    worker = run.worker([{"pipeline": "live-video-to-video", "model_id": "noop", "warm": True}])
    wait_for(lambda: "Container is idle, returning to pool" in logs(worker), 60, "the runner to report IDLE")
    text = logs(worker)
    assert "Warm container started on loading state, removing from pool on startup" in text
    assert text.index("CLI server listening") < text.index("Container is idle, returning to pool")
    assert "timed out waiting for runner" not in text
    assert state(worker)["Running"]


def test_remote_worker_checks_orch_secret_after_warming(run):
    # go-livepeer 176aa41 starter.go:2101-2107: -orchSecret, then -orchAddr, checked after the warm loop
    # (:1444-1481) with glog.Exit: exit 1 and no deferred cleanup, so the warm runner stays up
    run.model("org/a")
    worker = run.worker([{"pipeline": "image-to-text", "model_id": "org/a", "warm": True}],
                        env={"LPSTANDIN_LOAD_S": "0"}, orchestrator=False)
    wait_for(lambda: state(worker)["Status"] == "exited", 60, "the worker to exit")
    text = logs(worker)
    assert state(worker)["ExitCode"] == 1
    assert "Missing -orchSecret" in text
    assert text.index("Starting managed container") < text.index("Missing -orchSecret")
    assert [c["State"]["Running"] for c in run.runners()] == [True]


def test_external_url_health_gates_startup(run):
    byoc = run.name("byoc")
    port = 44000 + int(run.id[:4], 16) % 2000
    docker("run", "-d", "--name", byoc, "-e", "BYOC_TOKEN=byoc-secret-token", "-p", f"127.0.0.2:{port}:9000", BYOC)
    url = f"http://127.0.0.2:{port}"
    wait_for(lambda: _health(url) == 200, 20, "the BYOC server")
    req = urllib.request.Request(url + "/text-to-image", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(req, timeout=5)
    assert denied.value.code == 401
    req.add_header("Authorization", "Bearer byoc-secret-token")
    assert urllib.request.urlopen(req, timeout=5).status == 200

    entry = {"pipeline": "llm", "model_id": "byoc/llm", "url": url, "token": "byoc-secret-token"}
    healthy = run.worker([entry])
    wait_for(lambda: "CLI server listening" in logs(healthy), 30, "the worker with a healthy external url")
    docker("rm", "-f", healthy)

    urllib.request.urlopen(urllib.request.Request(url + "/_sandbox/mode", data=b'{"mode": "unhealthy"}',
                                                  method="POST"), timeout=5)
    assert _health(url) == 503
    aborted = run.worker([entry])
    wait_for(lambda: state(aborted)["Status"] == "exited", 30, "the worker to abort")
    text = logs(aborted)
    assert "health check failed with status code 503" in text
    assert "external-health-failed" not in {f.cause for f in diagnose(text)}  # no URL in go-livepeer's error then
    assert "runner-timeout" in {f.cause for f in diagnose(text)}
    assert "byoc-secret-token" not in text

    docker("stop", "-t", "1", byoc)
    down = run.worker([entry])
    wait_for(lambda: state(down)["Status"] == "exited", 30, "the worker to abort")
    assert "external-health-failed" in {f.cause for f in diagnose(logs(down))}


def _health(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/health", timeout=3) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_runner_error_state_is_restarted_immediately(run):
    run.model("org/flaky", {"sandbox_failure": "runtime-error", "sandbox_error_after_seconds": 3})
    worker = run.worker([{"pipeline": "image-to-text", "model_id": "org/flaky", "warm": True}],
                        env={"LPSTANDIN_LOAD_S": "0"})
    wait_for(lambda: "Container returned ERROR state, restarting immediately" in logs(worker), 40, "ERROR state")
    wait_for(lambda: "Container was kept warm, restarting" in logs(worker), 20, "the re-warm")
    assert "runner-timeout" in {f.cause for f in diagnose(logs(worker))}


def test_stop_while_warming_exits_at_once(run):
    """go-livepeer returns from main on SIGTERM even while StartLivepeer still waits for a runner: `docker stop`
    must not sit out its whole timeout on a worker stuck warming a model that never loads."""
    run.model("org/hangs", {"sandbox_failure": "hang"})
    worker = run.worker([{"pipeline": "image-to-text", "model_id": "org/hangs", "warm": True}],
                        env={"LPSTANDIN_RUNNER_TIMEOUT_S": "120"})
    wait_for(lambda: "Starting managed container" in logs(worker), 30, "the worker to start warming")
    started = time.monotonic()
    docker("stop", "-t", "30", worker, timeout=60)
    assert time.monotonic() - started < 10
    assert "Exiting Livepeer: terminated" in logs(worker)
