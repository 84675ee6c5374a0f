"""Step 1: Docker Engine installed, enabled and running (Docker's repository, or the distribution's docker.io)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy

from lpfleet.facts.docker import node_snapshot
from lpfleet.fleet_plan import NodePlan
from lpfleet.host_layout import (
    DOCKER_KEYRING,
    DOCKER_PACKAGES_CE,
    DOCKER_PACKAGES_DISTRO,
    DOCKER_SOURCE,
    PREREQUISITE_PACKAGES,
    docker_key_url,
)
from lpfleet.operations.apt import (
    apt_key_pinned,
    apt_packages_absent,
    apt_packages_present,
    apt_source_file,
    apt_update_source,
    deb822_source,
    unsupported_distribution,
)
from lpfleet.operations.docker import docker_service_running

#: Docker's release signing key (download.docker.com/linux/{debian,ubuntu}/gpg; mirrors re-serve the same key).
DOCKER_KEY_FINGERPRINT = "9DC858229FC7DD38854AE2D88D81803C0EBFCD88"


@deploy("Docker Engine")
def install_docker_engine(plan: NodePlan) -> None:
    spec = plan.spec
    current = node_snapshot(host, plan)
    if spec.docker.install == "docker.io":
        apt_packages_absent(
            name="Remove Docker's docker-ce packages (docker_install is docker.io)",
            packages=DOCKER_PACKAGES_CE,
            current=current,
            reason="docker_install is docker.io; they conflict with it",
        )
        apt_packages_present(name="Install docker.io", packages=("docker.io",), current=current)
    elif current.distro not in ("debian", "ubuntu"):
        unsupported_distribution(name="Check the distribution", os_id=current.os_id, what="Docker's apt repository")
        return
    else:
        repo = f"{spec.docker.repo_url.rstrip('/')}/{current.distro}"
        apt_packages_absent(
            name="Remove the distribution's docker packages",
            packages=DOCKER_PACKAGES_DISTRO,
            current=current,
            reason="Docker's docker-ce replaces them (Docker's install guide)",
        )
        apt_packages_present(name="Install apt prerequisites", packages=PREREQUISITE_PACKAGES, current=current)
        key = apt_key_pinned(
            name="Trust Docker's apt key (fingerprint checked)",
            label="Docker",
            url=docker_key_url(spec).replace("{distro}", current.distro),
            fingerprint=DOCKER_KEY_FINGERPRINT,
            keyring=DOCKER_KEYRING,
            served=current.download("docker-key"),
            installed=current.file("docker-keyring"),
            armored=True,
        )
        source = apt_source_file(
            name="Docker apt source",
            path=DOCKER_SOURCE,
            content=deb822_source(
                repo, DOCKER_KEYRING, suite=current.codename, components=("stable",), architectures=(current.arch,)
            ),
            current=current.file("docker-source"),
        )
        apt_update_source(name="apt update (Docker source only)", path=DOCKER_SOURCE, after=[key, source])
        apt_packages_present(
            name="Install Docker Engine (docker-ce)", packages=DOCKER_PACKAGES_CE, current=current,
            update_on_failure=False,
        )
    docker_service_running(name="dockerd enabled and running", current=current)
