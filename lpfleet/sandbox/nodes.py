"""Sandbox node containers: systemd as PID 1, sshd on 127.0.0.1:<port>, their own dockerd (once the deploy
installs it), per-node files (authorized key, fake GPUs) and the stand-in images they can run."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import socket
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lpfleet.sandbox.engine import DockerError, docker, pipe
from lpfleet.sandbox.state import LABEL, ROLE_LABEL, SandboxError, sandboxes_dir

#: Docker-in-node without --privileged (the VM lacks CAP_SYS_RESOURCE): see docs/sandbox.md.
NODE_RUN_OPTIONS: tuple[str, ...] = (
    "--cap-add", "ALL", "--cap-drop", "SYS_RESOURCE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--security-opt", "systempaths=unconfined",
    "--tmpfs", "/run", "--tmpfs", "/run/lock",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
)
IMAGES_IN_NODE = "/var/lib/lpfleet-sandbox/images"
LOAD_IMAGES = "/usr/local/lib/lpfleet-sandbox/load-images"
GPUS_CSV = "etc/lpfleet-sandbox/gpus.csv"

Log = Callable[[str], None]


def node_name(sandbox: str, index: int) -> str:
    return f"{sandbox}-node-{index}"


def docker_volume(container: str) -> str:
    return f"{container}-docker"


@dataclass(frozen=True)
class NodeContainer:
    name: str
    running: bool
    image_id: str
    ssh_port: int | None


def inspect_nodes(sandbox: str) -> dict[str, NodeContainer]:
    """The sandbox's node containers as the daemon sees them."""
    out = docker("ps", "-a", "--filter", f"label={LABEL}={sandbox}", "--filter", f"label={ROLE_LABEL}=node",
                 "--format", "{{.Names}}").stdout.split()
    if not out:
        return {}
    fmt = '{{.Name}}\t{{.State.Running}}\t{{.Image}}\t{{with index .NetworkSettings.Ports "22/tcp"}}' \
          '{{(index . 0).HostPort}}{{end}}'
    nodes = {}
    for line in docker("inspect", "--format", fmt, *out).stdout.splitlines():
        name, running, image, port = (line.split("\t") + [""])[:4]
        name = name.lstrip("/")
        nodes[name] = NodeContainer(name, running == "true", image, int(port) if port.isdigit() else None)
    return nodes


def node_files_tar(authorized_key: bytes, gpus_csv: str) -> bytes:
    """The per-node files as one tar stream for `docker cp - <node>:/` (owner root, exact modes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, content, mode in (
            ("root/.ssh/authorized_keys", authorized_key, 0o600),
            (GPUS_CSV, gpus_csv.encode(), 0o644),
        ):
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.uid, info.gid, info.mtime = len(content), mode, 0, 0, int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def create_node(sandbox: str, index: int, image: str, network: str, images_dir: Path) -> None:
    name = node_name(sandbox, index)
    volume = docker_volume(name)
    docker("volume", "create", "--label", f"{LABEL}={sandbox}", volume)
    docker(
        "create", "--name", name, "--hostname", name, "--network", network,
        "--label", f"{LABEL}={sandbox}", "--label", f"{ROLE_LABEL}=node",
        *NODE_RUN_OPTIONS,
        "-v", f"{volume}:/var/lib/docker",
        "-v", f"{images_dir}:{IMAGES_IN_NODE}:ro",
        "-p", "127.0.0.1::22",
        image,
    )


def put_node_files(name: str, authorized_key: bytes, gpus_csv: str) -> None:
    docker("cp", "-", f"{name}:/", input=node_files_tar(authorized_key, gpus_csv))


def remove_node(name: str) -> None:
    docker("rm", "-f", "-v", name, check=False)
    docker("volume", "rm", "-f", docker_volume(name), check=False)


def exited_node_problem(name: str) -> str | None:
    """None while the node container runs; else why it stopped, with its last console lines."""
    result = docker("inspect", "--format", "{{.State.Running}} {{.State.ExitCode}}", name, check=False)
    running, _, code = result.stdout.strip().partition(" ")
    if result.returncode == 0 and running == "true":
        return None
    logs = docker("logs", "--tail", "15", name, check=False)
    console = (logs.stdout + logs.stderr).strip()
    hint = ""
    if "Too many open files" in console:
        hint = ("\nsystemd ran out of inotify instances: raise fs.inotify.max_user_instances "
                "(scripts/host-deps does, as root)")
    return f"node {name} stopped (exit {code or '?'}); its console:\n{console}{hint}"


def wait_for_ssh(ports: dict[str, int], timeout: float = 90) -> None:
    """Until every node's sshd sends its banner (systemd booted it, host keys exist); fails early with the
    node's console when its container stopped."""
    pending = dict(ports)
    deadline = time.monotonic() + timeout
    last_check = 0.0
    while pending:
        for name, port in list(pending.items()):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.settimeout(2)
                    if conn.recv(64).startswith(b"SSH-2.0-"):
                        del pending[name]
            except OSError:
                pass
        if not pending:
            break
        if time.monotonic() - last_check > 1:
            last_check = time.monotonic()
            for name in pending:
                problem = exited_node_problem(name)
                if problem:
                    raise SandboxError(problem)
        if time.monotonic() > deadline:
            detail = "; ".join(f"{name} (127.0.0.1:{port})" for name, port in sorted(pending.items()))
            raise SandboxError(f"sshd did not answer within {timeout:.0f} s on: {detail}; "
                               f"see `docker logs` / `docker exec <node> systemctl status ssh`")
        time.sleep(0.2)


# --- stand-in images (target "node") ---------------------------------------------------------------------------

BUNDLE = "stand-ins"


def bundle_manifest(images: Mapping[str, tuple[str, list[str]]]) -> str:
    """The .id file of the bundle: one `<tag> <image id>` line per tag, sorted (pure)."""
    return "".join(f"{tag} {ident}\n" for _, (ident, tags) in sorted(images.items()) for tag in sorted(tags))


def stage_node_images(images: Mapping[str, tuple[str, list[str]]], images_dir: Path, log: Log) -> bool:
    """Make `images_dir` (mounted read-only in every node) hold `images` (first tag -> (id, all tags)) as one
    `docker save` bundle of every tag (shared layers stored once) plus its manifest `stand-ins.id`.
    The bundle is saved once per manifest into a shared cache and hard-linked. Returns whether it changed."""
    cache = sandboxes_dir() / ".image-cache"
    cache.mkdir(parents=True, exist_ok=True)
    images_dir.mkdir(parents=True, exist_ok=True)
    manifest = bundle_manifest(images)
    id_file, tar_file = images_dir / f"{BUNDLE}.id", images_dir / f"{BUNDLE}.tar"
    changed = False
    if not manifest:
        for leftover in images_dir.iterdir():
            leftover.unlink()
            changed = True
    elif not (id_file.is_file() and id_file.read_text() == manifest and tar_file.is_file()):
        cached = cache / f"{hashlib.sha256(manifest.encode()).hexdigest()}.tar"
        if not cached.is_file():
            tags = [line.split()[0] for line in manifest.splitlines()]
            log(f"saving {len(images)} stand-in images ({len(tags)} tags) for the nodes")
            partial = cache / f".{cached.name}.{os.getpid()}"
            docker("save", "-o", str(partial), *tags, timeout=1800)
            os.replace(partial, cached)
        for leftover in images_dir.iterdir():
            leftover.unlink()
        try:
            os.link(cached, tar_file)
        except OSError:
            shutil.copyfile(cached, tar_file)
        id_file.write_text(manifest)
        changed = True
    prune_image_cache()
    return changed


def prune_image_cache() -> None:
    """Drop cached bundles no sandbox links to any more."""
    for stale in (sandboxes_dir() / ".image-cache").glob("*.tar"):
        if stale.stat().st_nlink == 1:
            stale.unlink(missing_ok=True)


def missing_images(have: Mapping[str, str], images: Mapping[str, tuple[str, list[str]]]) -> list[str]:
    """Tags a node's dockerd lacks or has on another image id (pure). `have`: tag -> id in the node."""
    return [tag for ident, tags in images.values() for tag in tags if have.get(tag) != ident]


def load_images_into_running_dockerds(nodes: Iterable[str], images: Mapping[str, tuple[str, list[str]]],
                                      log: Log) -> list[str]:
    """On every node whose dockerd runs, load the staged images it lacks (same script the dockerd drop-in
    runs at start). Nodes without docker yet get them when the deploy installs and starts it."""
    loaded = []
    for name in nodes:
        if not images:
            break
        active = docker("exec", name, "systemctl", "is-active", "docker", check=False).stdout.strip()
        if active != "active":
            continue
        listing = docker("exec", name, "docker", "images", "--no-trunc", "--format",
                         "{{.Repository}}:{{.Tag}} {{.ID}}", check=False).stdout
        have = dict(line.split(" ", 1) for line in listing.splitlines() if " " in line)
        missing = missing_images(have, images)
        if not missing:
            continue
        log(f"{name}: loading {', '.join(missing)}")
        result = docker("exec", name, LOAD_IMAGES, check=False, timeout=1800)
        if result.returncode != 0:
            raise DockerError(f"{name}: loading stand-in images failed: {result.stderr.strip()}")
        loaded.append(name)
    return loaded


def stream_image(tag: str, node: str) -> None:
    """`docker save TAG | docker exec -i NODE docker load` (for one-off images outside the staged set)."""
    pipe(["save", tag], ["exec", "-i", node, "docker", "load", "--quiet"])
