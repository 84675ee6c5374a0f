"""The go-livepeer AI worker container the node should run: a pure plan from the spec (no I/O, no pyinfra).

The plan carries a hash of everything the container is made from - the `docker run` options, go-livepeer's
flags, the image reference, the sha256 of the aiModels.json content it reads and of the orch secret - and the
container carries it as a label (`lpfleet.operations.worker` compares them). The orchestrator secret never
appears in the plan's command line: `-orchSecret` names a 0600 file beside aiModels.json.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from dataclasses import dataclass

from lpfleet.rules import format_number
from lpfleet.runners import expected_runners, overrides_flag
from lpfleet.spec import NodeSpec

DOCKER_SOCKET = "/var/run/docker.sock"
SPEC_LABEL = "lpfleet.worker.spec"
SECRET_FILE = ".orchSecret"
STOP_TIMEOUT_S = 60  # go-livepeer stops and removes its runner containers on SIGTERM
#: go-livepeer warms runners one after the other, up to 3 min each (5 with optimization flags).
READY_BASE_S = 30
READY_PER_WARM_S = 200
READY_MAX_S = 900


@dataclass(frozen=True)
class WorkerPlan:
    """The worker container the node should run."""

    name: str
    image: str
    options: tuple[str, ...]  # `docker run` options, before the image
    flags: tuple[str, ...]  # go-livepeer's command line, after the image
    spec_hash: str
    ai_models_path: str
    secret_path: str  # "" when no orch secret is configured
    cli_port: int = 7935  # go-livepeer's CLI server answers once its warm runners started
    ready_timeout_s: int = READY_BASE_S

    def describe(self) -> str:
        return f"{self.name} ({self.image})"


def secret_path(spec: NodeSpec) -> str:
    """Where the orch secret file lives: beside aiModels.json, in the folder mounted into the container."""
    return posixpath.join(posixpath.dirname(spec.ai_models_path), SECRET_FILE) if spec.worker.orch_secret else ""


def worker_flags(spec: NodeSpec) -> list[str]:
    """go-livepeer's command line for the node (no secret in it: -orchSecret names a file)."""
    w = spec.worker
    flags: list[str] = []
    if w.mode == "orchestrator":
        flags += ["-orchestrator"]
        if w.service_addr:
            flags += ["-serviceAddr", w.service_addr]
    flags += ["-aiWorker", "-network", w.network]
    if w.mode == "worker" and w.orch_addr:
        flags += ["-orchAddr", w.orch_addr]
    if w.orch_secret:
        flags += ["-orchSecret", secret_path(spec)]
    flags += ["-aiModels", spec.ai_models_path, "-aiModelsDir", spec.models_dir]
    if spec.gpus:
        flags += ["-nvidia", ",".join(str(g) for g in spec.gpus)]
    if spec.containers_per_gpu != 1:
        flags += ["-aiRunnerContainersPerGPU", str(spec.containers_per_gpu)]
    overrides = overrides_flag(spec)
    if overrides:
        flags += ["-aiRunnerImageOverrides", overrides]
    if w.prices_onchain:
        if w.price_per_unit is not None:
            # plain notation: go-livepeer's -pricePerUnit takes no exponent (str(1e-07) would be "1e-07")
            flags += ["-pricePerUnit", format_number(w.price_per_unit)]
        if w.pixels_per_unit is not None:
            flags += ["-pixelsPerUnit", str(w.pixels_per_unit)]
        if w.price_feed_addr:
            flags += ["-priceFeedAddr", w.price_feed_addr]
    flags += list(w.extra_flags)
    return flags


def docker_run_options(spec: NodeSpec) -> list[str]:
    """Host network, the docker socket (go-livepeer starts runners on the node's dockerd), aiModels.json's
    folder at the same path (go-livepeer's data dir is under it with the default ~/.lpData layout), GPUs."""
    config_dir = posixpath.dirname(spec.ai_models_path)
    options = [
        "--network", "host",
        "--restart", "unless-stopped",
        "--stop-timeout", str(STOP_TIMEOUT_S),
        "-v", f"{DOCKER_SOCKET}:{DOCKER_SOCKET}",
        "-v", f"{config_dir}:{config_dir}",
    ]
    if spec.gpus:
        options += ["--gpus", '"device=' + ",".join(str(g) for g in spec.gpus) + '"']
    return options


def cli_port(spec: NodeSpec) -> int:
    """go-livepeer's CLI port: -cliAddr from the extra flags, else 7935 (orchestrator) / 4935 (AI worker)."""
    flags = list(spec.worker.extra_flags)
    for i, flag in enumerate(flags):
        name, _, value = flag.lstrip("-").partition("=")
        if name == "cliAddr":
            value = value or (flags[i + 1] if i + 1 < len(flags) else "")
            port = value.rpartition(":")[2]
            if port.isdigit():
                return int(port)
    return 7935 if spec.worker.mode == "orchestrator" else 4935


def ready_timeout_s(spec: NodeSpec) -> int:
    return min(READY_MAX_S, READY_BASE_S + READY_PER_WARM_S * len(expected_runners(spec)))


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def worker_plan(spec: NodeSpec, ai_models_sha256: str) -> WorkerPlan:
    """The desired container; `ai_models_sha256` is the sha256 of the aiModels.json content the node gets."""
    options = docker_run_options(spec)
    flags = worker_flags(spec)
    secret = spec.worker.orch_secret.get_secret_value() if spec.worker.orch_secret else None
    material = {
        "image": spec.worker.image,
        "options": options,
        "flags": flags,
        "ai_models": ai_models_sha256,
        # go-livepeer reads the secret at start: a new secret needs a new container. Only a hash of a hash
        # ends up in the label.
        "secret": sha256_text(secret) if secret else None,
    }
    digest = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
    return WorkerPlan(
        name=spec.worker.container_name,
        image=spec.worker.image,
        options=tuple(options),
        flags=tuple(flags),
        spec_hash=digest,
        ai_models_path=spec.ai_models_path,
        secret_path=secret_path(spec),
        cli_port=cli_port(spec),
        ready_timeout_s=ready_timeout_s(spec),
    )
