"""Runner and go-livepeer log text -> known failure causes, each with its evidence line and a fix hint.

Pure: no I/O. Every signature is a string quoted from upstream code: go-livepeer 176aa41, ai-runner v0.14.1
and the libraries it pins (diffusers 0.31.0, transformers 4.43.3, huggingface_hub 0.23.2, vLLM 0.6.5, torch);
`docs/fidelity.md` names each one's file and line. A line that reads as an error but matches no signature is
reported as `unknown`, never guessed. INFO and DEBUG lines are never failures, warnings only for the few causes
that upstream logs as a warning (go-livepeer's "No GPU discovered", the runner's CPU fallback), and diffusers'
"Couldn't connect to the Hub" warning (a gated model that then loads from the cache logs a 401 in it) is not
a failure. Cause ids are stable (reports and CI use them):
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lpfleet.checks import Cause

CAUSES: dict[str, str] = {
    "cuda-oom": "the model does not fit the GPU memory left",
    "model-load-failed": "the runner could not load the model",
    "model-lookup-failed": "the hub does not know the id, or gated access is missing",
    "weights-missing": "the weights are not in the models dir the runner reads",
    "runner-timeout": "a runner did not become (or stay) healthy in time",
    "external-health-failed": "an external url's /health did not answer 200",
    "invalid-config": "go-livepeer rejected its flags or aiModels.json",
    "no-gpu": "no GPU reached go-livepeer or the runner",
    "unknown": "an error line that matches no known cause",
}

_OOM_HINT = ("the model does not fit the free GPU memory: keep one warm model per GPU (fewer warm entries or "
             "-aiRunnerContainersPerGPU 1), pick a smaller variant, or move it to a GPU class with more VRAM")
_WEIGHTS_HINT = ("the weights are not where the runner reads them: fetch them into the models dir (`lpfleet "
                 "prefetch` or the weights step) so models--org--name/refs/main points at a complete snapshot, and "
                 "pass -aiModelsDir as a HOST path (docker-out-of-docker resolves the runner's /models bind on the host)")
_TIMEOUT_HINT = ("the runner never answered /health OK in time: read that runner's own log for the reason (OOM, "
                 "load or weights causes); a wrong -aiModelsDir under docker-out-of-docker shows up only as this timeout")
_EXTERNAL_HINT = ("go-livepeer checks each external url's GET /health once at start (200 within 2 minutes) and "
                  "aborts startup otherwise: start the external container first, fix the url, or remove the entry")
_LOOKUP_HINT = ("the hub cannot find this model_id (it is case-sensitive) or the token lacks gated access: fix "
                "the id's case, accept the model's terms with the token's account, and pre-fetch the weights "
                "(go-livepeer never passes a HuggingFace token to runners)")
_LOAD_HINT = ("the runner failed loading the model: a model_id that does not match the weights (exact case), "
              "corrupt or partial files, or a network error during download: re-fetch and verify the weights")
_CONFIG_HINT = "fix aiModels.json / the worker flags (`lpfleet lint` finds these before a node is touched)"
_GPU_HINT = ("no GPU reached the container: pass -nvidia with the node's GPU ids, and make sure the NVIDIA "
             "driver and container toolkit are installed and dockerd was restarted after `nvidia-ctk runtime "
             "configure`")


@dataclass(frozen=True)
class Rule:
    cause: str
    pattern: re.Pattern[str]
    hint: str
    on_warning: bool = False  # the cause is logged at warning level upstream


def _rule(cause: str, pattern: str, hint: str, on_warning: bool = False, flags: int = 0) -> Rule:
    return Rule(cause, re.compile(pattern, flags), hint, on_warning)


#: go-livepeer reaches the runners it manages at http://localhost:<port>; any other host is an external url.
_LOCAL_URL = r"localhost"

#: First match wins: specific signatures before generic ones.
RULES: tuple[Rule, ...] = (
    # torch's OOM; ai-runner routes/utils.py:269-272 "GPU out of memory.", routes/text_to_image.py:31 "Out of memory
    # error"; vLLM 0.6.5 worker.py raise_if_cache_size_invalid
    _rule("cuda-oom", r"OutOfMemoryError|CUDA out of memory|CUDA error: out of memory|GPU out of memory|"
                      r"Out of memory error|No available memory for the cache blocks|"
                      r"is larger than the maximum number of tokens that can be stored in KV cache", _OOM_HINT),
    # huggingface_hub 0.23.2 utils/_errors.py:135,319,347; diffusers 0.31.0 utils/hub_utils.py:360 (transformers
    # words it the same)
    _rule("model-lookup-failed", r"RepositoryNotFoundError|GatedRepoError|Repository Not Found for url|"
                                 r"Cannot access gated repo for url|Access to model \S+ is restricted|"
                                 r"is not a local folder and is not a valid model identifier", _LOOKUP_HINT),
    # diffusers 0.31.0 pipelines/pipeline_utils.py:1480, configuration_utils.py:416, utils/hub_utils.py:381;
    # huggingface_hub 0.23.2 _snapshot_download.py:221; hub_utils.py:310; ai-runner pipelines/llm.py:71 and :328
    _rule("weights-missing", r"Cannot load model \S+: model is not cached locally|"
                             r"We couldn't connect to '\S+' to load this model|LocalEntryNotFoundError|"
                             r"Cannot find an appropriate cached snapshot folder|Error no file named|"
                             r"Could not find model files for|"
                             r"FileNotFoundError: \[Errno 2\] No such file or directory: '/models/models--|"
                             r"bind source path does not exist", _WEIGHTS_HINT),
    # safetensors' header error; diffusers 0.31.0 utils/hub_utils.py:389, configuration_utils.py:424 and :436
    _rule("model-load-failed", r"Error while deserializing header|SafetensorError|Can't load the model for '|"
                               r"Can't load config for '|is not a valid JSON file", _LOAD_HINT),
    # go-livepeer starter.go:1360 (a warning); ai-runner pipelines/utils/utils.py:150-151 (a warning)
    _rule("no-gpu", r"No GPU discovered|could not select device driver .*capabilities: \[\[gpu\]\]|"
                    r"Found no NVIDIA driver|NVIDIA-SMI has failed|nvidia-smi: (?:command )?not found|"
                    r"Error parsing -nvidia for devices|CUDA driver initialization failed|"
                    r"Device '\S*' not found\. Defaulting to 'cpu'", _GPU_HINT, on_warning=True),
    _rule("external-health-failed",
          r'timed out waiting for runner: Get "https?://(?!' + _LOCAL_URL + r'[:/"])', _EXTERNAL_HINT),
    _rule("invalid-config", r"insufficient capacity",
          "more warm containers than GPU slots: go-livepeer exits at start (a restart loop under a restart "
          "policy); keep warm containers <= GPUs x -aiRunnerContainersPerGPU"),
    _rule("invalid-config", r"value is not a number",
          "price_per_unit must be a JSON number (not a string such as \"0.5e-2USD\"): " + _CONFIG_HINT),
    _rule("invalid-config", r"'pricePerUnit' must be set",
          "set price_per_unit on every entry, or -pricePerUnit, when the node prices on-chain"),
    _rule("invalid-config", r"Cannot have same model_id .* as cold and warm",
          "the same model_id is both warm and cold: make all its entries one or the other"),
    _rule("invalid-config", r"Pipeline is not valid capability",
          "unknown pipeline name in aiModels.json: " + _CONFIG_HINT),
    _rule("invalid-config", r"invalid AI model config expected",
          "-aiModels names a file that does not exist in the worker container (go-livepeer then reads it as the "
          "inline pipeline:model_id:warm form): mount aiModels.json and pass its container path"),
    # starter.go:1043 "Error converting price" (-pricePerUnit) and :1568 "error converting price" (an entry)
    _rule("invalid-config", r"(?i:error converting price)",
          "the price's currency cannot be converted: go-livepeer's default -priceFeedAddr is the ETH/USD feed, so "
          "use wei, eth or USD, or point -priceFeedAddr (price_feed_addr) at a feed quoting ETH in that currency"),
    _rule("invalid-config", r"Error parsing -aiModels|cannot unmarshal|Error unmarshaling image overrides|"
                            r"must be a valid positive|-pixelsPerUnit must be|-pricePerUnit must be|"
                            r"flag provided but not defined|flag needs an argument|"
                            r"no container image found for live pipeline|"
                            r"flag was set, but no model configuration was provided|Missing -orch(?:Addr|Secret)",
          _CONFIG_HINT),
    _rule("runner-timeout", r"timed out waiting for runner|timed out waiting for managed container|"
                            r"container entered terminal state before running|container exited before running|"
                            r"runner is in error state|Container health check failed|Container is loading for too long|"
                            r"Container returned ERROR state|Error getting health for runner", _TIMEOUT_HINT),
)

# Lines that read as errors but only frame another line's cause.
_FRAMING = re.compile(r"Traceback \(most recent call last\)|Application startup failed\. Exiting\.|"
                      r"^\s*(?:raise|File \")")

_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)\s+")

# The level a log line states: glog's I/W, go's slog text, logfmt (ai-runner live/log.py:33-36), uvicorn's
# "%(asctime)s %(levelprefix)s" (runner/src/runner/cfg/uvicorn_logging_config.json) and python logging.
_INFO_LINE = re.compile(
    r"^[ID]\d{4} \d\d:\d\d:\d\d"
    r"|^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:INFO|DEBUG) "
    r"|\blevel=(?:info|INFO|debug|DEBUG)\b"
    r"|^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)? )?(?:INFO|DEBUG):"
    r"| - (?:INFO|DEBUG) - "
)
_WARNING_LINE = re.compile(
    r"^W\d{4} \d\d:\d\d:\d\d"
    r"|^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d WARN "
    r"|\blevel=(?:warn|warning|WARN|WARNING)\b"
    r"|^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)? )?WARNING:"
    r"| - WARNING - "
)
# diffusers 0.31.0 pipelines/pipeline_utils.py:1284: logger.warning(f"Couldn't connect to the Hub: {e}.\nWill try
# to load from local cache."): the error inside it (a 401 for a gated model, a 404, no network) is a warning; the
# load only failed when "Cannot load model ..." follows.
_HUB_WARNING_START = "Couldn't connect to the Hub:"
_HUB_WARNING_END = "Will try to load from local cache."
_HUB_WARNING_MAX_LINES = 12
_ERROR_LINE = re.compile(
    r"^[EF]\d{4} \d\d:\d\d:\d\d"                                  # glog error / fatal
    r"|^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:ERROR|FATAL) "           # slog via log
    r"|\blevel=(?:error|ERROR|fatal|FATAL)\b"                      # logfmt
    r"|^(?:ERROR|CRITICAL|FATAL)\s*[:\]-]"                         # uvicorn, python
    r"| - (?:ERROR|CRITICAL) - "                                   # python logging format
    r"|^panic: "                                                   # Go panic
    r"|^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception):"     # Python exception line
    r"|^Error: |^fatal: "
)

MAX_UNKNOWN = 5


def _clean(line: str) -> str:
    return _TIMESTAMP.sub("", line.rstrip("\r\n")).strip()


def classify_line(line: str) -> Cause | None:
    """The known cause a single line shows, an `unknown` finding for an unexplained error line, else None."""
    text = _clean(line)
    if not text or _INFO_LINE.search(text) or _HUB_WARNING_START in text:
        return None
    warning = bool(_WARNING_LINE.search(text))
    for rule in RULES:
        if (rule.on_warning or not warning) and rule.pattern.search(text):
            return Cause(rule.cause, text[:400], rule.hint)
    if warning:
        return None
    if _ERROR_LINE.search(text) and not _FRAMING.search(text):
        return Cause("unknown", text[:400], "an error no known signature explains: read the surrounding log")
    return None


def diagnose(text: str) -> list[Cause]:
    """Every cause the log shows, in order of first appearance: one finding per known cause (its first
    evidence line), and up to MAX_UNKNOWN distinct unexplained error lines."""
    found: list[Cause] = []
    seen_causes: set[str] = set()
    seen_unknown: set[str] = set()
    in_hub_warning = 0
    for line in text.splitlines():
        if _HUB_WARNING_START in line:
            in_hub_warning = _HUB_WARNING_MAX_LINES
        if in_hub_warning:
            in_hub_warning = 0 if _HUB_WARNING_END in line else in_hub_warning - 1
            continue
        finding = classify_line(line)
        if finding is None:
            continue
        if finding.cause == "unknown":
            if finding.line in seen_unknown or len(seen_unknown) >= MAX_UNKNOWN:
                continue
            seen_unknown.add(finding.line)
        else:
            if finding.cause in seen_causes:
                continue
            seen_causes.add(finding.cause)
        found.append(finding)
    return found


def failed(findings: list[Cause]) -> bool:
    return bool(findings)
