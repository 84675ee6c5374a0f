"""Builds the sandbox's images from `lpfleet/sandbox/images/<dir>/`, in base order, rebuilding only what changed.

Every folder holds a `Dockerfile` (`ARG BASE` / `FROM ${BASE}`) and an `image.json`:

    {"tags": ["lpfleet-sandbox/<dir>:latest"],      first tag is the one we build FROM and run
     "base": "debian" | "<other dir>",               "debian" is built in code (see ensure_debian)
     "target": "host" | "node",                      node: loaded into every node's own dockerd
     "context": "../../somewhere",                   optional build context, relative to the folder
     "host_files": {"name-in-context": "/host/path"},  optional host files copied into the context
     "run": {...}}                                   optional, target host only: see RunSpec

An image is rebuilt only when the hash of its inputs changed: the folder's files, its context's files,
its host files and the base image's id (stored as label `lpfleet.sandbox.input-hash`). Builds are
serialized across processes with a lock file, so sandboxes started side by side share the images.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lpfleet.sandbox.engine import docker, image_id, inspect_images
from lpfleet.sandbox.state import SandboxError, sandboxes_dir

IMAGES_DIR = Path(__file__).resolve().parent / "images"
HASH_LABEL = "lpfleet.sandbox.input-hash"
IMAGE_LABEL = "lpfleet.sandbox.image"
DEBIAN = "debian"
DEBIAN_UPSTREAM = "debian:bookworm"  # used as is when the daemon has it (a machine with Docker Hub)
DEBIAN_TAG = "lpfleet-sandbox/debian:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_RECIPE = f"debootstrap --variant=minbase bookworm {DEBIAN_MIRROR}"
_SKIP = {"__pycache__", ".pytest_cache", ".mypy_cache"}

Log = Callable[[str], None]


class ImageError(SandboxError):
    pass


class RunSpec(BaseModel):
    """How `up` runs a `target: host` image as the service container `<sandbox>-<service>`.

    Every key is optional; an image without "run" is built but not run.
    """

    model_config = ConfigDict(extra="forbid")

    service: str | None = None  # container suffix; default: the folder name
    command: list[str] | None = None  # replaces the image's CMD
    env: dict[str, str] = Field(default_factory=dict)  # plain values; "{sandbox}" expands to the sandbox name
    generated_secrets: list[str] = Field(default_factory=list)  # env vars set to a random per-sandbox value,
    # passed with --env-file (never on a command line) and recorded in state.secrets
    publish: list[int] = Field(default_factory=list)  # container ports published on 127.0.0.1:<free port>
    port: int | None = None  # the port nodes reach it on (node view URL http://<container>:<port>)
    tmpfs: list[str] = Field(default_factory=list)
    init: bool = True  # --init: a PID 1 that forwards SIGTERM (fast stops)
    ready: Literal["port", "none"] = "port"  # wait until `port` accepts connections from the network
    facts: dict[str, list[str]] = Field(default_factory=dict)  # name -> command run in the container after start;
    # its trimmed stdout is recorded in state.services[...].facts[name]


class ImageSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(min_length=1)
    base: str
    target: Literal["host", "node"]
    context: str | None = None
    host_files: dict[str, str] = Field(default_factory=dict)
    run: RunSpec | None = None

    # filled in by discover(), not part of image.json
    folder: Path = Field(default=Path("."), exclude=True)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def tag(self) -> str:
        return self.tags[0]

    @property
    def context_dir(self) -> Path:
        return (self.folder / self.context).resolve() if self.context else self.folder


class BuiltImage(BaseModel):
    name: str
    tag: str
    tags: list[str]
    id: str
    target: Literal["host", "node"]
    built: bool  # False when the cached image was up to date


def discover(folders: list[Path] | None = None) -> dict[str, ImageSpec]:
    """Every image folder (IMAGES_DIR's sub-folders, or `folders`), validated; errors name the file and field."""
    if folders is None:
        folders = sorted(p for p in IMAGES_DIR.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    specs: dict[str, ImageSpec] = {}
    for folder in folders:
        meta, dockerfile = folder / "image.json", folder / "Dockerfile"
        if not meta.is_file() and not dockerfile.is_file():
            continue  # a folder being written by someone else, or not an image
        for needed in (meta, dockerfile):
            if not needed.is_file():
                raise ImageError(f"image folder {folder}: missing {needed.name}")
        try:
            spec = ImageSpec.model_validate(json.loads(meta.read_text()))
        except json.JSONDecodeError as exc:
            raise ImageError(f"{meta}: not JSON ({exc})") from None
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ImageError(f"{meta}: {problems}") from None
        spec.folder = folder.resolve()
        if folder.name == DEBIAN:
            raise ImageError(f"{folder}: the folder name {DEBIAN!r} is reserved for the built-in base image")
        if spec.name in specs:
            raise ImageError(f"{folder}: a second image folder named {spec.name!r}")
        if not spec.context_dir.is_dir():
            raise ImageError(f"{meta}: context {spec.context!r} is not a folder ({spec.context_dir})")
        if spec.run and spec.target != "host":
            raise ImageError(f"{meta}: run: only target \"host\" images run as sandbox services")
        specs[spec.name] = spec
    return specs


def build_order(bases: Mapping[str, str]) -> list[str]:
    """Image names ordered so every base comes before the images built FROM it (pure).

    `bases` maps image name -> base name; DEBIAN is built in. Unknown bases and cycles are errors.
    """
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise ImageError(f"image bases form a cycle: {' -> '.join((*chain, name))}")
        state[name] = "visiting"
        base = bases[name]
        if base != DEBIAN:
            if base not in bases:
                raise ImageError(f"image {name!r}: base {base!r} is neither {DEBIAN!r} nor an image folder")
            visit(base, (*chain, name))
        state[name] = "done"
        order.append(name)

    for name in sorted(bases):
        visit(name, ())
    return order


def input_hash(files: Mapping[str, bytes], base_id: str) -> str:
    """sha256 over (path, content) pairs and the base image id (pure; order-independent)."""
    digest = hashlib.sha256()
    digest.update(f"base\0{base_id}\0".encode())
    for path in sorted(files):
        content = files[path]
        digest.update(f"{path}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def _tree_files(root: Path, prefix: str) -> Iterator[tuple[str, bytes]]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in _SKIP for part in relative.parts) or path.suffix == ".pyc" or not path.is_file():
            continue
        yield f"{prefix}/{relative.as_posix()}", path.read_bytes()


def spec_inputs(spec: ImageSpec) -> dict[str, bytes]:
    """What an image is built from: its folder, its context and its host files."""
    files = dict(_tree_files(spec.folder, "folder"))
    if spec.context_dir != spec.folder:
        files.update(_tree_files(spec.context_dir, "context"))
    for name, host_path in sorted(spec.host_files.items()):
        try:
            files[f"host/{name}"] = Path(host_path).read_bytes()
        except OSError as exc:
            raise ImageError(f"{spec.folder / 'image.json'}: host_files.{name}: cannot read {host_path}: {exc}") from None
    return files


@contextmanager
def build_lock() -> Iterator[None]:
    """One builder at a time on this machine (several sandboxes may come up at once)."""
    folder = sandboxes_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_debian(log: Log) -> tuple[str, str]:
    """The base every image starts from: `debian:bookworm` if the daemon has it, else our debootstrap build.

    Returns the image reference (a tag) and id. The debootstrap image is built once and kept (label HASH_LABEL).
    """
    present = inspect_images([DEBIAN_UPSTREAM, DEBIAN_TAG])
    if DEBIAN_UPSTREAM in present:
        return DEBIAN_UPSTREAM, present[DEBIAN_UPSTREAM][0]
    recipe_hash = hashlib.sha256(DEBIAN_RECIPE.encode()).hexdigest()
    if DEBIAN_TAG in present and present[DEBIAN_TAG][1].get(HASH_LABEL) == recipe_hash:
        return DEBIAN_TAG, present[DEBIAN_TAG][0]
    if shutil.which("debootstrap") is None:
        raise ImageError(f"no {DEBIAN_UPSTREAM} image and no debootstrap to build {DEBIAN_TAG}: run scripts/host-deps")
    log(f"building {DEBIAN_TAG} ({DEBIAN_RECIPE}, about a minute)")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lpfleet-debootstrap-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        result = subprocess.run(
            ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), DEBIAN_MIRROR],
            capture_output=True, text=True,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise ImageError(f"debootstrap failed:\n{tail}")
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        imported = subprocess.run(
            ["docker", "import", "-c", 'CMD ["/bin/bash"]', "-c", f"LABEL {HASH_LABEL}={recipe_hash}",
             "-c", f"LABEL {IMAGE_LABEL}={DEBIAN}", "-", DEBIAN_TAG],
            stdin=tar.stdout, capture_output=True, text=True,
        )
        tar.stdout.close()
        tar.wait()
        if tar.returncode != 0 or imported.returncode != 0:
            raise ImageError(f"docker import of the debootstrap rootfs failed: {imported.stderr.strip()}")
    log(f"built {DEBIAN_TAG} in {time.monotonic() - started:.0f} s")
    return DEBIAN_TAG, image_id(DEBIAN_TAG) or ""


def _build(spec: ImageSpec, base_ref: str, digest: str) -> None:
    args = ["build", "--quiet", "--build-arg", f"BASE={base_ref}", "--label", f"{HASH_LABEL}={digest}",
            "--label", f"{IMAGE_LABEL}={spec.name}", "-f", str(spec.folder / "Dockerfile")]
    for tag in spec.tags:
        args += ["-t", tag]
    if spec.host_files:
        with tempfile.TemporaryDirectory(prefix=f"lpfleet-build-{spec.name}-") as tmp:
            context = Path(tmp) / "context"
            shutil.copytree(spec.context_dir, context, ignore=shutil.ignore_patterns(*_SKIP, "*.pyc"))
            for name, host_path in spec.host_files.items():
                shutil.copyfile(host_path, context / name)
            docker(*args, str(context), timeout=1800)
    else:
        docker(*args, str(spec.context_dir), timeout=1800)


def build_images(specs: Mapping[str, ImageSpec], log: Log = print) -> dict[str, BuiltImage]:
    """Build (or reuse) every image in `specs` and the bases they need, in base order."""
    built: dict[str, BuiltImage] = {}
    with build_lock():
        debian_ref, debian_id = ensure_debian(log)
        refs, base_ids = {DEBIAN: debian_ref}, {DEBIAN: debian_id}
        present = inspect_images([tag for spec in specs.values() for tag in spec.tags])
        for name in build_order({name: spec.base for name, spec in specs.items()}):
            spec = specs[name]
            digest = input_hash(spec_inputs(spec), base_ids[spec.base])
            fresh = all(tag in present and present[tag][1].get(HASH_LABEL) == digest for tag in spec.tags)
            if fresh:
                ident = present[spec.tag][0]
            else:
                log(f"building image {spec.tag} ({name}/)")
                started = time.monotonic()
                _build(spec, refs[spec.base], digest)
                log(f"built {spec.tag} in {time.monotonic() - started:.1f} s")
                ident = image_id(spec.tag)
            if not ident:
                raise ImageError(f"image {spec.tag} is missing right after its build")
            base_ids[name], refs[name] = ident, spec.tag
            built[name] = BuiltImage(name=name, tag=spec.tag, tags=list(spec.tags), id=ident, target=spec.target,
                                     built=not fresh)
        # Rebuilds leave the previous image untagged: drop those of ours that no container uses.
        docker("image", "prune", "--force", "--filter", f"label={HASH_LABEL}", check=False)
    return built


def our_images() -> list[str]:
    """Ids of every image this builder made (label HASH_LABEL), for `bench` clean starts."""
    out = docker("images", "-q", "--no-trunc", "--filter", f"label={HASH_LABEL}").stdout
    return sorted(set(out.split()))
