"""Runner and go-livepeer log text -> known failure causes, each with its evidence line and a fix hint.

Pure: no I/O. The signatures are the ones go-livepeer, ai-runner and the Livepeer docs show operators
(reference/livepeer.md, livepeer-model-hosting.txt "Verifying model load"). A line that reads as an error but
matches no signature is reported as `unknown`, never guessed. Cause ids are stable (reports and CI use them):
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


def _rule(cause: str, pattern: str, hint: str) -> Rule:
    return Rule(cause, re.compile(pattern), hint)


#: go-livepeer reaches the runners it manages at http://localhost:<port>; any other host is an external url.
_LOCAL_URL = r"localhost"

#: First match wins: specific signatures before generic ones.
RULES: tuple[Rule, ...] = (
    _rule("cuda-oom", r"OutOfMemoryError|CUDA out of memory|CUDA error: out of memory|GPU out of memory|"
                      r"Out of memory error", _OOM_HINT),
    _rule("model-lookup-failed", r"model lookup failed|RepositoryNotFoundError|GatedRepoError|"
                                 r"Repository Not Found for url|Access to model \S+ is restricted|"
                                 r"401 Client Error", _LOOKUP_HINT),
    _rule("weights-missing", r"does not exist at |LocalEntryNotFoundError|Cannot find an appropriate cached snapshot|"
                             r"Error no file named|Could not find model files|bind source path does not exist",
          _WEIGHTS_HINT),
    _rule("model-load-failed", r"Failed to load model", _LOAD_HINT),
    _rule("no-gpu", r"No GPU discovered|could not select device driver .*capabilities: \[\[gpu\]\]|"
                    r"Found no NVIDIA driver|NVIDIA-SMI has failed|nvidia-smi: (?:command )?not found|"
                    r"Error parsing -nvidia for devices|CUDA driver initialization failed", _GPU_HINT),
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
    _rule("invalid-config", r"Error parsing -aiModels|cannot unmarshal|Error unmarshaling image overrides|"
                            r"must be a valid positive|-pixelsPerUnit must be|-pricePerUnit must be|"
                            r"error converting price|flag provided but not defined|flag needs an argument|"
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
    if not text:
        return None
    for rule in RULES:
        if rule.pattern.search(text):
            return Cause(rule.cause, text[:400], rule.hint)
    if _ERROR_LINE.search(text) and not _FRAMING.search(text):
        return Cause("unknown", text[:400], "an error no known signature explains: read the surrounding log")
    return None


def diagnose(text: str) -> list[Cause]:
    """Every cause the log shows, in order of first appearance: one finding per known cause (its first
    evidence line), and up to MAX_UNKNOWN distinct unexplained error lines."""
    found: list[Cause] = []
    seen_causes: set[str] = set()
    seen_unknown: set[str] = set()
    for line in text.splitlines():
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
