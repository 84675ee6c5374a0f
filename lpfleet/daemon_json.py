"""Merging our keys into Docker's daemon.json: pure, on parsed structures.

We own `runtimes.nvidia` always, and - only when asked for - `default-runtime` (set to "nvidia"),
`features.cdi` (true) and `live-restore` (true). Every other key is kept as it is. An option we are not
asked for is left alone, whatever its value: "not managed" never means "remove".

"Changed" is decided on the parsed structure, never on bytes, so a hand-formatted file that already says
what we want is not rewritten; the nvidia runtime path `nvidia-container-runtime` and
`/usr/bin/nvidia-container-runtime` count as the same. A new file is written the way `nvidia-ctk runtime
configure` writes it (Go's json.MarshalIndent: 4 spaces, sorted keys, no trailing newline), so a later manual
nvidia-ctk run makes no diff. A file that is not a JSON object is refused, never overwritten.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass

NVIDIA_RUNTIME = "nvidia"
NVIDIA_RUNTIME_PATH = "nvidia-container-runtime"
#: Paths that name the same runtime binary (nvidia-ctk writes the bare name; older guides the absolute path).
EQUIVALENT_RUNTIME_PATHS = frozenset({NVIDIA_RUNTIME_PATH, "/usr/bin/nvidia-container-runtime"})
DEFAULT_PATH = "/etc/docker/daemon.json"

#: dockerd flags (as in the systemd unit or DOCKER_OPTS) that set the same directive as a daemon.json key we
#: write: dockerd refuses to start when a directive is set both ways ("--add-runtime" and "runtimes" merge:
#: checked on docker.io 20.10).
_FLAG_FOR_KEY = {
    "default-runtime": ("--default-runtime",),
    "live-restore": ("--live-restore",),
}


class DaemonJsonError(ValueError):
    """daemon.json cannot be merged safely (not JSON, not an object, or a key we must write has the wrong type)."""


@dataclass(frozen=True)
class DockerConfigWanted:
    """The keys of daemon.json we manage for one node."""

    set_default_runtime: bool = False
    cdi: bool = False
    live_restore: bool = False


@dataclass(frozen=True)
class MergePlan:
    """What merging does to one daemon.json: `content` is the file to write when `changed`."""

    changed: bool
    content: str
    changes: tuple[str, ...]
    merged: dict


def parse(text: str | bytes | None) -> dict:
    """The current daemon.json as a dict: missing or blank -> {}; anything but a JSON object -> DaemonJsonError."""
    if text is None:
        return {}
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DaemonJsonError(f"not valid UTF-8 ({exc})") from exc
    elif text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DaemonJsonError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    if not isinstance(value, dict):
        raise DaemonJsonError(f"not a JSON object (top level is {type(value).__name__})")
    return value


def render(config: dict) -> str:
    """Serialise like nvidia-ctk (Go json.MarshalIndent with 4 spaces): sorted keys, <>& escaped, no newline."""
    text = json.dumps(config, indent=4, sort_keys=True, ensure_ascii=False)
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


def nvidia_runtime_ok(entry: object) -> bool:
    """True when a runtimes.nvidia entry already runs the NVIDIA runtime with no extra arguments."""
    if not isinstance(entry, dict) or entry.get("path") not in EQUIVALENT_RUNTIME_PATHS:
        return False
    extra = set(entry) - {"path", "args", "runtimeArgs"}
    return not extra and all(entry.get(key) in (None, []) for key in ("args", "runtimeArgs"))


def merge(current: dict, wanted: DockerConfigWanted) -> tuple[dict, tuple[str, ...]]:
    """Our keys merged into a copy of `current`, and a line per key that changed (empty when none did)."""
    merged = copy.deepcopy(current)
    changes: list[str] = []

    runtimes = merged.get("runtimes", {})
    if not isinstance(runtimes, dict):
        raise DaemonJsonError(f'"runtimes" is a {type(runtimes).__name__}, not an object')
    entry = runtimes.get(NVIDIA_RUNTIME)
    if not nvidia_runtime_ok(entry):
        path = entry.get("path") if isinstance(entry, dict) else None
        runtimes[NVIDIA_RUNTIME] = {
            "args": [],
            "path": path if path in EQUIVALENT_RUNTIME_PATHS else NVIDIA_RUNTIME_PATH,
        }
        changes.append("runtimes.nvidia " + ("added" if entry is None else f"replaced (was {json.dumps(entry)})"))
    merged["runtimes"] = runtimes

    if wanted.set_default_runtime and merged.get("default-runtime") != NVIDIA_RUNTIME:
        was = merged.get("default-runtime")
        merged["default-runtime"] = NVIDIA_RUNTIME
        changes.append(f'default-runtime set to "nvidia" (was {json.dumps(was)})')

    if wanted.cdi:
        features = merged.get("features", {})
        if not isinstance(features, dict):
            raise DaemonJsonError(f'"features" is a {type(features).__name__}, not an object')
        if features.get("cdi") is not True:
            features["cdi"] = True
            changes.append("features.cdi set to true")
        merged["features"] = features

    if wanted.live_restore and merged.get("live-restore") is not True:
        merged["live-restore"] = True
        changes.append("live-restore set to true")

    return merged, tuple(changes)


def plan(text: str | bytes | None, wanted: DockerConfigWanted) -> MergePlan:
    """Parse the current file (None when absent), merge, and say whether it must be written."""
    current = parse(text)
    merged, changes = merge(current, wanted)
    return MergePlan(changed=bool(changes), content=render(merged), changes=changes, merged=merged)


def flag_conflicts(config: dict, dockerd_args: Iterable[str]) -> tuple[str, ...]:
    """Keys of `config` that dockerd's command line also sets (dockerd would refuse to start)."""
    args = list(dockerd_args)
    conflicts = []
    for key, flags in _FLAG_FOR_KEY.items():
        if key not in config:
            continue
        for flag in flags:
            if any(arg == flag or arg.startswith(flag + "=") for arg in args):
                conflicts.append(f"{key} (dockerd is started with {flag})")
    return tuple(conflicts)


def config_file_from_args(dockerd_args: Iterable[str]) -> str:
    """The daemon.json dockerd really reads: its --config-file flag, else the default path."""
    args = list(dockerd_args)
    for index, arg in enumerate(args):
        if arg == "--config-file" and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--config-file="):
            return arg.split("=", 1)[1]
    return DEFAULT_PATH
