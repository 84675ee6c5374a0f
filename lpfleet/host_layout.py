"""Where Docker and the NVIDIA Container Toolkit live on a node, as lpfleet wants them: package sets, keyrings,
apt sources and the restart marker. Pure: the facts read the node against it, the operations write it.
"""

from __future__ import annotations

from lpfleet.spec import NodeSpec

DOCKER_PACKAGES_CE: tuple[str, ...] = (
    "docker-ce",
    "docker-ce-cli",
    "containerd.io",
    "docker-buildx-plugin",
    "docker-compose-plugin",
)
#: Distribution packages Docker's install guide removes before installing docker-ce.
DOCKER_PACKAGES_DISTRO: tuple[str, ...] = (
    "docker.io",
    "docker-doc",
    "docker-compose",
    "podman-docker",
    "containerd",
    "runc",
)
TOOLKIT_PACKAGES: tuple[str, ...] = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
PREREQUISITE_PACKAGES: tuple[str, ...] = ("ca-certificates", "curl")

NVIDIA_KEYRING = "/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg"
NVIDIA_SOURCE = "/etc/apt/sources.list.d/nvidia-container-toolkit.sources"
DOCKER_KEYRING = "/etc/apt/keyrings/docker.asc"
DOCKER_SOURCE = "/etc/apt/sources.list.d/docker.sources"
RESTART_MARKER = "/var/lib/lpfleet/docker-restart-pending"
#: Where NVIDIA's repositories (current and retired) live: any other source file naming one conflicts with ours.
NVIDIA_REPO_MARKERS: tuple[str, ...] = (
    "nvidia.github.io/libnvidia-container",
    "nvidia.github.io/nvidia-docker",
    "nvidia.github.io/nvidia-container-runtime",
)


def repo_marker(repo_url: str) -> str:
    """What identifies a repository URL in other source files: host and path, without scheme or $(ARCH)."""
    without_scheme = repo_url.split("://", 1)[-1]
    return without_scheme.split("$(ARCH)", 1)[0].rstrip("/") or without_scheme


def docker_key_url(spec: NodeSpec) -> str:
    """Docker's key URL for a NodeSpec ("" when Docker comes from the distribution)."""
    if spec.docker.install != "docker-ce":
        return ""
    return spec.docker.key_url or spec.docker.repo_url.rstrip("/") + "/{distro}/gpg"
