"""The validated desired state of one node, built from pyinfra host data.

Pure: no I/O, no pyinfra, no network. Everything a task needs to know about a node is
in `NodeSpec`; tasks never read `host.data` directly, so every value they use has been
validated for every host before any host is touched.

Group data keys (flat, pyinfra style; documented in docs/group-data.md) map onto the
fields below through `build_node_spec`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from lpfleet.rules import Finding, NodeContext, check_entries, has_errors

# env_secret and secret_values are re-exported: group data files and tasks import them from here
from lpfleet.secrets import MissingSecret, env_secret, mask, secret_values, to_secret  # noqa: F401

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
    optimization_flags: dict[str, bool | str | None] = Field(default_factory=dict)  # null: "false" in go-livepeer
    price_per_unit: int | float | None = None
    pixels_per_unit: int | None = None
    currency: str | None = None
    gateway: str | None = None

    @property
    def is_external(self) -> bool:
        return bool(self.url)

    def to_json_dict(self) -> dict[str, Any]:
        """The entry as go-livepeer reads it: only the fields that are set, the token revealed.

        Only the renderer calls this; everything that prints uses `masked_dict`.
        """
        out: dict[str, Any] = {"pipeline": self.pipeline, "model_id": self.model_id}
        if self.url is not None:
            out["url"] = self.url
        if self.token is not None:
            out["token"] = self.token.get_secret_value()
        if self.warm:
            out["warm"] = True
        for name in ("capacity", "price_per_unit", "pixels_per_unit", "currency", "gateway"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.optimization_flags:
            out["optimization_flags"] = dict(self.optimization_flags)
        return out

    def masked_dict(self) -> dict[str, Any]:
        """`to_json_dict` with the token replaced by "***" (for output, diffs, reports)."""
        out = self.to_json_dict()
        if "token" in out:
            out["token"] = "***"
        return out


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
    lan_address: str | None = None  # fanout: how peers reach this node; default its inventory name
    mirror_port: int = Field(default=8790, ge=1, le=65535)  # fanout: where this node serves its peers
    prune: bool = False  # remove snapshots and blobs of locked repos that the lock no longer names
    runner_offline: bool = True  # warm managed runners get HF_HUB_OFFLINE=1: only the locked snapshot loads
    # Each file's deadline is max(120 s, size / min_rate): a stalled or drip-feeding source is cut, reported.
    min_rate: int = Field(default=1_000_000, ge=1_000, le=100_000_000_000)  # bytes per second


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
    price_feed_addr: str | None = None  # -priceFeedAddr; unset: go-livepeer's ETH/USD feed
    extra_flags: tuple[str, ...] = ()

    @property
    def has_fallback_price(self) -> bool:
        """-pricePerUnit is a price entries fall back to: go-livepeer treats 0 as unset (starter.go:1550)."""
        return self.price_per_unit is not None and self.price_per_unit > 0

    @property
    def live_override_ids(self) -> frozenset[str]:
        """Live app ids -aiRunnerImageOverrides names an image for."""
        live = (self.runner_image_overrides or {}).get("live")
        return frozenset(live) if isinstance(live, dict) else frozenset()

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
    # nodes serving one warm (pipeline, model) that may be down at once; never all of them (lpfleet.rollout)
    max_unavailable: int | None = Field(default=None, ge=1)


class PlacementSpec(_Frozen):
    """What `lpfleet plan-warm` weighs (lpfleet.placement) and the warm set it asks for."""

    # model_id -> GB one runner needs (over the catalog's estimate)
    vram_gb: dict[str, float] = Field(default_factory=dict)
    demand: dict[str, float] = Field(default_factory=dict)  # "pipeline model_id" -> demand weight
    # "pipeline model_id" of the entries kept warm; None: each entry's own `warm`
    warm: tuple[str, ...] | None = None


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
    placement: PlacementSpec = PlacementSpec()

    @property
    def gpu_slots(self) -> int:
        return len(self.gpus) * self.containers_per_gpu


# --- building a NodeSpec from pyinfra data layers -------------------------------------------------

#: Group data key -> (NodeSpec section or None for top level, field name).
DATA_KEYS: Mapping[str, tuple[str | None, str]] = {
    "ai_models": (None, "models"),
    "ai_models_template": (None, "ai_models_template"),
    "ai_models_path": (None, "ai_models_path"),
    "ai_models_dir": (None, "models_dir"),
    "gpus": (None, "gpus"),
    "gpu_memory_gb": (None, "gpu_memory_gb"),
    "runner_containers_per_gpu": (None, "containers_per_gpu"),
    "docker_install": ("docker", "install"),
    "docker_repo_url": ("docker", "repo_url"),
    "docker_key_url": ("docker", "key_url"),
    "docker_live_restore": ("docker", "live_restore"),
    "docker_restart_batch_size": ("docker", "restart_batch_size"),
    "nvidia_toolkit_version": ("toolkit", "version"),
    "nvidia_repo_url": ("toolkit", "repo_url"),
    "nvidia_key_url": ("toolkit", "key_url"),
    "nvidia_key_fingerprint": ("toolkit", "key_fingerprint"),
    "nvidia_set_default_runtime": ("toolkit", "set_default_runtime"),
    "nvidia_cdi": ("toolkit", "cdi"),
    "weights_mode": ("weights", "mode"),
    "hf_endpoint": ("weights", "hf_endpoint"),
    "hf_lock_endpoint": ("weights", "hf_lock_endpoint"),
    "hf_token_env": ("weights", "hf_token_env"),
    "models_lock": ("weights", "lock_file"),
    "hf_branch": ("weights", "branch"),
    "weights_lan_address": ("weights", "lan_address"),
    "weights_mirror_port": ("weights", "mirror_port"),
    "weights_prune": ("weights", "prune"),
    "runner_hf_offline": ("weights", "runner_offline"),
    "weights_min_rate": ("weights", "min_rate"),
    "worker_mode": ("worker", "mode"),
    "worker_image": ("worker", "image"),
    "runner_image": ("worker", "runner_image"),
    "runner_image_overrides": ("worker", "runner_image_overrides"),
    "worker_container_name": ("worker", "container_name"),
    "livepeer_network": ("worker", "network"),
    "service_addr": ("worker", "service_addr"),
    "orch_addr": ("worker", "orch_addr"),
    "orch_secret": ("worker", "orch_secret"),
    "price_per_unit": ("worker", "price_per_unit"),
    "pixels_per_unit": ("worker", "pixels_per_unit"),
    "price_feed_addr": ("worker", "price_feed_addr"),
    "worker_extra_flags": ("worker", "extra_flags"),
    "gateway_url": ("verify", "gateway_url"),
    "orchestrator_address": ("verify", "orchestrator_address"),
    "health_timeout_s": ("verify", "health_timeout_s"),
    "verify_log_lines": ("verify", "log_lines"),
    "rollout_batch_size": ("rollout", "batch_size"),
    "rollout_batch_percent": ("rollout", "batch_percent"),
    "rollout_fail_threshold": ("rollout", "fail_threshold"),
    "rollout_max_unavailable": ("rollout", "max_unavailable"),
    "ai_model_vram_gb": ("placement", "vram_gb"),
    "ai_model_demand": ("placement", "demand"),
    "ai_models_warm": ("placement", "warm"),
}

#: Keys lpfleet reads that are not NodeSpec fields: `group` names extra group data files to apply
#: (the bootstrap form `pyinfra root@box deploy.py --data group=consumer_24gb`).
META_KEYS: tuple[str, ...] = ("group",)

#: A data key with one of these prefixes is ours: an unknown one is a typo, not someone else's data.
OWN_PREFIXES: tuple[str, ...] = (
    "ai_", "nvidia_", "docker_", "weights_", "hf_", "worker_", "runner_", "rollout_", "gpu",
    "models_", "price_", "pixels_", "orch_", "livepeer_", "verify_", "health_",
)

_SECTIONS = {
    "docker": DockerSpec,
    "toolkit": ToolkitSpec,
    "weights": WeightsSpec,
    "worker": WorkerSpec,
    "verify": VerifySpec,
    "rollout": RolloutSpec,
    "placement": PlacementSpec,
}
_FIELD_TO_KEY = {(section, name): key for key, (section, name) in DATA_KEYS.items()}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FINGERPRINT = re.compile(r"^[0-9A-Fa-f]{40}$")
# apt's `pkg=VERSION` needs the exact Debian version, revision included: NVIDIA publishes "1.17.8-1",
# never "1.17.8"
_DEB_VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~]*-[A-Za-z0-9.+~]+$")

#: `-network` values go-livepeer configures itself (cmd/livepeer/starter/starter.go: "offchain" and the
#: `configOptions` map); any other network starts only with -ethController given.
LIVEPEER_NETWORKS: tuple[str, ...] = (
    "offchain", "arbitrum-one-mainnet", "mainnet", "arbitrum-one-rinkeby", "rinkeby",
)

#: Data keys that hold secrets: they must come from the environment (`env_secret`), never a literal.
SECRET_KEYS: tuple[str, ...] = ("orch_secret",)


@dataclass(frozen=True)
class Problem:
    """One reason a host's spec is invalid, with where it came from.

    `source` is the data layer that supplied the key (`group consumer_24gb`, `host data`,
    `--data`, `group all`); `key` the group data key; `finding` the aiModels.json rule hit
    when the key is `ai_models`.
    """

    host: str
    source: str | None
    key: str
    message: str
    finding: Finding | None = None
    severity: Literal["error", "warning"] = "error"

    def body(self) -> str:
        """`key: message` (with the aiModels entry and field): the part that is the same on every host."""
        if self.finding is not None:
            return self.finding.format(self.key)
        text = self.message if self.severity == "error" else f"warning: {self.message}"
        return f"{self.key}: {text}"

    def format(self) -> str:
        prefix = f"{self.host} ({self.source})" if self.source else self.host
        return f"{prefix}: {self.body()}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "host": self.host,
            "group": self.source,
            "key": self.key,
            "severity": self.severity,
            "message": self.finding.message if self.finding else self.message,
        }
        if self.finding is not None:
            out.update(
                entry=self.finding.index,
                pipeline=self.finding.pipeline,
                model_id=self.finding.model_id,
                field=self.finding.field,
                rule=self.finding.rule,
            )
        return out


def format_problems(problems: Sequence[Problem | str], max_hosts: int = 8) -> list[str]:
    """One line per problem, a problem that a group layer gives many hosts once with the hosts listed.

    `group consumer_24gb: gpus: must be ... (3 hosts: a, b, c)` instead of the same line per host: a fleet of
    hundreds of hosts gets one line per mistake.
    """
    grouped: dict[tuple[str, str], list[Problem]] = {}
    order: list[Problem | str | tuple[str, str]] = []
    for problem in problems:
        if isinstance(problem, str) or not problem.source or problem.source in ("host data",):
            order.append(problem)
            continue
        slot = (problem.source, problem.body())
        if slot not in grouped:
            grouped[slot] = []
            order.append(slot)
        grouped[slot].append(problem)
    lines: list[str] = []
    for item in order:
        if isinstance(item, str):
            lines.append(item)
        elif isinstance(item, Problem):
            lines.append(item.format())
        else:
            members = grouped[item]
            hosts = list(dict.fromkeys(p.host for p in members))
            if len(hosts) == 1:
                lines.append(members[0].format())
                continue
            shown = ", ".join(hosts[:max_hosts])
            if len(hosts) > max_hosts:
                shown += f" and {len(hosts) - max_hosts} more"
            lines.append(f"{item[0]}: {item[1]} ({len(hosts)} hosts: {shown})")
    # no message quotes a secret; URL credentials are masked all the same
    return [mask(line) for line in lines]


class SpecError(ValueError):
    """A host's data does not make a valid spec; carries every problem found, not just the first."""

    def __init__(self, host: str, problems: Sequence[Problem]) -> None:
        self.host = host
        self.problems = tuple(problems)
        super().__init__("\n".join(p.format() for p in self.problems))


def merge_layers(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Flatten data layers (highest precedence first) into values and each key's source label."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for label, data in layers:
        for key, value in data.items():
            if key not in values:
                values[key] = value
                sources[key] = label
    return values, sources


def _squash(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _closest_key(key: str, cutoff: float = 0.6) -> str | None:
    """The known data key `key` most likely meant: same letters ignoring case and separators, else difflib."""
    known = list(DATA_KEYS) + list(META_KEYS)
    by_squashed = {_squash(k): k for k in known}
    if _squash(key) in by_squashed:
        return by_squashed[_squash(key)]
    close = difflib.get_close_matches(key.lower(), known, n=1, cutoff=cutoff)
    return close[0] if close else None


def _unknown_key_message(key: str) -> str:
    if key.lower().startswith("hf_") and "token" in key.lower() and key.lower() != "hf_token_env":
        return (
            "the HF token never goes in group data: export it on the controller and name the "
            'variable with hf_token_env (default "HF_TOKEN")'
        )
    close = _closest_key(key)
    hint = f' (did you mean "{close}"?)' if close else ""
    return f"unknown lpfleet data key{hint}; see docs/group-data.md"


def _is_ours(key: str) -> bool:
    """A key lpfleet must know: one of our prefixes, or close to a known key whatever its prefix
    (`weight_mode`, `workerMode`: a silently ignored near-miss would run the fleet with another setting)."""
    if key.startswith(OWN_PREFIXES) or key.lower().startswith(OWN_PREFIXES):
        return True
    return _closest_key(key, cutoff=NEAR_MISS_CUTOFF) is not None


#: How close (difflib ratio) an unknown key outside our prefixes must be to a known one to count as a typo.
NEAR_MISS_CUTOFF = 0.85


def _pydantic_problems(
    host: str, exc: ValidationError, section: str | None, sources: Mapping[str, str]
) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc = err.get("loc") or ()
        name = str(loc[0]) if loc else "-"
        key = _FIELD_TO_KEY.get((section, name), name)
        where = key + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc[1:])
        # err["msg"] never carries the input value, so a secret cannot leak through it
        problems.append(Problem(host, sources.get(key), where, err["msg"]))
    return problems


def _check_node_values(
    host: str, values: Mapping[str, Any], sources: Mapping[str, str], secret_problem_keys: Sequence[str] = ()
) -> list[Problem]:
    """Rules on node-level keys pydantic's types cannot express."""
    problems: list[Problem] = []

    def bad(key: str, message: str) -> None:
        problems.append(Problem(host, sources.get(key), key, message))

    gpus = values.get("gpus")
    if gpus is not None:
        if not isinstance(gpus, (list, tuple)) or not gpus:
            bad("gpus", "must be a non-empty list of GPU ids (the -nvidia ids, e.g. [0, 1])")
        elif any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpus):
            bad("gpus", "every GPU id must be a whole number >= 0")
        elif len(set(gpus)) != len(gpus):
            bad("gpus", "lists a GPU id twice")
    cpg = values.get("runner_containers_per_gpu")
    if cpg is not None and (isinstance(cpg, bool) or not isinstance(cpg, int) or cpg < 1):
        bad("runner_containers_per_gpu", "must be a whole number >= 1")
    mem = values.get("gpu_memory_gb")
    if mem is not None and (isinstance(mem, bool) or not isinstance(mem, (int, float)) or mem <= 0):
        bad("gpu_memory_gb", "must be a positive number")
    for key in ("ai_models_path", "ai_models_dir"):
        path = values.get(key)
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            bad(key, "must be an absolute host path (docker resolves runner bind mounts on the host)")
    template = values.get("ai_models_template")
    if template is not None and (not isinstance(template, str) or not template.endswith(".j2")):
        bad("ai_models_template", "must name a Jinja2 template file (*.j2) relative to the project root")
    price = values.get("price_per_unit")
    if price is not None:
        if isinstance(price, bool) or not isinstance(price, (int, float)):
            bad("price_per_unit", "must be a number (the -pricePerUnit fallback in wei)")
        elif price < 0:
            bad("price_per_unit", "must not be negative: go-livepeer panics at start")
    pixels = values.get("pixels_per_unit")
    if pixels is not None and (isinstance(pixels, bool) or not isinstance(pixels, int) or pixels <= 0):
        bad("pixels_per_unit", "must be a positive whole number")
    env = values.get("hf_token_env")
    if env is not None and (not isinstance(env, str) or not _ENV_NAME.fullmatch(env)):
        bad("hf_token_env", "must be the NAME of an environment variable (not the token)")
    fingerprint = values.get("nvidia_key_fingerprint")
    if fingerprint is not None and (
        not isinstance(fingerprint, str) or not _FINGERPRINT.fullmatch(fingerprint.replace(" ", ""))
    ):
        bad("nvidia_key_fingerprint", "must be the key's full 40-hex-digit fingerprint (gpg --show-keys), not a key id")
    version = values.get("nvidia_toolkit_version")
    if version is not None and (not isinstance(version, str) or not _DEB_VERSION.fullmatch(version)):
        bad("nvidia_toolkit_version",
                'must be an exact Debian package version with its revision, such as "1.20.0-1" (apt installs '
                "pkg=VERSION exactly)")
    for key in ("hf_endpoint", "hf_lock_endpoint", "gateway_url", "docker_repo_url", "docker_key_url",
                "nvidia_key_url", "nvidia_repo_url"):
        url = values.get(key)
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            bad(key, "must be an http(s) URL")
        elif isinstance(url, str) and any(ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F for c in url):
            # a newline would add lines to the apt .sources file (e.g. "Trusted: yes") or to a command
            bad(key, "must be an http(s) URL with no spaces, newlines or other control characters")
    overrides = values.get("runner_image_overrides")
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            bad("runner_image_overrides", 'must be a dict {"default": image, "batch": {...}, "live": {...}}')
        else:
            for part, value in overrides.items():
                if part == "default":
                    if not isinstance(value, str):
                        bad("runner_image_overrides", '"default" must be an image name')
                elif part in ("batch", "live"):
                    if not isinstance(value, Mapping) or not all(
                        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                    ):
                        bad("runner_image_overrides", f'"{part}" must map names to image names')
                    elif part == "batch":
                        for pipeline in value:
                            if pipeline not in PIPELINES:
                                bad("runner_image_overrides", f'"batch" names an unknown pipeline "{pipeline}"')
                else:
                    bad("runner_image_overrides", f'unknown part "{part}" (go-livepeer reads default, batch, live)')
    network = values.get("livepeer_network")
    if network is not None:
        extra = values.get("worker_extra_flags") or ()
        custom = isinstance(extra, (list, tuple)) and any(
            isinstance(f, str) and f.lstrip("-").split("=")[0] == "ethController" for f in extra
        )
        if not isinstance(network, str) or (network not in LIVEPEER_NETWORKS and not custom):
            hint = ""
            if isinstance(network, str):
                close = difflib.get_close_matches(network, LIVEPEER_NETWORKS, n=1, cutoff=0.5)
                hint = f' (did you mean "{close[0]}"?)' if close else ""
            bad("livepeer_network",
                f"go-livepeer knows {', '.join(LIVEPEER_NETWORKS)}{hint}; another network needs "
                "-ethController in worker_extra_flags")
    vram = values.get("ai_model_vram_gb")
    if vram is not None:
        if not isinstance(vram, Mapping) or not all(
            isinstance(k, str) and not isinstance(v, bool) and isinstance(v, (int, float)) and v >= 0
            for k, v in vram.items()
        ):
            bad("ai_model_vram_gb", 'must map model ids to GB of GPU memory >= 0, e.g. {"org/name": 14}')
    warm = values.get("ai_models_warm")
    listed = isinstance(warm, (list, tuple)) and all(isinstance(item, str) for item in warm)
    if warm is not None and not listed:
        bad("ai_models_warm", 'must be a list of "pipeline model_id" strings (lpfleet plan-warm prints it)')
    demand = values.get("ai_model_demand")
    if demand is not None:
        if not isinstance(demand, Mapping):
            bad("ai_model_demand", 'must map "pipeline model_id" to a weight >= 0, e.g. {"llm org/name": 3}')
        else:
            for item, weight in demand.items():
                if not isinstance(item, str) or len(item.split()) != 2 or item.split()[0] not in PIPELINES:
                    bad("ai_model_demand", f'key {item!r} is not "pipeline model_id" with a known pipeline')
                elif isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
                    bad("ai_model_demand", f'the weight of "{item}" must be a number >= 0')
    mode = values.get("worker_mode", "orchestrator")
    if mode == "worker":
        for key in ("orch_addr", "orch_secret"):
            if key in secret_problem_keys:
                continue
            if not values.get(key):
                problems.append(
                    Problem(host, sources.get("worker_mode"), key,
                            "a remote AI worker (worker_mode = \"worker\") needs orch_addr and orch_secret")
                )
    return problems


def _literal_secret_message(form: str) -> str:
    return (
        "a literal secret in group data (it would sit in the repository and on command lines): write "
        f'{form}env_secret("VARIABLE") and export VARIABLE on the controller'
    )


def _check_secrets(
    host: str, values: Mapping[str, Any], sources: Mapping[str, str]
) -> tuple[dict[str, Any], list[Problem]]:
    """Secret keys must hold a secret from the environment: an unset variable or a literal is an error.

    Returns the values with such secrets dropped (so the other rules still run) and the problems.
    """
    cleaned = dict(values)
    problems: list[Problem] = []
    for key in SECRET_KEYS:
        value = cleaned.get(key)
        if isinstance(value, MissingSecret):
            problems.append(Problem(host, sources.get(key), key, value.message()))
            cleaned.pop(key)
        elif isinstance(value, str):
            problems.append(Problem(host, sources.get(key), key, _literal_secret_message(f"{key} = ")))
            cleaned.pop(key)
    models = cleaned.get("ai_models")
    if isinstance(models, (list, tuple)):
        entries = []
        for index, entry in enumerate(models):
            if isinstance(entry, Mapping):
                token_keys = [k for k in entry if isinstance(k, str) and k.lower() == "token"]
                for k in token_keys:
                    value = entry[k]
                    where = f"ai_models[{index}].{k}"
                    if isinstance(value, MissingSecret):
                        problems.append(Problem(host, sources.get("ai_models"), where, value.message()))
                    elif isinstance(value, str):
                        problems.append(Problem(host, sources.get("ai_models"), where,
                                                _literal_secret_message('"token": ')))
                    else:
                        continue
                    entry = {kk: vv for kk, vv in entry.items() if kk != k}
            entries.append(entry)
        cleaned["ai_models"] = entries
    return cleaned, problems


def build_node_spec(
    host: str,
    layers: Sequence[tuple[str, Mapping[str, Any]]],
    groups: Sequence[str] = (),
) -> NodeSpec:
    """Validate a host's data layers (highest precedence first) and build its NodeSpec.

    Raises SpecError listing every problem, each naming the host, the layer (group) that
    supplied the key, and for aiModels entries the 0-based entry index, pipeline/model and field.
    Warnings (unverified model, VRAM estimate above the GPU's memory, token without url) do
    not raise; `check_node_spec` returns them.
    """
    spec, problems = _build(host, layers, groups)
    errors = [p for p in problems if p.severity == "error"]
    if errors or spec is None:
        raise SpecError(host, errors)
    return spec


def check_node_spec(
    host: str, layers: Sequence[tuple[str, Mapping[str, Any]]], groups: Sequence[str] = ()
) -> tuple[NodeSpec | None, list[Problem]]:
    """The spec (None when any error) and every problem, warnings included, without raising."""
    return _build(host, layers, groups)


def _build(
    host: str, layers: Sequence[tuple[str, Mapping[str, Any]]], groups: Sequence[str]
) -> tuple[NodeSpec | None, list[Problem]]:
    values, sources = merge_layers(layers)
    problems: list[Problem] = []

    for key in values:
        if not isinstance(key, str) or key in DATA_KEYS or key in META_KEYS:
            continue
        if _is_ours(key):
            problems.append(Problem(host, sources.get(key), key, _unknown_key_message(key)))

    values, secret_problems = _check_secrets(host, values, sources)
    problems.extend(secret_problems)
    problems.extend(_check_node_values(host, values, sources, [p.key for p in secret_problems]))

    sections: dict[str, Any] = {}
    top: dict[str, Any] = {}
    already_bad = {p.key for p in problems}
    for key, (section, name) in DATA_KEYS.items():
        if key not in values or key == "ai_models":
            continue
        if section == "placement" and key in already_bad:
            continue  # its own message says what is wrong; pydantic's would only repeat it vaguer
        value = values[key]
        if key == "orch_secret":
            value = to_secret(value)
        elif key in ("gpus", "worker_extra_flags", "ai_models_warm") and isinstance(value, list):
            value = tuple(value)
        if section is None:
            top[name] = value
        else:
            sections.setdefault(section, {})[name] = value

    built: dict[str, Any] = {}
    for section, model in _SECTIONS.items():
        try:
            built[section] = model(**sections.get(section, {}))
        except ValidationError as exc:
            reported = {p.key for p in problems}  # one message per mistake: ours said it better
            problems.extend(
                p for p in _pydantic_problems(host, exc, section, sources) if p.key not in reported
            )

    raw_models = values.get("ai_models", [])
    if "ai_models_warm" in values:
        raw_models, warm_problems = _apply_warm_list(host, raw_models, values["ai_models_warm"], sources)
        problems.extend(warm_problems)
    if "ai_models" not in values:
        problems.append(
            Problem(host, None, "ai_models", "not set: the worker gets an empty aiModels.json (no models)",
                    severity="warning")
        )
    worker = built.get("worker")
    gpus = top.get("gpus", (0,))
    cpg = top.get("containers_per_gpu", 1)
    slots_known = isinstance(gpus, tuple) and isinstance(cpg, int) and not isinstance(cpg, bool)
    context = NodeContext(
        gpu_slots=len(gpus) * cpg if slots_known else None,
        prices_onchain=worker.prices_onchain if worker else None,
        fallback_price=bool(worker and worker.has_fallback_price),
        price_feed=bool(worker and worker.price_feed_addr) if worker else None,
        live_overrides=worker.live_override_ids if worker else frozenset(),
        gpu_memory_gb=top.get("gpu_memory_gb") if isinstance(top.get("gpu_memory_gb"), (int, float)) else None,
    )
    findings = check_entries(raw_models, context)
    for finding in findings:
        problems.append(
            Problem(host, sources.get("ai_models"), "ai_models", finding.message, finding, finding.severity)
        )

    models: list[AIModelEntry] = []
    if not has_errors(findings):
        for index, raw in enumerate(raw_models):
            data = dict(raw)
            if "token" in data:
                data["token"] = to_secret(data["token"])
            try:
                models.append(AIModelEntry(**data))
            except ValidationError as exc:
                for p in _pydantic_problems(host, exc, "entry", sources):
                    problems.append(Problem(host, sources.get("ai_models"), f"ai_models[{index}].{p.key}", p.message))

    if any(p.severity == "error" for p in problems):
        return None, problems
    weights = built.get("weights")
    if weights is not None and weights.runner_offline:
        models = [pin_runner_offline(m) for m in models]
    try:
        spec = NodeSpec(host=host, groups=tuple(groups), models=tuple(models), **top, **built)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(host, exc, None, sources))
        return None, problems
    return spec, problems


#: The environment variable huggingface_hub reads to stay off the network (huggingface_hub 0.23.2
#: `constants.py:117`; true values `constants.py:10`). go-livepeer turns optimization flags into runner
#: environment variables.
HUB_OFFLINE_FLAG = "HF_HUB_OFFLINE"


def pin_runner_offline(entry: AIModelEntry) -> AIModelEntry:
    """A warm managed entry with `HF_HUB_OFFLINE=1` among its optimization flags, unless it sets the flag.

    Why: ai-runner's batch images leave the hub online, and diffusers/huggingface_hub then move `refs/main`
    to the hub's newest commit and download it, ignoring models.lock. go-livepeer passes optimization flags to
    warm containers only (`ai/worker/docker.go:400-407`; borrowed cold containers get none,
    `docker.go:240-241`), so cold and external entries are left as they are; live apps take no hub weights.
    """
    if (
        not entry.warm
        or entry.is_external
        or entry.pipeline == "live-video-to-video"
        or HUB_OFFLINE_FLAG in entry.optimization_flags
    ):
        return entry
    flags = {**entry.optimization_flags, HUB_OFFLINE_FLAG: "1"}
    return entry.model_copy(update={"optimization_flags": flags})


def _apply_warm_list(
    host: str, raw_models: Any, warm: Any, sources: Mapping[str, str]
) -> tuple[Any, list[Problem]]:
    """`ai_models` with `warm` set on exactly the managed entries `ai_models_warm` names.

    Names are "pipeline model_id". External (`url`) entries are left as written; every name must match a
    managed entry.
    """
    where = sources.get("ai_models_warm")
    if not isinstance(warm, (list, tuple)) or not all(isinstance(item, str) for item in warm):
        return raw_models, []  # _check_node_values reports it
    if not isinstance(raw_models, (list, tuple)):
        return raw_models, []  # ai_models' own check reports it
    names = {" ".join(item.split()) for item in warm}
    managed = {
        f"{entry.get('pipeline')} {entry.get('model_id')}"
        for entry in raw_models
        if isinstance(entry, Mapping) and not entry.get("url")
    }
    problems = [
        Problem(host, where, "ai_models_warm",
                f'"{name}" is no managed entry of ai_models '
                '(write "pipeline model_id" of an entry without url)')
        for name in sorted(names - managed)
    ]
    out = []
    for entry in raw_models:
        if isinstance(entry, Mapping) and not entry.get("url"):
            entry = dict(entry, warm=f"{entry.get('pipeline')} {entry.get('model_id')}" in names)
            if not entry["warm"]:
                entry.pop("warm")
        out.append(entry)
    return out, problems


def node_context(spec: NodeSpec) -> NodeContext:
    """The node facts the aiModels.json rules need, from a built spec."""
    return NodeContext(
        gpu_slots=spec.gpu_slots,
        prices_onchain=spec.worker.prices_onchain,
        fallback_price=spec.worker.has_fallback_price,
        price_feed=bool(spec.worker.price_feed_addr),
        live_overrides=spec.worker.live_override_ids,
        gpu_memory_gb=spec.gpu_memory_gb,
    )


