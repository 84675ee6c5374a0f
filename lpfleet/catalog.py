"""What lpfleet knows about Livepeer AI pipelines and models: pure data plus lookups.

Sources: go-livepeer 176aa41 (`core/ai.go`, `ai/worker/docker.go`), ai-runner v0.14.1
(`runner/dl_checkpoints.sh`, `runner/src/runner/pipelines/*.py`); every row is cited in `docs/fidelity.md`.
Unknown models are allowed everywhere: `model_info` returns None for them and
`download_patterns` returns None (= every file of the repository).

VRAM figures are rough estimates of what one warm runner needs (weights in fp16/bf16 plus
working memory), good enough to warn when a model cannot fit a GPU class; they are not
measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: go-livepeer's default runner image (`-aiRunnerImage`).
DEFAULT_RUNNER_IMAGE = "livepeer/ai-runner:latest"

#: Pipelines whose runner is a "live" app: the model_id names the app, not a HF repository.
LIVE_PIPELINE = "live-video-to-video"

#: go-livepeer's fixed table of live apps and their images (`livePipelineToImage`, ai/worker/docker.go:71-88).
#: Any other live model_id fails with "no container image found for live pipeline <id>" (docker.go:283) unless
#: `-aiRunnerImageOverrides` names an image for it under "live".
LIVE_APP_IMAGES: Mapping[str, str] = {
    "streamdiffusion": "livepeer/ai-runner:live-app-streamdiffusion",
    "streamdiffusion-sd15": "livepeer/ai-runner:live-app-streamdiffusion-sd15",
    "streamdiffusion-sd15-v2v": "livepeer/ai-runner:live-app-streamdiffusion-sd15-v2v",
    "streamdiffusion-sdxl": "livepeer/ai-runner:live-app-streamdiffusion-sdxl",
    "streamdiffusion-sdxl-v2v": "livepeer/ai-runner:live-app-streamdiffusion-sdxl-v2v",
    "streamdiffusion-sdxl-faceid": "livepeer/ai-runner:live-app-streamdiffusion-sdxl-faceid",
    "comfyui": "livepeer/ai-runner:live-app-comfyui",
    "segment_anything_2": "livepeer/ai-runner:live-app-segment_anything_2",
    "noop": "livepeer/ai-runner:live-app-noop",
    "scope": "daydreamlive/scope-runner",
}

#: Repositories the ai-runner loads for every model of these pipelines: the NSFW safety checker
#: (`SafetyChecker.__init__`, runner/src/runner/pipelines/utils/utils.py:159-164, built by the text-to-image,
#: image-to-image, image-to-video and upscale pipelines). dl_checkpoints.sh does not fetch them, so an
#: online runner fetches them unpinned and an offline one fails: lpfleet locks and fetches them.
PIPELINE_COMPANIONS: Mapping[str, tuple[str, ...]] = {
    p: ("CompVis/stable-diffusion-safety-checker", "openai/clip-vit-base-patch32")
    for p in ("text-to-image", "image-to-image", "image-to-video", "upscale")
}


@dataclass(frozen=True)
class PipelineInfo:
    """One go-livepeer AI pipeline.

    `base_port` is the host port of slot 0 on GPU 0; `runner_image` is the image go-livepeer
    uses when no override is given (None for the live pipeline: it depends on the model id);
    `capability` is the name gateways show in `capabilities_names`; `capability_id` is
    go-livepeer's numeric id (map by name when reading a gateway: ids may move).
    """

    name: str
    base_port: int
    runner_image: str | None
    capability: str
    capability_id: int

    @property
    def is_live(self) -> bool:
        return self.name == LIVE_PIPELINE


def _capability_name(pipeline: str) -> str:
    # go-livepeer: first letter upper-cased, "-" as spaces ("Text to image", "Llm").
    words = pipeline.replace("-", " ")
    return words[:1].upper() + words[1:]


def _pipeline(name: str, base_port: int, capability_id: int, image: str | None = DEFAULT_RUNNER_IMAGE) -> PipelineInfo:
    return PipelineInfo(name, base_port, image, _capability_name(name), capability_id)


PIPELINES: Mapping[str, PipelineInfo] = {
    p.name: p
    for p in (
        _pipeline("text-to-image", 8000, 27),
        _pipeline("image-to-image", 8100, 28),
        _pipeline("image-to-video", 8200, 29),
        _pipeline("upscale", 8300, 30),
        _pipeline("audio-to-text", 8400, 31, "livepeer/ai-runner:audio-to-text"),
        _pipeline("segment-anything-2", 8600, 32, "livepeer/ai-runner:segment-anything-2"),
        _pipeline("llm", 8500, 33, "livepeer/ai-runner:llm"),
        _pipeline("image-to-text", 8700, 34),
        _pipeline("live-video-to-video", 8900, 35, None),
        _pipeline("text-to-speech", 8800, 36, "livepeer/ai-runner:text-to-speech"),
    )
}

#: go-livepeer's capability id for BYOC (external container) jobs.
BYOC_CAPABILITY_ID = 37


@dataclass(frozen=True)
class ModelInfo:
    """One model lpfleet knows.

    `include`: the download patterns ai-runner's `dl_checkpoints.sh` uses (None = every file).
    `extra_models`: other repositories the runner loads for this model (fetch them too).
    `hf_repo`: False for live-video-to-video app names (not a HF repository).
    `prepared`: for a live app, the folders under the models dir that `dl_checkpoints.sh --live` fills by
    running the app's image with `PREPARE_MODELS=1` (TensorRT engines built on the node's GPU, ComfyUI and
    Scope model trees); the app reads them from `/models` at start.
    `verified`: on the list of models Livepeer's docs and dl_checkpoints.sh ship by default,
    the ones gateways are known to route; anything else is allowed but may get no traffic.
    """

    model_id: str
    pipelines: tuple[str, ...]
    include: tuple[str, ...] | None = None
    extra_models: tuple[str, ...] = ()
    gated: bool = False
    vram_gb: float | None = None
    verified: bool = False
    hf_repo: bool = True
    prepared: tuple[str, ...] = ()


_SD_PATTERNS = ("*.fp16.safetensors", "*.json", "*.txt")

_MODELS: tuple[ModelInfo, ...] = (
    # text-to-image / image-to-image (diffusers)
    ModelInfo("SG161222/RealVisXL_V4.0_Lightning", ("text-to-image", "image-to-image"), _SD_PATTERNS,
              vram_gb=12, verified=True),
    ModelInfo("ByteDance/SDXL-Lightning", ("text-to-image", "image-to-image"), ("*unet.safetensors",),
              extra_models=("stabilityai/stable-diffusion-xl-base-1.0",), vram_gb=12, verified=True),
    ModelInfo("stabilityai/stable-diffusion-xl-base-1.0", ("text-to-image", "image-to-image"), _SD_PATTERNS,
              vram_gb=12),
    ModelInfo("SG161222/RealVisXL_V4.0", ("text-to-image", "image-to-image"), _SD_PATTERNS, vram_gb=12),
    ModelInfo("stabilityai/sd-turbo", ("text-to-image", "image-to-image"), _SD_PATTERNS, vram_gb=6),
    ModelInfo("stabilityai/sdxl-turbo", ("text-to-image", "image-to-image"), _SD_PATTERNS, vram_gb=12),
    ModelInfo("runwayml/stable-diffusion-v1-5", ("text-to-image", "image-to-image"), _SD_PATTERNS, vram_gb=6),
    ModelInfo("prompthero/openjourney-v4", ("text-to-image",), ("*.safetensors", "*.json", "*.txt"), vram_gb=6),
    ModelInfo("timbrooks/instruct-pix2pix", ("image-to-image",), _SD_PATTERNS, vram_gb=6, verified=True),
    ModelInfo("stabilityai/stable-diffusion-3-medium-diffusers", ("text-to-image",),
              ("*.fp16*.safetensors", "*.model", "*.json", "*.txt"), gated=True, vram_gb=20),
    ModelInfo("stabilityai/stable-diffusion-3.5-medium", ("text-to-image",),
              ("transformer/*.safetensors", "*model.fp16*", "*.model", "*.json", "*.txt"), gated=True, vram_gb=16),
    ModelInfo("stabilityai/stable-diffusion-3.5-large", ("text-to-image",),
              ("transformer/*.safetensors", "*model.fp16*", "*.model", "*.json", "*.txt"), gated=True, vram_gb=32),
    # text_to_image.py:84-86 loads stabilityai/sd-vae-ft-ema for it (AutoencoderKL.from_pretrained, /models cache)
    ModelInfo("SG161222/Realistic_Vision_V6.0_B1_noVAE", ("text-to-image", "image-to-image"),
              ("*.fp16.safetensors", "*.json", "*.txt", "*.bin"), extra_models=("stabilityai/sd-vae-ft-ema",),
              vram_gb=6),
    ModelInfo("stabilityai/sd-vae-ft-ema", ("text-to-image", "image-to-image"), ("*.json", "*.safetensors"),
              vram_gb=1),
    ModelInfo("black-forest-labs/FLUX.1-schnell", ("text-to-image",), ("*.safetensors", "*.json", "*.txt", "*.model"),
              vram_gb=36),
    ModelInfo("black-forest-labs/FLUX.1-dev", ("text-to-image",), ("*.safetensors", "*.json", "*.txt", "*.model"),
              gated=True, vram_gb=36),
    # image-to-video
    ModelInfo("stabilityai/stable-video-diffusion-img2vid-xt-1-1", ("image-to-video",),
              ("*.fp16.safetensors", "*.json"), gated=True, vram_gb=20, verified=True),
    ModelInfo("stabilityai/stable-video-diffusion-img2vid-xt", ("image-to-video",),
              ("*.fp16.safetensors", "*.json"), vram_gb=20),
    # upscale
    # dl_checkpoints.sh:130 takes "*.fp16.safetensors" only; the configs are needed too for an offline load.
    ModelInfo("stabilityai/stable-diffusion-x4-upscaler", ("upscale",), ("*.fp16.safetensors", "*.json", "*.txt"),
              vram_gb=10, verified=True),
    # audio-to-text
    ModelInfo("openai/whisper-large-v3", ("audio-to-text",), ("*.safetensors", "*.json"), vram_gb=8, verified=True),
    # dl_checkpoints.sh:133-135 download_beta_models: "recommended beta phase models"
    ModelInfo("openai/whisper-medium", ("audio-to-text",), ("*.safetensors", "*.json"), vram_gb=5, verified=True),
    ModelInfo("distil-whisper/distil-large-v3", ("audio-to-text",), ("*.safetensors", "*.json"), vram_gb=5,
              verified=True),
    # segment-anything-2
    ModelInfo("facebook/sam2-hiera-large", ("segment-anything-2",), ("*.pt", "*.yaml"), vram_gb=8, verified=True),
    ModelInfo("facebook/sam2-hiera-base-plus", ("segment-anything-2",), ("*.pt", "*.yaml"), vram_gb=6),
    ModelInfo("facebook/sam2-hiera-small", ("segment-anything-2",), ("*.pt", "*.yaml"), vram_gb=4),
    ModelInfo("facebook/sam2-hiera-tiny", ("segment-anything-2",), ("*.pt", "*.yaml"), vram_gb=4),
    # llm (vLLM runner: refuses to start without pre-downloaded files)
    ModelInfo("meta-llama/Meta-Llama-3.1-8B-Instruct", ("llm",), ("*.json", "*.bin", "*.safetensors", "*.txt"),
              gated=True, vram_gb=20, verified=True),
    # image-to-text
    ModelInfo("Salesforce/blip-image-captioning-large", ("image-to-text",), ("*.safetensors", "*.json"), vram_gb=4,
              verified=True),
    # text-to-speech
    ModelInfo("parler-tts/parler-tts-large-v1", ("text-to-speech",), ("*.safetensors", "*.json", "*.model"),
              vram_gb=8, verified=True),
    # safety checker companions (PIPELINE_COMPANIONS): transformers reads model.safetensors, else
    # pytorch_model.bin; CLIPImageProcessor reads preprocessor_config.json only.
    ModelInfo("CompVis/stable-diffusion-safety-checker", ("text-to-image", "image-to-image", "image-to-video",
                                                          "upscale"), ("*.json", "*.safetensors", "*.bin"),
              vram_gb=1),
    ModelInfo("openai/clip-vit-base-patch32", ("text-to-image", "image-to-image", "image-to-video", "upscale"),
              ("*.json",), vram_gb=0),
    # live-video-to-video: the model id names the runner app (LIVE_APP_IMAGES); the weights are prepared into
    # the models dir by dl_checkpoints.sh (PIPELINE=<app>, PREPARE_MODELS=1 runs; dl_checkpoints.sh:181-250,
    # folders made at :456) and linked by the live images (live/streamdiffusion/Dockerfile:29-31,
    # live/comfyui/Dockerfile:79).
    *(ModelInfo(app, (LIVE_PIPELINE,), vram_gb=vram, verified=verified, hf_repo=False, prepared=dirs)
      for app, vram, verified, dirs in (
          ("streamdiffusion", 12, True, ("StreamDiffusion--engines",)),
          ("streamdiffusion-sd15", 12, False, ("StreamDiffusion--engines",)),
          ("streamdiffusion-sd15-v2v", 12, False, ("StreamDiffusion--engines",)),
          ("streamdiffusion-sdxl", 20, False, ("StreamDiffusion--engines",)),
          ("streamdiffusion-sdxl-v2v", 20, False, ("StreamDiffusion--engines",)),
          ("streamdiffusion-sdxl-faceid", 20, False, ("StreamDiffusion--engines",)),
          ("comfyui", 16, True, ("ComfyUI--models",)),
          ("scope", 24, False, ("Scope--models",)),
          ("segment_anything_2", 8, False, ()),
          ("noop", 0, False, ()),
      )),
)

MODELS: Mapping[str, ModelInfo] = {m.model_id: m for m in _MODELS}
_MODELS_LOWER: Mapping[str, ModelInfo] = {m.model_id.lower(): m for m in _MODELS}


def pipeline_info(pipeline: str) -> PipelineInfo:
    """The pipeline's data; KeyError for a name go-livepeer does not know (it panics on those)."""
    try:
        return PIPELINES[pipeline]
    except KeyError:
        raise KeyError(f"unknown pipeline {pipeline!r}") from None


def is_pipeline(pipeline: str) -> bool:
    return pipeline in PIPELINES


def model_info(model_id: str) -> ModelInfo | None:
    """The model's data, or None for a model the catalog does not know (allowed)."""
    return MODELS.get(model_id)


def canonical_model_id(model_id: str) -> str | None:
    """The catalog's spelling of a model id that differs from `model_id` only in case, else None.

    The runner's cache lookup is case-sensitive: `sg161222/realvisxl_v4.0_lightning` is a miss.
    """
    info = _MODELS_LOWER.get(model_id.lower())
    if info is None or info.model_id == model_id:
        return None
    return info.model_id


def download_patterns(model_id: str) -> tuple[str, ...] | None:
    """Include globs for the model's repository (None = every file; also for unknown models)."""
    info = model_info(model_id)
    return info.include if info else None


def extra_models(model_id: str) -> tuple[str, ...]:
    """Other repositories the runner loads for this model."""
    info = model_info(model_id)
    return info.extra_models if info else ()


def needs_weights(pipeline: str, model_id: str) -> bool:
    """Whether the entry's weights come from a HF repository into the models dir.

    Live apps are not HF repositories: their weights are prepared into the models dir by a run of the
    app's image (`prepared_dirs`); external (`url`) entries are never passed to this (their container is
    someone else's).
    """
    if pipeline == LIVE_PIPELINE:
        return False
    info = model_info(model_id)
    return info.hf_repo if info else True


@dataclass(frozen=True)
class WeightsRequest:
    """One repository to fetch into the models dir, with its include globs (None = all)."""

    model_id: str
    include: tuple[str, ...] | None


def weights_for(pipeline: str, model_id: str) -> tuple[WeightsRequest, ...]:
    """Every repository a managed entry needs in the models dir: the model, its extras, then the pipeline's
    companions (the safety checker)."""
    if not needs_weights(pipeline, model_id):
        return ()
    requests = [WeightsRequest(model_id, download_patterns(model_id))]
    for extra in extra_models(model_id) + PIPELINE_COMPANIONS.get(pipeline, ()):
        if all(r.model_id != extra for r in requests):
            requests.append(WeightsRequest(extra, download_patterns(extra)))
    return tuple(requests)


def live_app_image(model_id: str, live_overrides: Mapping[str, object] | None = None) -> str | None:
    """go-livepeer's getContainerImageName for a live app (docker.go:275-284): the override, the fixed
    table, else None ("no container image found for live pipeline")."""
    if live_overrides and model_id in live_overrides:
        return str(live_overrides[model_id])
    return LIVE_APP_IMAGES.get(model_id)


@dataclass(frozen=True)
class LivePrepare:
    """How ai-runner's dl_checkpoints.sh prepares a live app's weights: a run of `image` with the models dir
    mounted at /models, `env` set (plus HF_TOKEN from the caller for gated repos) and `command` (None: the
    image's own entrypoint); afterwards `dirs` exist under the models dir."""

    image: str
    env: tuple[str, ...]
    command: tuple[str, ...] | None
    dirs: tuple[str, ...]


def live_prepare(model_id: str, live_overrides: Mapping[str, object] | None = None) -> LivePrepare | None:
    """The prepare run for a live app (None when it needs none or go-livepeer has no image for it).

    dl_checkpoints.sh:241-246 (`-e HF_HUB_OFFLINE=0 -e PREPARE_MODELS=1`, StreamDiffusion and Scope) and
    :287-290 (ComfyUI's setup_models.py)."""
    info = model_info(model_id)
    image = live_app_image(model_id, live_overrides)
    if info is None or not info.prepared or image is None:
        return None
    if model_id == "comfyui":
        command = ("bash", "-c", "cd /workspace/comfystream && python src/comfystream/scripts/setup_models.py "
                   "--workspace /workspace/ComfyUI")
        return LivePrepare(image, (), command, info.prepared)
    return LivePrepare(image, ("HF_HUB_OFFLINE=0", "PREPARE_MODELS=1"), None, info.prepared)


def prepared_dirs(pipeline: str, model_id: str) -> tuple[str, ...]:
    """The folders under the models dir a live app's prepare run fills (empty for batch pipelines)."""
    if pipeline != LIVE_PIPELINE:
        return ()
    info = model_info(model_id)
    return info.prepared if info else ()


def is_gated(model_id: str) -> bool:
    info = model_info(model_id)
    return bool(info and info.gated)


def is_verified(model_id: str) -> bool:
    info = model_info(model_id)
    return bool(info and info.verified)


def vram_gb(model_id: str) -> float | None:
    info = model_info(model_id)
    return info.vram_gb if info else None


def runner_image(
    pipeline: str,
    model_id: str,
    default_image: str = DEFAULT_RUNNER_IMAGE,
    overrides: Mapping[str, object] | None = None,
) -> str:
    """The image go-livepeer starts for an entry, as `-aiRunnerImage` and `-aiRunnerImageOverrides` pick it.

    Live: `overrides.live[model_id]`, else go-livepeer's fixed table (LIVE_APP_IMAGES), else
    `livepeer/ai-runner:live-app-<model_id>` (go-livepeer has none: it fails; rules.py reports it).
    Batch: `overrides.batch[pipeline]`, else the pipeline's own image (audio-to-text, llm,
    segment-anything-2, text-to-speech), else `overrides.default`, else `default_image`.
    """
    overrides = overrides or {}
    info = pipeline_info(pipeline)
    if info.is_live:
        live = overrides.get("live") or {}
        if isinstance(live, Mapping) and model_id in live:
            return str(live[model_id])
        return LIVE_APP_IMAGES.get(model_id, f"livepeer/ai-runner:live-app-{model_id}")
    batch = overrides.get("batch") or {}
    if isinstance(batch, Mapping) and pipeline in batch:
        return str(batch[pipeline])
    if info.runner_image and info.runner_image != DEFAULT_RUNNER_IMAGE:
        return info.runner_image
    default = overrides.get("default")
    if default:
        return str(default)
    return default_image


def base_port(pipeline: str) -> int:
    return pipeline_info(pipeline).base_port


def capability_name(pipeline: str) -> str:
    return pipeline_info(pipeline).capability
