"""The host's Docker daemon, through the `docker` CLI (it speaks to any daemon version and streams
`docker save | docker exec -i ... docker load` pipes without holding images in memory)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence

from lpfleet.sandbox.state import SandboxError

NO_DAEMON = (
    "no Docker daemon answers ({why}); start one with scripts/host-deps (`make test` and `make demo` do), "
    "or point DOCKER_HOST at one"
)


class DockerError(SandboxError):
    pass


def docker(
    *args: str,
    input: bytes | str | None = None,
    check: bool = True,
    timeout: float | None = 600,
) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS`; DockerError with the command and its stderr when it fails and `check`."""
    data = input.encode() if isinstance(input, str) else input
    result = subprocess.run(["docker", *args], input=data, capture_output=True, timeout=timeout)
    completed = subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(errors="replace"), result.stderr.decode(errors="replace")
    )
    if check and completed.returncode != 0:
        raise DockerError(f"`docker {' '.join(args[:6])}{' ...' if len(args) > 6 else ''}` failed: "
                          f"{completed.stderr.strip() or completed.stdout.strip()}")
    return completed


def daemon_problem() -> str | None:
    """None when a daemon answers, else why not (for a clear message, never a silent skip)."""
    if shutil.which("docker") is None:
        return NO_DAEMON.format(why="no `docker` command on PATH")
    try:
        result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                                capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return NO_DAEMON.format(why="`docker version` timed out")
    if result.returncode != 0 or not result.stdout.strip():
        return NO_DAEMON.format(why=(result.stderr.strip().splitlines() or ["no answer"])[-1])
    return None


def require_daemon() -> None:
    problem = daemon_problem()
    if problem:
        raise DockerError(problem)


def image_id(ref: str) -> str | None:
    result = docker("image", "inspect", "--format", "{{.Id}}", ref, check=False)
    return result.stdout.strip() if result.returncode == 0 else None


def image_label(ref: str, label: str) -> str | None:
    result = docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', ref, check=False)
    value = result.stdout.strip()
    return value if result.returncode == 0 and value and value != "<no value>" else None


def inspect_images(refs: list[str]) -> dict[str, tuple[str, dict[str, str]]]:
    """ref -> (image id, labels) for every ref the daemon has, in one `docker image inspect` call."""
    if not refs:
        return {}
    result = docker("image", "inspect", *refs, check=False)
    try:
        found = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        found = []
    by_ref: dict[str, tuple[str, dict[str, str]]] = {}
    for image in found:
        entry = (image["Id"], dict((image.get("Config") or {}).get("Labels") or {}))
        for ref in refs:
            if ref in (image.get("RepoTags") or []) or ref == image["Id"]:
                by_ref[ref] = entry
    return by_ref


def names(kind: str, label: str) -> list[str]:
    """Names of containers / networks / volumes carrying `label` (k=v)."""
    if kind == "container":
        out = docker("ps", "-a", "--filter", f"label={label}", "--format", "{{.Names}}").stdout
    else:
        out = docker(kind, "ls", "--filter", f"label={label}", "--format", "{{.Name}}").stdout
    return sorted(line for line in out.split() if line)


def pipe(producer: Sequence[str], consumer: Sequence[str], timeout: float = 600) -> None:
    """`producer | consumer` (both docker commands), without buffering the stream here."""
    first = subprocess.Popen(["docker", *producer], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert first.stdout is not None
    second = subprocess.run(["docker", *consumer], stdin=first.stdout, capture_output=True, timeout=timeout)
    first.stdout.close()
    first_err = first.stderr.read().decode(errors="replace") if first.stderr else ""
    first.wait(timeout=timeout)
    if first.returncode != 0 or second.returncode != 0:
        raise DockerError(
            f"`docker {' '.join(producer)} | docker {' '.join(consumer)}` failed: "
            f"{first_err.strip()} {second.stderr.decode(errors='replace').strip()}".strip()
        )
