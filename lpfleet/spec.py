"""The validated desired state of one node, built from pyinfra host data.

Pure: no I/O, no pyinfra, no network. Everything a task needs to know about a node is
in `NodeSpec`; tasks never read `host.data` directly, so every value they use has been
validated for every host before any host is touched.

Group data keys (flat, pyinfra style; documented in docs/group-data.md) map onto the
fields below through `build_node_spec`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

PIPELINES: tuple[str, ...] = (
    "text-to-image",
    "image-to-image",
    "image-to-video",
    "upscale",
    "audio-to-text",
    "segment-anything-2",
    "llm",
    "image-to-text",
    "live-video-to-video",
    "text-to-speech",
)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AIModelEntry(_Frozen):
    """One aiModels.json entry, field for field go-livepeer's `AIModelConfig`.

    Only fields that are set are rendered (go-livepeer uses `omitempty`).
    `token` is a secret: it is rendered into aiModels.json and nowhere else.
    """

    pipeline: str
    model_id: str
    url: str | None = None
    token: SecretStr | None = None
    warm: bool = False
    capacity: int | None = None
    optimization_flags: dict[str, bool | str] = Field(default_factory=dict)
    price_per_unit: int | float | None = None
    pixels_per_unit: int | None = None
    currency: str | None = None
    gateway: str | None = None

    @property
    def is_external(self) -> bool:
        return bool(self.url)


class DockerSpec(_Frozen):
    """How Docker Engine gets onto the node."""

    install: Literal["docker-ce", "docker.io"] = "docker-ce"
    repo_url: str = "https://download.docker.com/linux"
    key_url: str | None = None  # default: {repo_url}/{distro}/gpg
    live_restore: bool = True
    restart_batch_size: int = 1  # nodes whose dockerd may restart at the same time


class ToolkitSpec(_Frozen):
    """NVIDIA Container Toolkit: pinned, from a repo whose key fingerprint is checked."""

    version: str = "1.20.0-1"
    repo_url: str = "https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)"
    key_url: str = "https://nvidia.github.io/libnvidia-container/gpgkey"
    key_fingerprint: str = "C95B321B61E88C1809C4F759DDCAE044F796ECB0"
    set_default_runtime: bool = False
    cdi: bool = False


class WeightsSpec(_Frozen):
    """Where weights come from and how the fleet shares them."""

    mode: Literal["direct", "fanout"] = "direct"
    hf_endpoint: str = "https://huggingface.co"  # as the nodes reach it (hub or LAN mirror)
    hf_lock_endpoint: str | None = None  # as the controller reaches it; default hf_endpoint
    hf_token_env: str = "HF_TOKEN"  # controller env var holding the token (never group data)
    lock_file: str = "models.lock"  # relative to the inventory's directory
    branch: str = "main"  # the ref the runner reads


class WorkerSpec(_Frozen):
    """The go-livepeer AI worker container."""

    mode: Literal["orchestrator", "worker"] = "orchestrator"
    image: str = "livepeer/go-livepeer:latest"
    runner_image: str = "livepeer/ai-runner:latest"
    runner_image_overrides: dict | None = None
    container_name: str = "livepeer_ai_worker"
    network: str = "offchain"  # -network; anything but offchain prices on-chain
    service_addr: str | None = None
    orch_addr: str | None = None  # remote worker mode: the orchestrator to attach to
    orch_secret: SecretStr | None = None
    price_per_unit: int | float | None = None  # -pricePerUnit fallback
    pixels_per_unit: int | None = None  # -pixelsPerUnit fallback
    price_feed_addr: str | None = None  # -priceFeedAddr: needed for non-wei currencies
    extra_flags: tuple[str, ...] = ()

    @property
    def prices_onchain(self) -> bool:
        """A remote AI worker is always off-chain; an orchestrator prices unless offchain."""
        return self.mode == "orchestrator" and self.network != "offchain"


class VerifySpec(_Frozen):
    """Optional checks beyond the node itself."""

    gateway_url: str | None = None  # GET {gateway_url}/getNetworkCapabilities
    orchestrator_address: str | None = None
    health_timeout_s: float = 5.0
    log_lines: int = 200


class RolloutSpec(_Frozen):
    batch_size: int | None = None
    batch_percent: int | None = None
    fail_threshold: int = 0  # failed hosts tolerated per batch before the rollout stops


class NodeSpec(_Frozen):
    """The typed desired state of one node."""

    host: str
    groups: tuple[str, ...]
    models: tuple[AIModelEntry, ...]
    ai_models_template: str = "templates/aiModels.json.j2"
    ai_models_path: str = "/root/.lpData/aiModels.json"  # host path of the rendered file
    models_dir: str = "/root/.lpData/models"  # host path, mounted at /models in runners
    gpus: tuple[int, ...] = (0,)  # -nvidia ids
    gpu_memory_gb: float | None = None
    containers_per_gpu: int = 1
    docker: DockerSpec = DockerSpec()
    toolkit: ToolkitSpec = ToolkitSpec()
    weights: WeightsSpec = WeightsSpec()
    worker: WorkerSpec = WorkerSpec()
    verify: VerifySpec = VerifySpec()
    rollout: RolloutSpec = RolloutSpec()

    @property
    def gpu_slots(self) -> int:
        return len(self.gpus) * self.containers_per_gpu
