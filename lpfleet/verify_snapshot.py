"""The shape of a node's verify snapshot: what `lpfleet/facts/verify_node_script.py` prints, as TypedDicts.

Pure: no I/O. The node script is stdlib-only Python that runs on the node, so it writes plain dicts; this module
is the contract between it and `lpfleet.verification`, which reads them. `check_snapshot` is the boundary: the
fact's parsed answer goes through it, and an answer of any other shape becomes `{"error": ...}` ("could not
check") instead of a KeyError deep inside verification. Every key is optional (`total=False`): a node answers
only what it could gather, and an `error` snapshot carries nothing else.
"""

from __future__ import annotations

from typing import Any, Optional, cast

from pydantic import ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic validates typing.TypedDict only from Python 3.12

_FORBID = ConfigDict(extra="forbid")


class GpusInfo(TypedDict, total=False):
    """`nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used` (CSV lines) and how it went."""

    __pydantic_config__ = _FORBID  # type: ignore[misc]
    present: bool
    rc: Optional[int]
    lines: list[str]
    error: str


class DockerInfo(TypedDict, total=False):
    """The Engine API's `/info`: whether it answered, the registered runtimes and the default one."""

    __pydantic_config__ = _FORBID  # type: ignore[misc]
    ok: bool
    error: str
    runtimes: list[str]
    default_runtime: str
    version: str


class ContainerInfo(TypedDict, total=False):
    """A container inspect, cut to what verification reads (of its environment only PIPELINE and MODEL_ID)."""

    __pydantic_config__ = _FORBID  # type: ignore[misc]
    id: str
    name: str
    image: str
    status: str
    running: bool
    restarting: bool
    exit_code: Optional[int]
    oom_killed: bool
    error: str
    up_s: Optional[float]
    exited_ago_s: Optional[float]
    restart_count: int
    restart_policy: str
    docker_health: str
    creator: str
    creator_id: str
    port: Optional[int]
    host_ip: Optional[str]
    pipeline: str
    model_id: str


class ProbeInfo(TypedDict, total=False):
    """One `/health` GET (lpfleet.probe.ProbeResult as a dict; the body cut to 2000 characters)."""

    __pydantic_config__ = _FORBID  # type: ignore[misc]
    url: str
    status: Optional[int]
    body: str
    error: str
    elapsed_s: float


class ConfigEntry(TypedDict, total=False):
    """One entry of the deployed aiModels.json, keys lowered as go-livepeer matches them, without its token."""

    __pydantic_config__ = _FORBID  # type: ignore[misc]
    invalid: bool  # the entry is not a JSON object
    pipeline: Any
    model_id: Any
    warm: bool
    capacity: Optional[int]
    external: bool


class ConfigInfo(TypedDict, total=False):
    """The deployed aiModels.json: present, its sha256 and mode, its entries, or why it could not be read."""

    __pydantic_config__ = _FORBID  # type: ignore[misc]
    exists: bool
    sha256: str
    mode: str
    error: str
    entries: list[ConfigEntry]


class WeightsInfo(TypedDict, total=False):
    """One model in the models dir: refs/<branch> -> snapshots/<commit>, and each locked file at its size."""

    __pydantic_config__ = _FORBID  # type: ignore[misc]
    id: str
    repo_dir: bool
    commit: Optional[str]
    snapshot: bool
    files: int
    bytes: int
    missing: list[str]
    wrong_size: list[list[Any]]  # [path, locked size, size on the node]
    modified: list[str]  # files whose blob's stamp differs from the weights step's verification record
    expected_commit: Optional[str]
    refs: dict[str, str]  # every ref of the repo (name -> commit): a runner online moves refs/main
    snapshots: list[str]  # every snapshot folder's name
    records: list[str]  # the commits lpfleet verified (.lpfleet/verified/<repo folder>/<commit>.json)


class LiveInfo(TypedDict, total=False):
    """One live app's prepared weights: its image's id on the node, lpfleet's record, each folder's state."""

    __pydantic_config__ = _FORBID  # type: ignore[misc]
    app: str
    image_id: str
    record: Optional[dict[str, Any]]
    dirs: dict[str, str]  # folder -> ok | empty | missing


class NodeSnapshot(TypedDict, total=False):
    """Everything verification reads from one node, gathered in one round-trip; or only `error`."""

    __pydantic_config__ = _FORBID  # type: ignore[misc]
    error: str
    version: int
    now: float
    elapsed_s: float
    python: str
    gpus: GpusInfo
    docker: DockerInfo
    worker: Optional[ContainerInfo]
    containers: list[ContainerInfo]
    probes: list[ProbeInfo]
    logs: dict[str, list[str]]
    config: ConfigInfo
    weights: list[WeightsInfo]
    live: list[LiveInfo]


_ADAPTER: TypeAdapter[NodeSnapshot] = TypeAdapter(NodeSnapshot)


def check_snapshot(data: object) -> NodeSnapshot:
    """The snapshot as the node sent it when it has the NodeSnapshot shape, else `{"error": ...}` naming the
    first place it does not (an older or foreign node script, a truncated answer)."""
    try:
        _ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        return {"error": f"unexpected answer from the node script: {where}: {first['msg']}"}
    return cast(NodeSnapshot, data)
