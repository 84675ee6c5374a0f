"""The verify node script run for real (python3, as on a node) against a models dir, an aiModels.json,
runner-like HTTP servers on 127.0.0.1 and a unix-socket server answering the Docker Engine API calls it
makes with payloads shaped like Docker 20.10's (captured fields only)."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lpfleet.facts.verify import NodeVerification, _bootstrap, encode_params, parse_output

TOKEN = "byoc-token-should-never-leave-the-node"


def _frame(stream: int, text: str) -> bytes:
    data = text.encode()
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


def inspect(
    name,
    running=True,
    restarting=False,
    restart_count=0,
    port=None,
    started="2026-11-26T10:00:00.123456789Z",
    env=("PIPELINE=text-to-image", "MODEL_ID=org/model", "SECRET=do-not-read"),
):
    return {
        "Id": f"{name}-0123456789abcdef",
        "Name": f"/{name}",
        "RestartCount": restart_count,
        "State": {
            "Status": "restarting" if restarting else ("running" if running else "exited"),
            "Running": running,
            "Restarting": restarting,
            "OOMKilled": False,
            "ExitCode": 0 if running else 1,
            "Error": "",
            "StartedAt": started,
            "FinishedAt": "0001-01-01T00:00:00Z",
        },
        "Config": {
            "Image": "livepeer/ai-runner:latest",
            "Env": list(env),
            "Labels": {"creator": "ai-worker", "creator_id": "orch-1"},
        },
        "HostConfig": {
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            "PortBindings": {"8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]} if port else {},
        },
    }


class DockerAPI(BaseHTTPRequestHandler):
    containers: dict = {}
    logs: dict = {}
    requests: list = []

    def do_GET(self):  # noqa: N802
        self.requests.append(self.path)
        path = self.path.split("?")[0]
        if path == "/info":
            return self._json(
                {
                    "ServerVersion": "20.10.24+dfsg1",
                    "DefaultRuntime": "runc",
                    "Runtimes": {"runc": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"}},
                }
            )
        if path == "/containers/json":
            assert "creator%3Dai-worker" in self.path or "creator=ai-worker" in self.path
            return self._json(
                [{"Id": c["Id"]} for n, c in self.containers.items() if n != "livepeer_ai_worker"]
            )
        parts = path.split("/")
        if len(parts) == 4 and parts[1] == "containers":
            found = next((c for n, c in self.containers.items() if parts[2] in (n, c["Id"])), None)
            if found is None:
                return self._json({"message": "No such container"}, 404)
            if parts[3] == "json":
                return self._json(found)
            if parts[3] == "logs":
                body = b"".join(_frame(2, line + "\n") for line in self.logs.get(found["Name"][1:], []))
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
        self._json({"message": "not found"}, 404)

    def _json(self, data, status=200):
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

    def address_string(self):
        return "unix"


class UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("unix", 0)


class Runner(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = json.dumps({"status": self.server.health}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _start(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def node(tmp_path):
    sock = str(tmp_path / "docker.sock")
    docker = _start(UnixHTTPServer(sock, DockerAPI))
    ok = _start(ThreadingHTTPServer(("127.0.0.1", 0), Runner))
    ok.health = "OK"
    loading = _start(ThreadingHTTPServer(("127.0.0.1", 0), Runner))
    loading.health = "LOADING"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    DockerAPI.containers = {
        "livepeer_ai_worker": inspect("livepeer_ai_worker", env=("ORCH_SECRET=nope",)),
        "runner-ok": inspect("runner-ok", port=ok.server_address[1]),
        "runner-loading": inspect("runner-loading", port=loading.server_address[1]),
        "runner-crash": inspect(
            "runner-crash", running=True, restarting=True, restart_count=3, port=dead_port
        ),
    }
    DockerAPI.logs = {
        "runner-crash": ["loading", "torch.cuda.OutOfMemoryError: CUDA out of memory."],
        "livepeer_ai_worker": ["Starting managed container gpu=0 name=runner-crash"],
        "runner-ok": ["should not be read"],
    }
    DockerAPI.requests = []
    models = tmp_path / "models"
    repo = models / "models--org--model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("c" * 40)
    snap = repo / "snapshots" / ("c" * 40)
    (snap / "unet").mkdir(parents=True)
    (repo / "blobs").mkdir()
    (repo / "blobs" / "aaa").write_bytes(b"x" * 100)
    os.symlink("../../../blobs/aaa", snap / "unet" / "model.safetensors")
    (snap / "config.json").write_text("{}")
    config = tmp_path / "aiModels.json"
    config.write_text(
        json.dumps(
            [
                {"pipeline": "text-to-image", "model_id": "org/model", "warm": True},
                {
                    "Pipeline": "llm",
                    "model_id": "byoc/llm",
                    "url": "http://127.0.0.1:1",
                    "token": TOKEN,
                    "capacity": 2,
                },
            ]
        )
    )
    config.chmod(0o600)
    params = {
        "docker_socket": sock,
        "worker": "livepeer_ai_worker",
        "runner_label": "creator=ai-worker",
        "runner_names": ["runner-ok", "runner-loading", "runner-crash", "runner-absent"],
        "runner_ports": [ok.server_address[1], loading.server_address[1], dead_port],
        "urls": [f"http://127.0.0.1:{ok.server_address[1]}/health"],
        "timeout": 2,
        "log_lines": 50,
        "ai_models_path": str(config),
        "models_dir": str(models),
        "weights": [
            {
                "id": "org/model",
                "branch": "main",
                "commit": "c" * 40,
                "files": [["unet/model.safetensors", 100], ["config.json", 2]],
            },
            {
                "id": "org/model",
                "branch": "main",
                "commit": None,
                "files": [["unet/model.safetensors", 99], ["tokenizer.json", 5]],
            },
            {"id": "org/other", "branch": "main", "commit": None, "files": None},
        ],
    }
    yield params
    for server in (docker, ok, loading):
        server.shutdown()
        server.server_close()


def run_script(params):
    started = time.monotonic()
    proc = subprocess.run(
        ["python3", "-c", _bootstrap(), encode_params(params)], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    return parse_output(proc.stdout.splitlines()), time.monotonic() - started, proc.stdout


def test_everything_in_one_answer(node):
    snap, elapsed, raw = run_script(node)
    assert elapsed < 5
    assert "error" not in snap, snap  # the real script's answer has the NodeSnapshot shape (verify_snapshot)
    assert (
        snap["docker"]["ok"]
        and "nvidia" in snap["docker"]["runtimes"]
        and snap["docker"]["version"].startswith("20")
    )
    assert snap["worker"]["name"] == "livepeer_ai_worker" and snap["worker"]["running"]
    by_name = {c["name"]: c for c in snap["containers"]}
    assert set(by_name) == {"runner-ok", "runner-loading", "runner-crash"}
    crash = by_name["runner-crash"]
    assert crash["restarting"] and crash["restart_count"] == 3 and crash["restart_policy"] == "on-failure:3"
    assert (
        by_name["runner-ok"]["pipeline"] == "text-to-image"
        and by_name["runner-ok"]["model_id"] == "org/model"
    )
    assert by_name["runner-ok"]["host_ip"] == "127.0.0.1" and by_name["runner-ok"]["up_s"] > 0
    health = {p["url"]: p for p in snap["probes"]}
    ok_port, loading_port, dead_port = node["runner_ports"]
    assert json.loads(health[f"http://127.0.0.1:{ok_port}/health"]["body"]) == {"status": "OK"}
    assert json.loads(health[f"http://127.0.0.1:{loading_port}/health"]["body"]) == {"status": "LOADING"}
    assert health[f"http://127.0.0.1:{dead_port}/health"]["error"] == "connection refused"
    # logs of troubled containers only: the crashing and the loading runner, and the worker (a runner is absent)
    assert snap["logs"]["runner-crash"][-1] == "torch.cuda.OutOfMemoryError: CUDA out of memory."
    assert "runner-ok" not in snap["logs"] and "livepeer_ai_worker" in snap["logs"]
    # the config without its secrets, keys matched case-insensitively as go-livepeer does
    config = snap["config"]
    assert config["mode"] == "0o600" and len(config["sha256"]) == 64
    assert config["entries"] == [
        {
            "pipeline": "text-to-image",
            "model_id": "org/model",
            "warm": True,
            "capacity": None,
            "external": False,
        },
        {"pipeline": "llm", "model_id": "byoc/llm", "warm": False, "capacity": 2, "external": True},
    ]
    assert TOKEN not in raw and "do-not-read" not in raw and "ORCH_SECRET" not in raw
    complete, wrong, absent = snap["weights"]
    assert complete["files"] == 2 and complete["bytes"] == 102 and not complete["missing"]
    assert wrong["wrong_size"] == [["unet/model.safetensors", 99, 100]] and wrong["missing"] == [
        "tokenizer.json"
    ]
    assert absent == {
        "id": "org/other",
        "repo_dir": False,
        "commit": None,
        "snapshot": False,
        "files": 0,
        "bytes": 0,
        "missing": [],
        "wrong_size": [],
        "modified": [],
        "expected_commit": None,
    }


def test_docker_not_answering_is_reported_not_fatal(node, tmp_path):
    node["docker_socket"] = str(tmp_path / "absent.sock")
    snap, _, _ = run_script(node)
    assert not snap["docker"]["ok"] and "absent.sock" in snap["docker"]["error"]
    assert snap["containers"] == [] and snap["worker"] is None
    assert snap["weights"][0]["files"] == 2  # the rest is still gathered


def test_missing_config_and_invalid_json(node, tmp_path):
    node["ai_models_path"] = str(tmp_path / "nope.json")
    assert run_script(node)[0]["config"] == {"exists": False}
    bad = tmp_path / "bad.json"
    bad.write_text('[{"pipeline": "x", "optimization_flags": {"SFAST": 1}}')
    node["ai_models_path"] = str(bad)
    assert run_script(node)[0]["config"]["error"].startswith("not valid JSON")


def test_fact_command_and_output_parsing():
    fact = NodeVerification()
    command = fact.command(params="eyJhIjoxfQ==").get_raw_value()
    assert command.startswith(
        "if command -v python3 >/dev/null 2>&1; then python3 -c 'import base64,zlib;exec("
    )
    assert command.endswith("\")))' eyJhIjoxfQ== 2>&1; else echo @@no-python3; fi; true")
    assert len(command) < 16_000  # one argument, well under the kernel's limit
    assert parse_output(["@@no-python3"])["error"].startswith("python3 not found")
    assert parse_output(["Traceback (most recent call last):", "ValueError: boom"]) == {
        "error": "the node script failed: ValueError: boom"
    }
    assert parse_output(['@@lpfleet-verify {"version": 1}']) == {"version": 1}
    # an answer of another shape is "could not check", never a KeyError inside verification
    assert parse_output(['@@lpfleet-verify {"docker": {"ok": true, "runtime": []}}']) == {
        "error": "unexpected answer from the node script: docker.runtime: Extra inputs are not permitted"
    }
    assert parse_output(['@@lpfleet-verify {"containers": {"a": 1}}'])["error"].startswith(
        "unexpected answer from the node script: containers: "
    )
