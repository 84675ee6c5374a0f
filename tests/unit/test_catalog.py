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


#: `hf download` lines quoted from livepeer/ai-runner v0.14.1 (50a742c) runner/dl_checkpoints.sh, with their line.
DL_CHECKPOINTS = {
    125: 'hf download SG161222/RealVisXL_V4.0_Lightning --include "*.fp16.safetensors" --include "*.json" '
         '--include "*.txt" --exclude ".onnx" --exclude ".onnx_data" --cache-dir models',
    126: 'hf download ByteDance/SDXL-Lightning --include "*unet.safetensors" --cache-dir models',
    127: 'hf download timbrooks/instruct-pix2pix --include "*.fp16.safetensors" --include "*.json" --include "*.txt" '
         '--cache-dir models',
    133: 'hf download openai/whisper-large-v3 --include "*.safetensors" --include "*.json" --cache-dir models',
    134: 'hf download distil-whisper/distil-large-v3 --include "*.safetensors" --include "*.json" --cache-dir models',
    135: 'hf download openai/whisper-medium --include "*.safetensors" --include "*.json" --cache-dir models',
    138: 'hf download facebook/sam2-hiera-large --include "*.pt" --include "*.yaml" --cache-dir models',
    139: 'hf download parler-tts/parler-tts-large-v1 --include "*.safetensors" --include "*.json" --include "*.model" '
         '--cache-dir models',
    145: 'hf download stabilityai/stable-video-diffusion-img2vid-xt-1-1 --include "*.fp16.safetensors" '
         '--include "*.json" --cache-dir models ${TOKEN_FLAG:+"$TOKEN_FLAG"}',
    156: 'hf download stabilityai/sd-turbo --include "*.fp16.safetensors" --include "*.json" --include "*.txt" '
         '--exclude ".onnx" --exclude ".onnx_data" --cache-dir models',
    158: 'hf download runwayml/stable-diffusion-v1-5 --include "*.fp16.safetensors" --include "*.json" '
         '--include "*.txt" --exclude ".onnx" --exclude ".onnx_data" --cache-dir models',
    160: 'hf download prompthero/openjourney-v4 --include "*.safetensors" --include "*.json" --include "*.txt" '
         '--exclude ".onnx" --exclude ".onnx_data" --cache-dir models',
    162: 'hf download stabilityai/stable-diffusion-3-medium-diffusers --include "*.fp16*.safetensors" '
         '--include "*.model" --include "*.json" --include "*.txt" --cache-dir models ${TOKEN_FLAG:+"$TOKEN_FLAG"}',
    165: 'hf download SG161222/Realistic_Vision_V6.0_B1_noVAE --include "*.fp16.safetensors" --include "*.json" '
         '--include "*.txt" --include "*.bin" --exclude ".onnx" --exclude ".onnx_data" --cache-dir models',
    166: 'hf download black-forest-labs/FLUX.1-schnell --include "*.safetensors" --include "*.json" --include "*.txt" '
         '--include "*.model" --exclude ".onnx" --exclude ".onnx_data" --cache-dir models',
    172: 'hf download Salesforce/blip-image-captioning-large --include "*.safetensors" --include "*.json" '
         '--cache-dir models',
}
#: download_beta_models (dl_checkpoints.sh:119-146): "recommended beta phase models", the verified set.
BETA_LINES = range(119, 147)
GATED = {"stabilityai/stable-video-diffusion-img2vid-xt-1-1", "stabilityai/stable-diffusion-3-medium-diffusers"}


@pytest.mark.parametrize("line", sorted(DL_CHECKPOINTS))
def test_catalog_follows_dl_checkpoints(line):
    words = DL_CHECKPOINTS[line].split()
    model_id = words[2]
    include = tuple(words[i + 1].strip('"') for i, w in enumerate(words) if w == "--include")
    info = catalog.model_info(model_id)
    assert info is not None, model_id
    assert catalog.download_patterns(model_id) == include, f"dl_checkpoints.sh:{line}"
    assert catalog.is_gated(model_id) is (model_id in GATED)
    assert info.vram_gb and info.vram_gb > 0
    if line in BETA_LINES:
        assert catalog.is_verified(model_id), f"dl_checkpoints.sh:{line} is a beta (verified) model"


def test_upscaler_takes_its_configs_too():
    # dl_checkpoints.sh:130 takes "*.fp16.safetensors" only; an offline load needs the configs (kept on purpose)
    assert catalog.download_patterns("stabilityai/stable-diffusion-x4-upscaler") == (
        "*.fp16.safetensors", "*.json", "*.txt")


def test_safety_checker_is_a_companion_of_the_diffusers_pipelines():
    # ai-runner v0.14.1 runner/src/runner/pipelines/utils/utils.py:159-164 (SafetyChecker), built by
    # text_to_image.py:209, image_to_image.py:178, image_to_video.py:110, upscale.py:98
    for pipeline in ("text-to-image", "image-to-image", "image-to-video", "upscale"):
        ids = [r.model_id for r in catalog.weights_for(pipeline, "acme/x")]
        assert ids == ["acme/x", "CompVis/stable-diffusion-safety-checker", "openai/clip-vit-base-patch32"]
    for pipeline in ("llm", "audio-to-text", "image-to-text", "segment-anything-2", "text-to-speech"):
        assert [r.model_id for r in catalog.weights_for(pipeline, "acme/x")] == ["acme/x"]


def test_realistic_vision_loads_its_vae():
    # ai-runner v0.14.1 runner/src/runner/pipelines/text_to_image.py:84-86
    ids = [r.model_id for r in catalog.weights_for("text-to-image", "SG161222/Realistic_Vision_V6.0_B1_noVAE")]
    assert ids[:2] == ["SG161222/Realistic_Vision_V6.0_B1_noVAE", "stabilityai/sd-vae-ft-ema"]


def test_live_apps_are_go_livepeers_table():
    # go-livepeer 176aa41 ai/worker/docker.go:71-88 livePipelineToImage
    assert catalog.LIVE_APP_IMAGES["scope"] == "daydreamlive/scope-runner"
    assert catalog.LIVE_APP_IMAGES["streamdiffusion-sdxl-v2v"] == "livepeer/ai-runner:live-app-streamdiffusion-sdxl-v2v"
    assert len(catalog.LIVE_APP_IMAGES) == 10
    assert catalog.live_app_image("my-app") is None
    assert catalog.live_app_image("my-app", {"my-app": "reg/app:1"}) == "reg/app:1"
    assert catalog.runner_image("live-video-to-video", "scope") == "daydreamlive/scope-runner"
    for app in catalog.LIVE_APP_IMAGES:
        assert catalog.model_info(app) is not None


def test_live_weights_are_prepared_into_the_models_dir():
    # ai-runner v0.14.1 dl_checkpoints.sh:456 makes the folders, :241-246 runs the image with PREPARE_MODELS=1;
    # live/streamdiffusion/Dockerfile:29 links ./engines to /models/StreamDiffusion--engines
    assert catalog.prepared_dirs("live-video-to-video", "streamdiffusion") == ("StreamDiffusion--engines",)
    assert catalog.prepared_dirs("live-video-to-video", "comfyui") == ("ComfyUI--models",)
    assert catalog.prepared_dirs("live-video-to-video", "scope") == ("Scope--models",)
    assert catalog.prepared_dirs("text-to-image", "streamdiffusion") == ()


def test_sdxl_lightning_loads_the_sdxl_base():
    assert catalog.extra_models("ByteDance/SDXL-Lightning") == ("stabilityai/stable-diffusion-xl-base-1.0",)
    requests = catalog.weights_for("text-to-image", "ByteDance/SDXL-Lightning")
    assert [r.model_id for r in requests][:2] == ["ByteDance/SDXL-Lightning", "stabilityai/stable-diffusion-xl-base-1.0"]
    assert requests[1].include == ("*.fp16.safetensors", "*.json", "*.txt")


def test_unknown_models_are_allowed_and_download_everything():
    assert catalog.model_info("acme/private-model") is None
    assert catalog.download_patterns("acme/private-model") is None
    assert catalog.extra_models("acme/private-model") == ()
    assert catalog.weights_for("llm", "acme/private-model") == (
        catalog.WeightsRequest("acme/private-model", None),
    )
    assert not catalog.is_verified("acme/private-model")
    assert not catalog.is_gated("acme/private-model")
    assert catalog.vram_gb("acme/private-model") is None


def test_live_apps_need_no_hf_weights():
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


def test_live_prepare_runs_like_dl_checkpoints():
    # ai-runner v0.14.1 runner/dl_checkpoints.sh:241-246 (PREPARE_MODELS=1) and :287-290 (ComfyUI setup_models.py)
    sd = catalog.live_prepare("streamdiffusion-sdxl")
    assert sd.image == "livepeer/ai-runner:live-app-streamdiffusion-sdxl"
    assert sd.env == ("HF_HUB_OFFLINE=0", "PREPARE_MODELS=1") and sd.command is None
    assert catalog.live_prepare("scope").image == "daydreamlive/scope-runner"
    comfy = catalog.live_prepare("comfyui")
    assert "setup_models.py" in comfy.command[-1] and comfy.dirs == ("ComfyUI--models",)
    assert catalog.live_prepare("noop") is None
    assert catalog.live_prepare("my-app") is None
    assert catalog.live_prepare("streamdiffusion", {"streamdiffusion": "reg/sd:2"}).image == "reg/sd:2"
