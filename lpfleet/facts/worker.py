"""The go-livepeer worker container as the node's dockerd sees it, in ONE round-trip.

Read through the Engine API on the node's socket (curl), so it needs no docker CLI and answers the same on
Docker 20.10 and 28: the container (id, image id, labels, state), the image id the configured tag points at
now, whether aiModels.json is in place, and the sha256 and mode of the orch secret file (never its content).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from lpfleet.facts.batch import FactRequest
from lpfleet.worker_plan import DOCKER_SOCKET, WorkerPlan

# $1 container name, $2 image ref, $3 aiModels.json path, $4 secret file path ("" = none), $5 socket.
_SCRIPT = r"""
sock=$5
api() { curl -s --max-time 20 --unix-socket "$sock" "http://localhost$1" | base64 -w0; echo; }
if [ -S "$sock" ] && command -v curl >/dev/null 2>&1; then
  printf '@@container '; api "/containers/$1/json"
  printf '@@image '; api "/images/$2/json"
else
  echo "@@nodocker"
fi
if [ -f "$3" ]; then echo "@@models present"; else echo "@@models missing"; fi
if [ -n "$4" ]; then
  if [ -f "$4" ]; then echo "@@secret $(sha256sum <"$4" | cut -d' ' -f1) $(stat -c %a "$4")"; else echo "@@secret - -"; fi
fi
"""


@dataclass(frozen=True)
class WorkerContainerState:
    """What the node has. `container` is None when no such container exists (or dockerd is not there yet)."""

    docker: bool = False
    container_id: str | None = None
    container_image_id: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    status: str | None = None  # running, exited, restarting, created, paused, dead
    restarting: bool = False
    image_id: str | None = None  # what the configured image ref points at now
    models_present: bool = False
    secret_sha256: str | None = None
    secret_mode: str | None = None

    @property
    def exists(self) -> bool:
        return self.container_id is not None

    @property
    def running(self) -> bool:
        return self.status == "running"


def _decode(b64: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(base64.b64decode(b64.strip() or b"e30=") or b"{}")
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def parse_output(lines: list[str]) -> WorkerContainerState:
    values: dict[str, Any] = {"docker": False}
    for line in lines:
        tag, _, rest = line.strip().partition(" ")
        if tag == "@@container":
            values["docker"] = True
            doc = _decode(rest)
            if doc and doc.get("Id"):
                state = doc.get("State") or {}
                values.update(
                    container_id=doc["Id"],
                    container_image_id=doc.get("Image"),
                    labels=dict((doc.get("Config") or {}).get("Labels") or {}),
                    status=state.get("Status"),
                    restarting=bool(state.get("Restarting")),
                )
        elif tag == "@@image":
            doc = _decode(rest)
            if doc and doc.get("Id"):
                values["image_id"] = doc["Id"]
        elif tag == "@@models":
            values["models_present"] = rest.strip() == "present"
        elif tag == "@@secret":
            sha, _, mode = rest.strip().partition(" ")
            if sha != "-":
                values["secret_sha256"] = sha
                values["secret_mode"] = mode
    return WorkerContainerState(**values)


class WorkerContainer(FactBase[WorkerContainerState]):
    """The worker container, its image and its config files on the node (see WorkerContainerState)."""

    def command(self, container: str, image: str, ai_models_path: str, secret_path: str = "",
                socket: str = DOCKER_SOCKET) -> StringCommand:
        return StringCommand(
            "sh", "-c", QuoteString(_SCRIPT), "lpfleet-worker-fact",
            QuoteString(container), QuoteString(image), QuoteString(ai_models_path), QuoteString(secret_path),
            QuoteString(socket),
        )

    def process(self, output: list[str]) -> WorkerContainerState:
        return parse_output(output)


def worker_request(plan: WorkerPlan) -> FactRequest:
    """The WorkerContainer fact the worker step reads for a WorkerPlan (also the run's batch entry)."""
    return FactRequest(
        WorkerContainer,
        {
            "container": plan.name,
            "image": plan.image,
            "ai_models_path": plan.ai_models_path,
            "secret_path": plan.secret_path,
        },
    )
