"""The catalog: pipeline data as go-livepeer has it, model data as ai-runner's dl_checkpoints.sh has it."""

import re

import pytest

from lpfleet import catalog
from lpfleet.spec import PIPELINES


def test_every_spec_pipeline_is_in_the_catalog_and_nothing_else():
    assert set(catalog.PIPELINES) == set(PIPELINES)


@pytest.mark.parametrize(
    ("pipeline", "port"),
    [
        ("text-to-image", 8000),
        ("image-to-image", 8100),
        ("image-to-video", 8200),
        ("upscale", 8300),
        ("audio-to-text", 8400),
        ("llm", 8500),
        ("segment-anything-2", 8600),
        ("image-to-text", 8700),
        ("text-to-speech", 8800),
        ("live-video-to-video", 8900),
    ],
)
def test_base_ports(pipeline, port):
    assert catalog.base_port(pipeline) == port


def test_base_ports_are_distinct():
    ports = [p.base_port for p in catalog.PIPELINES.values()]
    assert len(ports) == len(set(ports))


def test_capability_names_follow_go_livepeer():
    assert catalog.capability_name("text-to-image") == "Text to image"
    assert catalog.capability_name("llm") == "Llm"
    assert catalog.capability_name("segment-anything-2") == "Segment anything 2"
    assert catalog.pipeline_info("text-to-image").capability_id == 27
    assert sorted(p.capability_id for p in catalog.PIPELINES.values()) == list(range(27, 37))


def test_unknown_pipeline_raises_with_its_name():
    with pytest.raises(KeyError, match="text-2-image"):
        catalog.pipeline_info("text-2-image")
    assert not catalog.is_pipeline("text-2-image")
    assert catalog.is_pipeline("llm")


def test_default_runner_images():
    assert catalog.runner_image("text-to-image", "ByteDance/SDXL-Lightning") == "livepeer/ai-runner:latest"
    assert catalog.runner_image("llm", "meta-llama/Meta-Llama-3.1-8B-Instruct") == "livepeer/ai-runner:llm"
    assert catalog.runner_image("segment-anything-2", "facebook/sam2-hiera-large") == (
        "livepeer/ai-runner:segment-anything-2"
    )
    assert catalog.runner_image("text-to-speech", "x/y") == "livepeer/ai-runner:text-to-speech"
    assert catalog.runner_image("audio-to-text", "x/y") == "livepeer/ai-runner:audio-to-text"
    assert catalog.runner_image("live-video-to-video", "comfyui") == "livepeer/ai-runner:live-app-comfyui"
    assert catalog.runner_image("text-to-image", "x/y", default_image="mirror/runner:1") == "mirror/runner:1"


def test_runner_image_overrides():
    overrides = {
        "default": "mirror/runner:latest",
        "batch": {"llm": "mirror/runner:llm-2", "text-to-image": "mirror/t2i:3"},
        "live": {"streamdiffusion": "mirror/live:sd"},
    }
    assert catalog.runner_image("llm", "a/b", overrides=overrides) == "mirror/runner:llm-2"
    assert catalog.runner_image("text-to-image", "a/b", overrides=overrides) == "mirror/t2i:3"
    assert catalog.runner_image("upscale", "a/b", overrides=overrides) == "mirror/runner:latest"
    # a pipeline's own image wins over the default override, as in go-livepeer
    assert catalog.runner_image("audio-to-text", "a/b", overrides=overrides) == "livepeer/ai-runner:audio-to-text"
    assert catalog.runner_image("live-video-to-video", "streamdiffusion", overrides=overrides) == "mirror/live:sd"
    assert catalog.runner_image("live-video-to-video", "noop", overrides=overrides) == "livepeer/ai-runner:live-app-noop"


REFERENCE_MODELS = {
    # model id: (include patterns from reference/livepeer.md, gated)
    "SG161222/RealVisXL_V4.0_Lightning": (("*.fp16.safetensors", "*.json", "*.txt"), False),
    "ByteDance/SDXL-Lightning": (("*unet.safetensors",), False),
    "openai/whisper-large-v3": (("*.safetensors", "*.json"), False),
    "facebook/sam2-hiera-large": (("*.pt", "*.yaml"), False),
    "parler-tts/parler-tts-large-v1": (("*.safetensors", "*.json", "*.model"), False),
    "Salesforce/blip-image-captioning-large": (None, False),
    "stabilityai/stable-video-diffusion-img2vid-xt-1-1": (("*.fp16.safetensors", "*.json"), True),
    "meta-llama/Meta-Llama-3.1-8B-Instruct": (("*.json", "*.bin", "*.safetensors", "*.txt"), True),
}


@pytest.mark.parametrize("model_id", sorted(REFERENCE_MODELS))
def test_reference_models(model_id):
    include, gated = REFERENCE_MODELS[model_id]
    info = catalog.model_info(model_id)
    assert info is not None
    assert catalog.download_patterns(model_id) == include
    assert catalog.is_gated(model_id) is gated
    assert info.vram_gb and info.vram_gb > 0
    assert catalog.is_verified(model_id)


def test_sdxl_lightning_loads_the_sdxl_base():
    assert catalog.extra_models("ByteDance/SDXL-Lightning") == ("stabilityai/stable-diffusion-xl-base-1.0",)
    requests = catalog.weights_for("text-to-image", "ByteDance/SDXL-Lightning")
    assert [r.model_id for r in requests] == ["ByteDance/SDXL-Lightning", "stabilityai/stable-diffusion-xl-base-1.0"]
    assert requests[1].include == ("*.fp16.safetensors", "*.json", "*.txt")


def test_unknown_models_are_allowed_and_download_everything():
    assert catalog.model_info("acme/private-model") is None
    assert catalog.download_patterns("acme/private-model") is None
    assert catalog.extra_models("acme/private-model") == ()
    assert catalog.weights_for("text-to-image", "acme/private-model") == (
        catalog.WeightsRequest("acme/private-model", None),
    )
    assert not catalog.is_verified("acme/private-model")
    assert not catalog.is_gated("acme/private-model")
    assert catalog.vram_gb("acme/private-model") is None


def test_live_apps_need_no_weights():
    for app in ("streamdiffusion", "streamdiffusion-sdxl", "comfyui", "noop", "scope"):
        assert catalog.model_info(app) is not None
        assert catalog.weights_for("live-video-to-video", app) == ()
    assert catalog.weights_for("live-video-to-video", "some-new-app") == ()


def test_case_mismatch_is_found():
    assert catalog.canonical_model_id("bytedance/sdxl-lightning") == "ByteDance/SDXL-Lightning"
    assert catalog.canonical_model_id("ByteDance/SDXL-Lightning") is None
    assert catalog.canonical_model_id("acme/x") is None


def test_catalog_is_well_formed():
    hf_id = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
    for model_id, info in catalog.MODELS.items():
        assert info.pipelines and all(catalog.is_pipeline(p) for p in info.pipelines), model_id
        if info.hf_repo:
            assert hf_id.match(model_id), model_id
        for extra in info.extra_models:
            assert catalog.model_info(extra) is not None, f"{model_id} extra {extra} must be in the catalog"
    assert len({m.lower() for m in catalog.MODELS}) == len(catalog.MODELS)
