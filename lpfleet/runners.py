"""The runner containers go-livepeer starts on a node: names, host ports, GPUs and images, computed its way.

Pure. Mirrors go-livepeer's `ai/worker/docker.go` (reference/livepeer.md): GPU slots are the `-nvidia` ids,
repeated per `-aiRunnerContainersPerGPU` as `colocated-<slot>-<gpu>` (slot-major order); a warm entry takes the
first free slot, `capacity` times; the host port is the first two digits of the pipeline's base port, then the
slot digit, then the GPU id (string concatenation, exactly as go-livepeer does it); the name is
`<pipeline>_<model_id with "/" and "_" as "-">_<port>`. External (`url`) entries start no container; cold
entries start one only when a job arrives. Verification and the worker task both use this.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lpfleet.catalog import DEFAULT_RUNNER_IMAGE, LIVE_APP_IMAGES, LIVE_PIPELINE, PIPELINES
from lpfleet.spec import AIModelEntry, NodeSpec

#: Live apps go-livepeer has a built-in image for (ai/worker/docker.go:71-88); others need an override.
LIVE_APPS = tuple(LIVE_APP_IMAGES)


@dataclass(frozen=True)
class RunnerContainer:
    """One runner container as go-livepeer names and publishes it."""

    name: str
    port: int  # host port on 127.0.0.1 (container port 8000)
    pipeline: str
    model_id: str
    gpu: int | None  # the hardware GPU id in its device request; None without -nvidia (emulated)
    slot: int  # index of the container on that GPU (-aiRunnerContainersPerGPU)
    image: str | None  # None: go-livepeer has no image for this live app ("no container image found")
    env: tuple[str, ...] = ()

    @property
    def host_port(self) -> int:
        return self.port


@dataclass(frozen=True)
class RunnerPlan:
    """Where the warm runners go; `unplaced` are warm containers beyond the GPU slots (go-livepeer exits)."""

    runners: tuple[RunnerContainer, ...]
    unplaced: tuple[AIModelEntry, ...] = ()
    slots: tuple[str, ...] = field(default=())


def gpu_slots(gpus: tuple[int, ...] | list[int], containers_per_gpu: int = 1) -> list[str]:
    """go-livepeer's GPU list: "-nvidia" ids (or "emulated-0" without), colocated when more than one per GPU."""
    names = [str(g) for g in gpus] or ["emulated-0"]
    if containers_per_gpu > 1:
        return [f"colocated-{i}-{g}" for i in range(containers_per_gpu) for g in names]
    return names


def _port_offset(slot_name: str) -> str:
    res = "00"
    gpu = slot_name
    if slot_name.startswith("colocated-"):
        index, _, gpu = slot_name[len("colocated-"):].partition("-")
        res = index + res[1:]
    if gpu.startswith("emulated-"):
        gpu = gpu[len("emulated-"):]
    return res[:1] + gpu


def host_port(pipeline: str, slot_name: str) -> int:
    """The host port go-livepeer publishes a runner on, e.g. text-to-image on GPU 1 -> 8001, slot 1 GPU 0 -> 8010."""
    return int(str(PIPELINES[pipeline].base_port)[:2] + _port_offset(slot_name))


def container_name(pipeline: str, model_id: str, port: int) -> str:
    return f"{pipeline}_{model_id.replace('/', '-').replace('_', '-')}_{port}"


def _slot_gpu(slot_name: str) -> tuple[int | None, int]:
    slot = 0
    gpu = slot_name
    if slot_name.startswith("colocated-"):
        index, _, gpu = slot_name[len("colocated-"):].partition("-")
        slot = int(index)
    if gpu.startswith("emulated-"):
        return None, slot
    return int(gpu), slot


def image_overrides(spec: NodeSpec) -> dict:
    """The `-aiRunnerImageOverrides` value: group data overrides, `runner_image` as the default image."""
    raw = dict(spec.worker.runner_image_overrides or {})
    overrides = {"default": raw.get("default") or "", "batch": dict(raw.get("batch") or {}),
                 "live": dict(raw.get("live") or {})}
    if not overrides["default"] and spec.worker.runner_image != DEFAULT_RUNNER_IMAGE:
        overrides["default"] = spec.worker.runner_image
    return overrides


def overrides_flag(spec: NodeSpec) -> str | None:
    """JSON for -aiRunnerImageOverrides, or None when go-livepeer's defaults apply unchanged."""
    overrides = image_overrides(spec)
    if not overrides["default"] and not overrides["batch"] and not overrides["live"]:
        return None
    return json.dumps({k: v for k, v in overrides.items() if v}, sort_keys=True, separators=(",", ":"))


def runner_image(spec: NodeSpec, pipeline: str, model_id: str) -> str | None:
    """go-livepeer's getContainerImageName: live overrides/apps, batch overrides, pipeline images, default."""
    overrides = image_overrides(spec)
    if pipeline == LIVE_PIPELINE:
        if model_id in overrides["live"]:
            return overrides["live"][model_id]
        return LIVE_APP_IMAGES.get(model_id)
    if pipeline in overrides["batch"]:
        return overrides["batch"][pipeline]
    info = PIPELINES[pipeline]
    if info.runner_image and info.runner_image != DEFAULT_RUNNER_IMAGE:
        return info.runner_image
    return overrides["default"] or DEFAULT_RUNNER_IMAGE


def runner_env(entry: AIModelEntry) -> tuple[str, ...]:
    """PIPELINE, MODEL_ID and each optimization flag (bools and null as "true"/"false", ai/worker/worker.go:21-36),
    as go-livepeer sets them."""
    env = [f"PIPELINE={entry.pipeline}", f"MODEL_ID={entry.model_id}"]
    for key, value in entry.optimization_flags.items():
        text = ("true" if value else "false") if isinstance(value, bool) or value is None else str(value)
        env.append(f"{key}={text}")
    return tuple(env)


def plan_runners(spec: NodeSpec) -> RunnerPlan:
    """The warm runner containers, in the order go-livepeer starts them (entries in file order)."""
    slots = gpu_slots(spec.gpus, spec.containers_per_gpu)
    free = list(slots)
    placed: list[RunnerContainer] = []
    unplaced: list[AIModelEntry] = []
    for entry in spec.models:
        if entry.is_external or not entry.warm or entry.pipeline not in PIPELINES:
            continue
        for _ in range(entry.capacity or 1):
            if not free:
                unplaced.append(entry)
                continue
            slot_name = free.pop(0)
            port = host_port(entry.pipeline, slot_name)
            gpu, slot = _slot_gpu(slot_name)
            placed.append(RunnerContainer(
                name=container_name(entry.pipeline, entry.model_id, port),
                port=port,
                pipeline=entry.pipeline,
                model_id=entry.model_id,
                gpu=gpu,
                slot=slot,
                image=runner_image(spec, entry.pipeline, entry.model_id),
                env=runner_env(entry),
            ))
    return RunnerPlan(tuple(placed), tuple(unplaced), tuple(slots))


def expected_runners(spec: NodeSpec) -> list[RunnerContainer]:
    """The runner containers a healthy node has running (warm entries that fit the GPU slots)."""
    return list(plan_runners(spec).runners)


def runner_images(spec: NodeSpec) -> list[str]:
    """Every image go-livepeer needs on the node for this config (warm and cold managed entries)."""
    images: list[str] = []
    for entry in spec.models:
        if entry.is_external or entry.pipeline not in PIPELINES:
            continue
        image = runner_image(spec, entry.pipeline, entry.model_id)
        if image and image not in images:
            images.append(image)
    return images
