"""Weights on nodes: the runtime that fetches, the fetch itself, and the LAN mirror of fan-out mode.

How a node downloads (argued in docs/weights.md): the controller ships a small runtime, lpfleet's weights modules
plus huggingface_hub and its pure-Python dependencies copied from the controller's own environment, unpacked
under /opt/lpfleet/weights-runtime/<hash>/ and run with the node's python3. No pip, no PyPI and no internet are
needed on the node beyond the endpoint itself (air-gapped fleets work against a LAN mirror), and node and
controller run the same, tested code. It is uploaded only to a node that has something to fetch or serve.

Every operation here reads the node's state from ONE fact (`WeightsState`), gathered once per run for the whole
fleet (`fleet_weights`) and shared with each host's operations: a complete node costs that one round-trip and
0 bytes. Tokens (the HF token, the run's mirror token) travel on the command's stdin, never in its command line,
environment assignments or output.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import sys
import tarfile
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from pyinfra import host
from pyinfra.api import FileUploadCommand, OperationError, QuoteString, StringCommand, operation

from lpfleet.facts.batch import FactRequest, known_fact
from lpfleet.facts.weights import WeightsState, encode_params
from lpfleet.lock import LockedModel
from lpfleet.operations.plan_notes import note
from lpfleet.secrets import Secret, reveal
from lpfleet.weights import FanoutPlan, WeightsPlan, human_bytes, plan_fanout, plan_node, scan_request
from lpfleet.weights_fetch import DEADLINE_FLOOR

RUNTIME_ROOT = "/opt/lpfleet/weights-runtime"
MIRROR_PORT = 8790  # fan-out: the port a serving node listens on for its peers
MIRROR_PID_FILE = "/run/lpfleet-weights-mirror.pid"
MIRROR_LOCK_FILE = "/run/lpfleet-weights-mirror.lock"
MIRROR_LOG_FILE = "/var/log/lpfleet-weights-mirror.log"
RELAY_BOARD = "/run/lpfleet-weights-relay-{run_id}"  # fan-out chain: the fetch tells its mirror what arrives

# lpfleet modules the node runs (nothing that imports pyinfra, pydantic or docker).
RUNTIME_MODULES = (
    "lpfleet/__init__.py",
    "lpfleet/catalog.py",
    "lpfleet/lock.py",
    "lpfleet/weights.py",
    "lpfleet/weights_fetch.py",
    "lpfleet/weights_mirror.py",
    "lpfleet/weights_relay.py",
    "lpfleet/commands/__init__.py",
    "lpfleet/commands/prefetch.py",
)
# Distributions shipped with it: PyYAML (models.lock's parser) and what it needs. The download path itself is
# the standard library (lpfleet.weights_fetch): huggingface_hub is needed on the controller only.
RUNTIME_ROOTS = ("PyYAML",)
RUNTIME_SKIP: set[str] = set()


# --- the runtime bundle (built on the controller, cached per content)


@dataclass(frozen=True)
class RuntimeBundle:
    digest: str  # sha256 over every file's path and content (names the runtime on nodes)
    python: tuple[int, int]  # the controller's python: nodes need this minor version or newer

    @property
    def remote_dir(self) -> str:
        return f"{RUNTIME_ROOT}/{self.digest[:16]}"

    @property
    def archive(self) -> bytes:
        """The tar.gz, built in memory on first use (only when some node needs the runtime uploaded)."""
        return runtime_archive(self.digest)

    @property
    def archive_sha256(self) -> str:
        """What the node checks the uploaded archive against before extracting it."""
        return hashlib.sha256(self.archive).hexdigest()

    @property
    def path(self) -> str:
        """The tar.gz as a local file (tests, benchmarks), in a private folder of this process."""
        return _archive_file(self.digest)


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_distributions(roots: Sequence[str] = RUNTIME_ROOTS) -> list[metadata.Distribution]:
    """The installed distributions the node runtime needs (markers evaluated for this interpreter)."""
    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = _norm(todo.pop())
        if name in seen or name in RUNTIME_SKIP:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency not installed here (a marker for another platform)
        seen[name] = dist
        for raw in dist.requires or []:
            req = Requirement(raw)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            todo.append(req.name)
    return [seen[k] for k in sorted(seen)]


def _runtime_files() -> list[tuple[str, Path]]:
    files: dict[str, Path] = {}
    package_root = Path(__file__).resolve().parents[2]
    for rel in RUNTIME_MODULES:
        files[rel] = package_root / rel
    for dist in runtime_distributions():
        for f in dist.files or []:
            rel = str(f)
            if rel.startswith("..") or "__pycache__" in rel or rel.endswith((".pyc", ".exe")):
                continue
            if "/" not in rel and not rel.endswith(".py"):  # top level: single-module distributions only
                continue
            if rel.split("/", 1)[0].endswith(".data"):
                continue
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                files[rel] = path
    return sorted(files.items())


@lru_cache(maxsize=1)
def runtime_bundle() -> RuntimeBundle:
    """The node runtime's identity: cheap (hashes the files; the archive is only built when uploaded)."""
    digest = hashlib.sha256()
    for rel, path in _runtime_files():
        data = path.read_bytes()
        digest.update(b"%s\0%d\0" % (rel.encode(), len(data)))
        digest.update(data)
    return RuntimeBundle(digest.hexdigest(), sys.version_info[:2])


@lru_cache(maxsize=2)
def runtime_archive(digest: str) -> bytes:
    """A reproducible tar.gz of the runtime files (same inputs, same bytes), built in memory: nothing on the
    controller's disk that another local user could swap for their own code."""
    import gzip

    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=6) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        for rel, file_path in _runtime_files():
            data = file_path.read_bytes()
            info = tarfile.TarInfo(rel)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@lru_cache(maxsize=2)
def _archive_file(digest: str) -> str:
    folder = tempfile.mkdtemp(prefix="lpfleet-runtime-")  # 0700, ours, new: never a name someone else chose
    path = Path(folder) / f"{digest[:16]}.tar.gz"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(runtime_archive(digest))
    return str(path)


# --- the fleet's view: one scan per host, one plan per run


@dataclass
class FleetWeights:
    """Every host's scan and weights plan, the fan-out plan, and this run's id and mirror tokens (one per
    serving node: a peer's token opens only the mirror it was given for)."""

    scans: dict[str, dict[str, Any]] = field(default_factory=dict)
    plans: dict[str, WeightsPlan] = field(default_factory=dict)
    fanout: FanoutPlan = field(default_factory=FanoutPlan)
    run_id: str = field(default_factory=lambda: secrets.token_hex(8))
    mirror_tokens: dict[str, str] = field(default_factory=dict)

    def mirror_token(self, serving_host: str) -> str:
        return self.mirror_tokens.setdefault(serving_host, secrets.token_hex(24))


_fleets: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def scan_fact_request(models: Sequence[LockedModel], models_dir: str) -> FactRequest:
    """The WeightsState fact a host's scan reads (also the run's batch entry: lpfleet.facts.batch)."""
    params = encode_params(models_dir, scan_request(models), runtime_bundle().remote_dir)
    return FactRequest(WeightsState, {"params": params})


def _scan(target: Any, models: Sequence[LockedModel], models_dir: str) -> dict[str, Any]:
    request = scan_fact_request(models, models_dir)
    return known_fact(target, request.cls, **request.kwargs)


def fleet_weights(
    models_for: Callable[[Any], tuple[Sequence[LockedModel], str, str]],
) -> FleetWeights:
    """Scan every active host once (concurrently) and plan the fleet; later calls in the run reuse it.

    `models_for(host) -> (locked models, models dir, branch)`.
    """
    import gevent
    from gevent.event import AsyncResult

    run = host.state  # the real State (the `state` name is a context proxy)
    slot = _fleets.get(run)
    if slot is None:
        slot = _fleets[run] = AsyncResult()
        hosts = list(run.inventory.get_active_hosts())

        def gather(target: Any) -> tuple[str, dict[str, Any], WeightsPlan]:
            from pyinfra.context import ctx_host, ctx_state

            with ctx_state.use(run), ctx_host.use(target):  # pyinfra's context is per greenlet
                models, models_dir, branch = models_for(target)
                scan = _scan(target, models, models_dir)
            return target.name, scan, plan_node(models, scan, branch) if "error" not in scan else WeightsPlan(())

        try:
            jobs = [gevent.spawn(gather, h) for h in hosts]
            gevent.joinall(jobs, raise_error=True)
            fleet = FleetWeights()
            for job in jobs:
                name, scan, plan = job.value
                fleet.scans[name] = scan
                fleet.plans[name] = plan
            fleet.fanout = plan_fanout({n: p for n, p in fleet.plans.items() if "error" not in fleet.scans[n]})
            slot.set(fleet)
        except Exception as exc:  # noqa: BLE001 - every host waiting on the slot must see the failure
            slot.set_exception(exc)
    return slot.get()


def host_scan(models: Sequence[LockedModel], models_dir: str) -> dict[str, Any]:
    """This host's scan: the fleet's when gathered this run, else one fact round-trip now."""
    fleet = _fleets.get(host.state)
    if fleet is not None and fleet.ready() and fleet.successful() and host.name in fleet.value.scans:
        return fleet.value.scans[host.name]
    return _scan(host, models, models_dir)


# --- operations


def _fail_if_unscannable(scan: Mapping[str, Any]) -> None:
    if "error" in scan:
        raise OperationError(f"weights: cannot read the models dir: {scan['error']}")
    if scan.get("problems"):
        raise OperationError("weights: " + "; ".join(scan["problems"]))


def _python_ok(scan: Mapping[str, Any], bundle: RuntimeBundle) -> None:
    version = tuple(int(x) for x in str(scan.get("python", "0.0")).split(".")[:2])
    if version < bundle.python:
        raise OperationError(
            f"weights: the node's python3 is {scan.get('python')}; the weights runtime is built with the "
            f"controller's Python {bundle.python[0]}.{bundle.python[1]} and needs that or newer on the node")


@operation()
def runtime_installed(models: Sequence[LockedModel], models_dir: str):
    """
    Install the weights runtime (lpfleet weights modules + PyYAML from the controller) on the node.

    + models: the locked models the node needs (for the shared scan)
    + models_dir: the node's models dir
    """
    bundle = runtime_bundle()
    scan = host_scan(models, models_dir)
    _fail_if_unscannable(scan)
    _python_ok(scan, bundle)
    if scan.get("runtime"):
        host.noop(f"weights runtime {bundle.digest[:16]} is installed")
        return
    run_id = secrets.token_hex(6)  # names unique per run: two runs never share a temp file or folder
    archive = f"{bundle.remote_dir}.{run_id}.tar.gz"
    unpacked = f"{bundle.remote_dir}.{run_id}.new"
    yield StringCommand("mkdir", "-p", "-m", "0755", QuoteString(RUNTIME_ROOT))
    yield FileUploadCommand(io.BytesIO(bundle.archive), archive)
    yield StringCommand(
        # the archive is checked against the sha256 the controller computed before anything is extracted
        "printf", QuoteString("%s  %s\n"), QuoteString(bundle.archive_sha256), QuoteString(archive), "|",
        "sha256sum", "-c", "--status", "-", "||", "{", "rm", "-f", QuoteString(archive), ";",
        "echo", QuoteString("weights runtime archive does not match its sha256; not extracted"), ">&2", ";",
        "exit", "1", ";", "}", ";",
        "mkdir", "-m", "0755", QuoteString(unpacked), "&&",
        "tar", "--no-same-owner", "-xzf", QuoteString(archive), "-C", QuoteString(unpacked), "&&",
        "rm", "-f", QuoteString(archive), "&&",
        # bytecode now, once: the first fetch on a fresh node should not pay for compiling
        "python3", "-m", "compileall", "-q", QuoteString(unpacked), ">/dev/null", "&&",
        "touch", QuoteString(f"{unpacked}/.complete"), "&&",
        "rm", "-rf", QuoteString(bundle.remote_dir), "&&",
        "mv", "-T", QuoteString(unpacked), QuoteString(bundle.remote_dir), "&&",
        # older runtimes of earlier lpfleet versions go
        "find", QuoteString(RUNTIME_ROOT), "-mindepth", "1", "-maxdepth", "1", "!", "-name",
        QuoteString(f"{bundle.digest[:16]}*"), "-mmin", "+60", "-exec", "rm", "-rf", "{}", "+",
    )


def _runtime_command(bundle: RuntimeBundle, *args: Any) -> StringCommand:
    return StringCommand(
        "env", QuoteString(f"PYTHONPATH={bundle.remote_dir}"), "python3", "-m", *args,
    )


@dataclass(frozen=True)
class Endpoint:
    """An HF-compatible endpoint and its credential: the hub (the HF token) or a peer (that peer's mirror
    token)."""

    url: str
    token: Secret | None
    label: str  # for messages: "upstream" or "peer <name>"
    token_env: str = "HF_TOKEN"

    def to_plan(self) -> dict[str, Any]:
        return {"endpoint": self.url, "token": reveal(self.token), "token_env": self.token_env}


@dataclass(frozen=True)
class FetchSource:
    """Where a group of models comes from: `endpoint`, then `fallbacks` in order when it fails or lies."""

    endpoint: Endpoint
    models: tuple[LockedModel, ...]
    fallbacks: tuple[Endpoint, ...] = ()
    wait: float = 0.0  # seconds a chain peer may take to get to these models (added to each file's deadline)

    def describe(self) -> str:
        return " then ".join(f"{e.label} {e.url}" for e in (self.endpoint, *self.fallbacks))


ATTEMPTS = 3  # rounds lpfleet.weights_fetch makes per model


def fetch_timeout(models: Sequence[LockedModel], min_rate: int) -> int:
    """A backstop for the whole fetch command (pyinfra `_timeout`): every file at its deadline, every round,
    one after another, plus slack. The per-file deadlines on the node end a stalled transfer long before."""
    per_round = sum(max(DEADLINE_FLOOR, f.size / max(min_rate, 1)) for m in models for f in m.files)
    return int(ATTEMPTS * per_round + 600)


@operation()
def models_fetched(
    models: Sequence[LockedModel],
    models_dir: str,
    branch: str,
    sources: Sequence[FetchSource],
    min_rate: int = 1_000_000,
    relay_board: str | None = None,
):
    """
    Fetch the node's incomplete models from the given sources, verified by hash, refs written last.

    + models: every locked model the node needs (for the shared scan; also the order they are fetched in)
    + models_dir: the node's models dir (a host path, mounted at /models in runners)
    + branch: the ref the runner reads
    + sources: which models to take from which endpoint (each model once)
    + min_rate: bytes/s; each file's deadline on the node is max(120 s, size / min_rate)
    + relay_board: fan-out chain: where this node's mirror learns which files arrive (it forwards them)
    """
    bundle = runtime_bundle()
    scan = host_scan(models, models_dir)
    _fail_if_unscannable(scan)
    plan = plan_node([m for s in sources for m in s.models], scan, branch)
    if plan.complete:
        host.noop("weights: " + (", ".join(m.summary() for m in plan.models) or "nothing to fetch"))
        return
    todo = {(m.model.model_id, m.model.commit) for m in plan.incomplete}
    used = [s for s in sources if any((m.model_id, m.commit) in todo for m in s.models)]
    note(
        f"fetch {human_bytes(plan.bytes_to_fetch)} ({plan.bytes_to_fetch} bytes) of weights "
        f"into {models_dir}",
        [m.summary() for m in plan.incomplete] + [f"from {s.describe()}" for s in used],
    )
    source_of = {(m.model_id, m.commit): s for s in used for m in s.models}
    # one command, every model in the same order on every node: a chain's nodes move through the models
    # together, each a few bytes behind the one before it
    wanted = sorted((m for m in models if (m.model_id, m.commit) in todo and (m.model_id, m.commit) in source_of),
                    key=lambda m: (m.model_id, m.commit))
    if not wanted:
        host.noop("weights: no source given for the missing models")
        return
    chosen = [source_of[(m.model_id, m.commit)] for m in wanted]
    payload: dict[str, Any] = {
        "branch": branch,
        "min_rate": int(min_rate),
        "models": [m.to_dict() for m in wanted],
        "model_sources": [[e.to_plan() for e in (s.endpoint, *s.fallbacks)] for s in chosen],
        "model_waits": [int(s.wait) for s in chosen],
    }
    if relay_board:
        payload["relay_board"] = relay_board
    rounds = 1 + max(len(s.fallbacks) for s in chosen)
    yield StringCommand(
        _runtime_command(bundle, "lpfleet.commands.prefetch", "--plan-stdin", "--models-dir",
                         QuoteString(models_dir)),
        _stdin=json.dumps(payload),
        _timeout=fetch_timeout(wanted, min_rate) * rounds + int(max(s.wait for s in chosen)),
    )


def mirror_max_life(models: Sequence[LockedModel], peers: int, min_rate: int) -> int:
    """How long a mirror may live at most: every peer copying every byte at the minimum rate, plus slack."""
    total = sum(f.size for m in models for f in m.files)
    return int(max(3600.0, max(peers, 1) * total / max(min_rate, 1) + 600))


@operation()
def mirror_serving(
    models_dir: str,
    serve: Sequence[LockedModel],
    token: Secret | None,
    bind: str,
    run_id: str,
    port: int = MIRROR_PORT,
    peers: int = 1,
    min_rate: int = 1_000_000,
    relay: Sequence[LockedModel] = (),
    relay_board: str | None = None,
):
    """
    Serve this node's verified copies of `serve` to its peers for the rest of the run (fan-out mode), and
    the files of `relay` while this node's own fetch receives them (a chain: copies multiply as they arrive).

    + models_dir: the node's models dir
    + serve: the models peers copy from this node
    + relay: those of `serve` this node fetches in this run itself
    + relay_board: where the fetch announces the files in flight (a new folder the mirror makes)
    + token: this mirror's own token (its peers send it; it reaches the node on stdin)
    + bind: the LAN address to listen on (weights_lan_address, else the inventory name); never a wildcard
    + run_id: this run's id (the mirror's pid file names it; `mirror_stopped` stops only that one)
    + port: where peers connect
    + peers: how many peers copy from it (sizes its maximum life)
    + min_rate: bytes/s, the slowest copy expected (sizes its maximum life)
    """
    if not serve:
        host.noop("weights: no peer needs a model from this node")
        return
    bundle = runtime_bundle()
    relayed = {(m.model_id, m.commit) for m in relay}
    payload = {
        "token": reveal(token),
        "models": [[m.model_id, m.commit] for m in serve if (m.model_id, m.commit) not in relayed],
        "relay": [m.to_dict() for m in relay],
    }
    board = ["--relay-board", QuoteString(relay_board)] if relay and relay_board else []
    yield StringCommand(
        _runtime_command(bundle, "lpfleet.weights_mirror", "serve", "--models-dir", QuoteString(models_dir),
                         *board,
                         "--host", QuoteString(bind), "--port", str(int(port)),
                         "--pid-file", QuoteString(MIRROR_PID_FILE),
                         "--lock-file", QuoteString(MIRROR_LOCK_FILE), "--run-id", QuoteString(run_id),
                         "--max-life", str(mirror_max_life(serve, peers, min_rate)),
                         "--log-file", QuoteString(MIRROR_LOG_FILE)),
        _stdin=json.dumps(payload),
    )


@operation()
def mirror_stopped(serving: bool, run_id: str = ""):
    """
    Stop this run's weights mirror on the node once every peer has its copy (never another run's).

    + serving: whether this run started one on this node
    + run_id: this run's id
    """
    if not serving:
        host.noop("weights: no mirror to stop")
        return
    yield _runtime_command(runtime_bundle(), "lpfleet.weights_mirror", "stop", "--pid-file",
                           QuoteString(MIRROR_PID_FILE), "--run-id", QuoteString(run_id))
