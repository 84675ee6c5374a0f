"""Where a sandbox lives and what it is made of: its name, its state folder, `state.json`.

The state is the contract between `lpfleet sandbox up` and everything that uses the sandbox afterwards
(inventories/sandbox.py, inventories/group_data/*.py, tests, bench). It holds the per-sandbox secrets
(hub token, SSH key path), so state.json is written 0600 and its folder 0700.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_NAME = "lpfleet-sandbox"
NAME_ENV = "LPFLEET_SANDBOX"
DIR_ENV = "LPFLEET_SANDBOX_DIR"
STATE_FILE = "state.json"
KEY_FILE = "id_ed25519"
#: Docker object names and labels. Every container, network and volume of a sandbox carries LABEL=<name>.
LABEL = "lpfleet.sandbox"
ROLE_LABEL = "lpfleet.sandbox.role"
NOT_UP = "run `lpfleet sandbox up` first"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")


class SandboxError(RuntimeError):
    """Something about the sandbox a user has to fix; the message says what."""


class StateMissing(SandboxError):
    pass


def sandbox_name(env: Mapping[str, str] = os.environ) -> str:
    """The sandbox's name: LPFLEET_SANDBOX or the default; it prefixes every Docker object we make."""
    name = env.get(NAME_ENV) or DEFAULT_NAME
    if not _NAME.match(name):
        raise SandboxError(
            f"{NAME_ENV}={name!r} is not a usable sandbox name: lower-case letters, digits, '_', '.', '-', "
            "starting with a letter or digit, at most 40 characters"
        )
    return name


def project_root() -> Path:
    """The checkout this package runs from (where pyproject.toml is), else the current directory."""
    here = Path(__file__).resolve().parents[2]
    return here if (here / "pyproject.toml").is_file() else Path.cwd()


def sandboxes_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The folder holding one sub-folder per sandbox: LPFLEET_SANDBOX_DIR, else <project>/.sandbox."""
    override = env.get(DIR_ENV)
    return Path(override).resolve() if override else project_root() / ".sandbox"


def state_dir(name: str, env: Mapping[str, str] = os.environ) -> Path:
    return sandboxes_dir(env) / name


class Gpu(BaseModel):
    """One fake GPU, a row of the node's /etc/lpfleet-sandbox/gpus.csv (what nvidia-smi reports)."""

    model_config = ConfigDict(frozen=True)

    index: int
    uuid: str
    name: str
    memory_total_mib: int
    memory_used_mib: int = 0


class NodeState(BaseModel):
    name: str  # the inventory host name, also the container name
    index: int  # 1-based
    ssh_port: int  # on 127.0.0.1
    gpu_class: Literal["consumer", "datacenter"]
    gpus: list[Gpu]

    @property
    def container(self) -> str:
        return self.name


class HubState(BaseModel):
    container: str
    controller_url: str  # http://127.0.0.1:<port>, as this machine reaches it
    node_url: str  # http://<name>-hub:8080, as the nodes reach it
    token: str | None = None


class AptState(BaseModel):
    container: str
    repo_url: str  # node view
    key_url: str
    substituted_key_url: str
    key_fingerprint: str


class ServiceState(BaseModel):
    """A `target: host` image run as `<name>-<service>` on the sandbox network (see images.RunSpec)."""

    container: str
    image: str
    published: dict[str, str] = Field(default_factory=dict)  # "8080" -> "http://127.0.0.1:<port>"
    facts: dict[str, str] = Field(default_factory=dict)  # read from the running container (run.facts)


class SandboxState(BaseModel):
    name: str
    network: str
    ssh_key: str  # private key path; the public key is next to it (.pub)
    nodes: list[NodeState]
    services: dict[str, ServiceState] = Field(default_factory=dict)
    hub: HubState | None = None
    apt: AptState | None = None
    node_images: dict[str, str] = Field(default_factory=dict)  # every tag -> image id, loaded into every node
    secrets: dict[str, str] = Field(default_factory=dict)  # generated per sandbox (run.generated_secrets)

    def node(self, name_or_index: str | int) -> NodeState:
        for node in self.nodes:
            if node.name == name_or_index or node.index == name_or_index:
                return node
        raise SandboxError(f"sandbox {self.name} has no node {name_or_index!r}")


def state_path(name: str, env: Mapping[str, str] = os.environ) -> Path:
    return state_dir(name, env) / STATE_FILE


def load_state(name: str | None = None, env: Mapping[str, str] = os.environ) -> SandboxState:
    """The state of a sandbox that `up` made; StateMissing (saying what to run) when there is none."""
    name = name or sandbox_name(env)
    path = state_path(name, env)
    try:
        raw = path.read_text()
    except FileNotFoundError:
        raise StateMissing(f"sandbox {name!r} has no state at {path}: {NOT_UP}") from None
    try:
        return SandboxState.model_validate(json.loads(raw))
    except ValueError as exc:
        raise SandboxError(f"{path} is not a valid sandbox state ({exc}); `lpfleet sandbox up` rewrites it") from None


def save_state(state: SandboxState, env: Mapping[str, str] = os.environ) -> Path:
    """Write state.json atomically, 0600 from the start (it holds the hub token)."""
    folder = state_dir(state.name, env)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / STATE_FILE
    tmp = folder / f".{STATE_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(state.model_dump_json(indent=2) + "\n")
    os.replace(tmp, path)
    return path


def remove_state(name: str, env: Mapping[str, str] = os.environ) -> None:
    """Delete the sandbox's folder: state, key, env files, staged images, and what others keep per sandbox
    there (its models.lock pins the commits of a hub that is gone, demo logs)."""
    shutil.rmtree(state_dir(name, env), ignore_errors=True)
