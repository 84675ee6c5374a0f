"""A minimal Docker Engine API client over the unix socket (http.client only, no SDK in the images)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse


class DockerError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class DockerAPI:
    """Unversioned API paths: the daemon answers with its own current version (20.10 .. 28 alike)."""

    def __init__(self, socket_path: str | None = None, timeout: float = 60.0) -> None:
        # docker.FromEnv, as go-livepeer's client: DOCKER_HOST=unix:///path, else the default socket.
        host = os.environ.get("DOCKER_HOST", "")
        default = host[len("unix://"):] if host.startswith("unix://") else "/var/run/docker.sock"
        self.socket_path = socket_path or default
        self.timeout = timeout

    def call(self, method: str, path: str, body: object = None, query: dict | None = None) -> object:
        if query:
            path = path + "?" + urllib.parse.urlencode(query)
        conn = _UnixConnection(self.socket_path, self.timeout)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status >= 400:
            try:
                message = json.loads(data).get("message", "")
            except (ValueError, AttributeError):
                message = data.decode(errors="replace")
            raise DockerError(resp.status, f"Error response from daemon: {message}")
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode(errors="replace")

    # The calls go-livepeer's DockerManager makes.
    def list_containers(self, label: str) -> list[dict]:
        filters = json.dumps({"label": [label]})
        return self.call("GET", "/containers/json", query={"all": "1", "filters": filters})  # type: ignore[return-value]

    def create(self, name: str, config: dict) -> str:
        return self.call("POST", "/containers/create", config, query={"name": name})["Id"]  # type: ignore[index]

    def start(self, cid: str) -> None:
        self.call("POST", f"/containers/{cid}/start")

    def inspect(self, cid: str) -> dict:
        return self.call("GET", f"/containers/{cid}/json")  # type: ignore[return-value]

    def stop(self, cid: str, timeout_s: int = 8) -> None:
        try:
            self.call("POST", f"/containers/{cid}/stop", query={"t": str(timeout_s)})
        except DockerError as exc:
            if exc.status not in (304, 404):
                raise

    def remove(self, cid: str) -> None:
        try:
            self.call("DELETE", f"/containers/{cid}", query={"force": "1"})
        except DockerError as exc:
            if exc.status != 404 and "already in progress" not in exc.message:
                raise

    def image_exists(self, ref: str) -> bool:
        try:
            self.call("GET", f"/images/{ref}/json")
            return True
        except DockerError as exc:
            if exc.status == 404:
                return False
            raise
