"""lpfleet.runners: runner containers named, placed and published exactly as go-livepeer does it.

Expected values come from reference/livepeer.md (GPU 1 -> 8001, slot 1 on GPU 0 -> 8010, the name example) and
are cross-checked against the go-livepeer stand-in's own implementation of the same rules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lpfleet import runners
from lpfleet.spec import AIModelEntry, NodeSpec, WorkerSpec

STANDIN = Path(__file__).resolve().parents[2] / "lpfleet" / "sandbox" / "images" / "livepeer-standin"


@pytest.fixture(scope="module")
def golivepeer():
    sys.path.insert(0, str(STANDIN))
    try:
        from lpstandin import golivepeer as module

        yield module
    finally:
        sys.path.remove(str(STANDIN))


def entry(pipeline: str = "text-to-image", model_id: str = "SG161222/RealVisXL_V4.0_Lightning", **kw) -> AIModelEntry:
    return AIModelEntry(pipeline=pipeline, model_id=model_id, **kw)


def node(*models: AIModelEntry, gpus=(0,), per_gpu: int = 1, **worker) -> NodeSpec:
    return NodeSpec(host="n1", groups=("g",), models=models, gpus=gpus, containers_per_gpu=per_gpu,
                    worker=WorkerSpec(**worker))


def test_reference_name_and_port():
    [r] = runners.expected_runners(node(entry(warm=True)))
    assert r.name == "text-to-image_SG161222-RealVisXL-V4.0-Lightning_8000"
    assert (r.port, r.gpu, r.slot) == (8000, 0, 0)
    assert r.image == "livepeer/ai-runner:latest"
    assert r.env == ("PIPELINE=text-to-image", "MODEL_ID=SG161222/RealVisXL_V4.0_Lightning")


def test_gpu_one_and_slot_one_ports():
    spec = node(entry(warm=True, capacity=3), gpus=(0, 1), per_gpu=2)
    placed = [(r.port, r.gpu, r.slot) for r in runners.expected_runners(spec)]
    # slot-major: slot 0 on every GPU first (colocated-0-0, colocated-0-1), then slot 1
    assert placed == [(8000, 0, 0), (8001, 1, 0), (8010, 0, 1)]


def test_each_pipeline_base_port():
    bases = {"text-to-image": 8000, "image-to-image": 8100, "image-to-video": 8200, "upscale": 8300,
             "audio-to-text": 8400, "llm": 8500, "segment-anything-2": 8600, "image-to-text": 8700,
             "text-to-speech": 8800}
    for pipeline, base in bases.items():
        [r] = runners.expected_runners(node(entry(pipeline, "org/model_x", warm=True), gpus=(2,)))
        assert r.port == base + 2
        assert r.name == f"{pipeline}_org-model-x_{base + 2}"


def test_cold_and_external_entries_start_no_container():
    spec = node(entry(model_id="a/cold"), entry("llm", "b/ext", url="http://byoc:9000", warm=True),
                entry("upscale", "c/warm", warm=True))
    assert [r.name for r in runners.expected_runners(spec)] == ["upscale_c-warm_8300"]


def test_warm_beyond_slots_is_unplaced():
    spec = node(entry(model_id="a/one", warm=True), entry("upscale", "b/two", warm=True), gpus=(0,))
    plan = runners.plan_runners(spec)
    assert [r.model_id for r in plan.runners] == ["a/one"]
    assert [e.model_id for e in plan.unplaced] == ["b/two"]


def test_no_gpus_is_emulated_gpu():
    [r] = runners.expected_runners(node(entry(warm=True), gpus=()))
    assert (r.port, r.gpu) == (8000, None)


def test_images_pipeline_defaults_and_overrides():
    spec = node(entry("segment-anything-2", "facebook/sam2-hiera-large", warm=True),
                entry("audio-to-text", "openai/whisper-large-v3"), entry("live-video-to-video", "noop"),
                entry("live-video-to-video", "my-app"))
    assert runners.runner_image(spec, "segment-anything-2", "x/y") == "livepeer/ai-runner:segment-anything-2"
    assert runners.runner_image(spec, "llm", "x/y") == "livepeer/ai-runner:llm"
    assert runners.runner_image(spec, "live-video-to-video", "noop") == "livepeer/ai-runner:live-app-noop"
    assert runners.runner_image(spec, "live-video-to-video", "my-app") is None
    assert runners.overrides_flag(spec) is None

    custom = node(entry(warm=True), runner_image="registry.local/ai-runner:v1",
                  runner_image_overrides={"batch": {"llm": "registry.local/llm:v2"}, "live": {"my-app": "me/app:1"}})
    assert runners.runner_image(custom, "text-to-image", "x/y") == "registry.local/ai-runner:v1"
    assert runners.runner_image(custom, "llm", "x/y") == "registry.local/llm:v2"
    # a pipeline image go-livepeer pins wins over the default, as in getContainerImageName
    assert runners.runner_image(custom, "text-to-speech", "x/y") == "livepeer/ai-runner:text-to-speech"
    assert runners.runner_image(custom, "live-video-to-video", "my-app") == "me/app:1"
    assert json.loads(runners.overrides_flag(custom)) == {
        "default": "registry.local/ai-runner:v1", "batch": {"llm": "registry.local/llm:v2"},
        "live": {"my-app": "me/app:1"}}


def test_optimization_flags_become_env():
    [r] = runners.expected_runners(node(entry(warm=True, optimization_flags={"SFAST": True, "DEEPCACHE": False,
                                                                            "MAX_MODEL_LEN": "8192"})))
    assert r.env[2:] == ("SFAST=true", "DEEPCACHE=false", "MAX_MODEL_LEN=8192")


@pytest.mark.parametrize("gpus,per_gpu", [((0,), 1), ((0, 1), 1), ((0, 1, 2, 3), 2), ((1, 3), 3), ((), 1)])
def test_matches_the_go_livepeer_stand_in(golivepeer, gpus, per_gpu):
    spec = node(entry(warm=True, capacity=len(gpus or (0,)) * per_gpu), gpus=gpus, per_gpu=per_gpu)
    slots = golivepeer.gpu_slots([str(g) for g in gpus] or ["emulated-0"], per_gpu)
    assert runners.gpu_slots(gpus, per_gpu) == slots
    theirs = [golivepeer.container_name("text-to-image", spec.models[0].model_id,
                                        golivepeer.BASE_PORTS["text-to-image"][:2] + golivepeer.port_offset(s))
              for s in slots]
    assert [r.name for r in runners.expected_runners(spec)] == theirs
