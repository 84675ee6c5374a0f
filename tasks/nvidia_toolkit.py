"""Step 2: the NVIDIA Container Toolkit from a fingerprint-checked repository, pinned, wired into dockerd.

Order: prerequisites, stale NVIDIA sources out, key (fingerprint checked every run), source, `apt update`
of that source only when something changed, the four packages at one pinned version (held), our daemon.json
merge, then dockerd restarted - only if a recorded change needs it, rolled across the fleet in batches -
and the checks: `nvidia` in `docker info`, and a `--gpus all` container on nodes that have GPUs.
"""

from __future__ import annotations

from datetime import datetime, timezone

from pyinfra import host
from pyinfra.api import deploy

from lpfleet.daemon_json import DockerConfigWanted
from lpfleet.facts.docker import node_snapshot
from lpfleet.fleet import node_plan
from lpfleet.fleet_plan import NodePlan
from lpfleet.host_layout import (
    NVIDIA_KEYRING,
    NVIDIA_SOURCE,
    PREREQUISITE_PACKAGES,
    RESTART_MARKER,
    TOOLKIT_PACKAGES,
)
from lpfleet.operations.apt import (
    apt_key_pinned,
    apt_packages_pinned,
    apt_packages_present,
    apt_source_file,
    apt_stale_sources_removed,
    apt_update_source,
    deb822_source,
)
from lpfleet.operations.daemon_json import daemon_json_merged
from lpfleet.operations.docker import (
    docker_restarted_if_pending,
    docker_runtime_registered,
    gpu_containers_work,
)

FIRST_INSTALL = "restart: nvidia-container-runtime-hook newly installed (dockerd registers --gpus only at start)"


def fleet_restart_batch_size(plan: NodePlan) -> int:
    """The smallest docker_restart_batch_size of any active host: pyinfra's `_parallel` is one value per operation.

    Computed once per deploy run (not once per host, which would read every host's plan N times).
    """
    run = host.state  # the real State (the `state` name is a context proxy shared by every run)
    return plan.fleet.run_state(
        "docker_restart_batch_size",
        lambda: plan.fleet.restart_batch_size([node_plan(other).spec for other in run.inventory.get_active_hosts()]),
    )


@deploy("NVIDIA Container Toolkit")
def install_nvidia_toolkit(plan: NodePlan) -> None:
    spec = plan.spec
    toolkit = spec.toolkit
    current = node_snapshot(host, plan)

    apt_packages_present(name="Install apt prerequisites", packages=PREREQUISITE_PACKAGES, current=current)
    stale = apt_stale_sources_removed(
        name="Remove stale NVIDIA apt sources", label="NVIDIA", stale=current.stale_sources
    )
    key = apt_key_pinned(
        name="Trust the NVIDIA apt key (fingerprint checked)",
        label="NVIDIA Container Toolkit",
        url=toolkit.key_url,
        fingerprint=toolkit.key_fingerprint,
        keyring=NVIDIA_KEYRING,
        served=current.download("nvidia-key"),
        installed=current.file("nvidia-keyring"),
    )
    source = apt_source_file(
        name="NVIDIA Container Toolkit apt source",
        path=NVIDIA_SOURCE,
        content=deb822_source(toolkit.repo_url, NVIDIA_KEYRING),
        current=current.file("nvidia-source"),
    )
    apt_update_source(name="apt update (NVIDIA source only)", path=NVIDIA_SOURCE, after=[stale, key, source])
    first_install = not current.hook_path
    packages = apt_packages_pinned(
        name=f"NVIDIA Container Toolkit {toolkit.version} (all four packages, held)",
        packages=TOOLKIT_PACKAGES,
        version=toolkit.version,
        current=current,
        source=NVIDIA_SOURCE,
        record=FIRST_INSTALL if first_install else None,
        marker=RESTART_MARKER,
    )
    merged = daemon_json_merged(
        name="Merge the nvidia runtime into daemon.json",
        wanted=DockerConfigWanted(
            set_default_runtime=toolkit.set_default_runtime,
            cdi=toolkit.cdi,
            live_restore=spec.docker.live_restore,
        ),
        current=current,
        marker=RESTART_MARKER,
        backup_suffix=datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ.lpfleet.bak"),
    )
    restart = docker_restarted_if_pending(
        name="Restart dockerd if a change needs it (rolling)",
        current=current,
        after=[merged, packages] if first_install else [merged],
        marker=RESTART_MARKER,
        _parallel=fleet_restart_batch_size(plan),
    )
    docker_runtime_registered(name="nvidia runtime registered in docker info", runtime="nvidia", current=current,
                              after=[restart])
    gpu_containers_work(
        name="A --gpus all container sees the GPUs", image=spec.worker.image, current=current, after=[packages, restart]
    )
