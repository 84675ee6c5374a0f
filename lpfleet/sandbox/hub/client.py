"""Drive a running sandbox hub's `/_sandbox/` control API (tests, benchmarks, the demo). Stdlib only."""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode


class HubControl:
    """`HubControl("http://127.0.0.1:PORT")`: faults, byte counters, settings, new commits."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/_sandbox/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.loads(response.read() or b"null")

    def health(self) -> bool:
        return bool(self._call("GET", "health").get("ok"))

    def models(self, files: bool = False, repo: str | None = None) -> list[dict[str, Any]]:
        """The served repos (`repo`: that one only); `files` lists main's files, generating their content."""
        query = {**({"files": "1"} if files else {}), **({"repo": repo} if repo else {})}
        return self._call("GET", "models" + (f"?{urlencode(query)}" if query else ""))

    def counters(self) -> dict[str, Any]:
        return self._call("GET", "counters")

    def reset_counters(self) -> dict[str, Any]:
        """Zero the counters; returns what they were."""
        return self._call("POST", "counters/reset", {})

    def add_fault(self, kind: str, **fields: Any) -> dict[str, Any]:
        """kind: error | stall | truncate | wrong-bytes | bandwidth; fields: repo, path, on, times, status,
        seconds, after_bytes, rate, shared (see `server.Fault`)."""
        return self._call("POST", "faults", {"kind": kind, **fields})

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")

    def clear_faults(self, fault_id: int | None = None) -> int:
        return self._call("DELETE", f"faults/{fault_id}" if fault_id else "faults")["removed"]

    def settings(self, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "settings", changes) if changes else self._call("GET", "settings")

    def reset(self) -> None:
        """Faults off, counters zero, settings default, every repo back at its first commit."""
        self._call("POST", "reset", {})

    def bump(self, repo_id: str) -> str:
        """Push a new commit to the repo's `main`; returns its sha."""
        return self._call("POST", f"repos/{quote(repo_id)}/bump", {})["sha"]
