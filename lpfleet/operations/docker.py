"""Docker service operations: running, restarted only when a recorded change needs it, rolled, checked.

Restart discipline: changes that need dockerd to re-read its config append a line to a marker file on the node
("restart: ..." or "reload: ..."); `docker_restarted_if_pending` acts on it and removes it once dockerd answers
with the nvidia runtime registered. The marker makes this state-based: a run cut short between an install and
the restart restarts on the next run, and a run with nothing recorded never touches dockerd. `systemctl
daemon-reload` is never run (no unit file is written), because it can make running GPU containers lose their GPUs.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyinfra import host, state
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.operation import OperationMeta

from lpfleet.facts.docker import ContainerHostState
from lpfleet.operations.apt import any_changed, fail, report

# $1 marker, $2 runtime that must be registered afterwards
_RESTART = r"""
marker=$1 runtime=$2
action=reload
if [ ! -e "$marker" ] || grep -q '^restart' "$marker"; then action=restart; fi
systemctl is-active -q docker || action=restart
echo "lpfleet: docker $action ($(tr '\n' ' ' <"$marker" 2>/dev/null))"
if ! systemctl "$action" docker; then
  echo "lpfleet: systemctl $action docker failed; the restart stays pending" >&2
  systemctl status docker --no-pager -n 15 >&2 || true
  exit 1
fi
i=0
until docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q "\"$runtime\""; do
  i=$((i + 1))
  if [ "$i" -ge 120 ]; then
    echo "lpfleet: after docker $action the $runtime runtime is not in docker info; the restart stays pending" >&2
    exit 1
  fi
  sleep 0.5
done
rm -f "$marker"
"""

# $1 runtime
_RELOAD_AND_CHECK = r"""
runtime=$1
registered() { docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q "\"$runtime\""; }
if registered; then echo "lpfleet: $runtime runtime registered"; exit 0; fi
if ! systemctl is-active -q docker; then echo "lpfleet: docker is not running" >&2; exit 1; fi
echo "lpfleet: $runtime runtime missing from docker info although daemon.json has it: reloading dockerd"
systemctl reload docker || exit 1
i=0
until registered; do
  i=$((i + 1))
  if [ "$i" -ge 40 ]; then
    echo "lpfleet: dockerd does not register the $runtime runtime after a reload; is the unit started with another --config-file or a conflicting flag?" >&2
    exit 1
  fi
  sleep 0.5
done
"""

# $1 image, $2 GPUs expected
_GPU_CHECK = r"""
image=$1 expected=$2
out=$(docker run --rm --gpus all --entrypoint nvidia-smi "$image" -L 2>&1)
seen=$(printf '%s\n' "$out" | grep -c '^GPU ')
if [ "$seen" -lt "$expected" ]; then
  echo "lpfleet: a --gpus all container sees $seen GPU(s), the node has $expected:" >&2
  printf '%s\n' "$out" | tail -5 >&2
  exit 1
fi
echo "lpfleet: a --gpus all container sees $seen GPU(s)"
"""


@operation()
def docker_service_running(current: ContainerHostState):
    """
    dockerd enabled at boot and running.

    + current: the node snapshot
    """
    if current.docker_enabled and current.docker_active:
        host.noop("docker enabled and running")
        return
    yield StringCommand("systemctl", "enable", "--now", "docker")


def _earlier_failures() -> list[str]:
    """Hosts of earlier `_parallel` batches on which this same operation already failed in this run.

    pyinfra cuts `list(active hosts)` into batches when it runs the operation; the active hosts do not change
    while it runs, so the same cut tells which batch each host is in.
    """
    op_hash = host.current_op_hash
    if op_hash is None:
        return []
    parallel = state.get_op_meta(op_hash).global_arguments.get("_parallel") or 0
    hosts = list(state.inventory.get_active_hosts())
    if not parallel or host not in hosts:
        return []
    my_batch = hosts.index(host) // parallel
    failed = []
    for other in hosts[: my_batch * parallel]:
        data = state.ops.get(other, {}).get(op_hash)
        if data is not None and data.operation_meta.is_complete() and data.operation_meta.did_error():
            failed.append(other.name)
    return failed


@operation()
def docker_restarted_if_pending(
    current: ContainerHostState,
    after: Sequence[OperationMeta],
    marker: str,
    runtime: str = "nvidia",
):
    """
    Restart (or only reload) dockerd when a change recorded in `marker` calls for it, then wait for `runtime`.

    Give it `_parallel=N` to roll restarts across the fleet N hosts at a time; once a host's restart failed,
    hosts in later batches are not restarted (they fail, keeping the restart pending for the next run).

    + current: the node snapshot (an old marker left by an interrupted run counts)
    + after: operations that record into the marker when they change something
    + marker: the pending-restart marker file
    + runtime: the runtime that must be registered afterwards
    """
    pending = current.file("restart-marker") is not None or any_changed(after)
    if not pending:
        host.noop("no change needs dockerd restarted; not restarted")
        return
    if state.is_executing:
        failed = _earlier_failures()
        if failed:
            yield fail(
                f"not restarting docker: the rolling restart already failed on {', '.join(sorted(failed))}; "
                f"fix that first, the restart stays pending here for the next run"
            )
            return
    yield StringCommand(
        "sh", "-c", QuoteString(_RESTART), "lpfleet-docker-restart", QuoteString(marker), QuoteString(runtime)
    )


@operation()
def docker_runtime_registered(runtime: str, current: ContainerHostState, after: Sequence[OperationMeta]):
    """
    `runtime` appears in `docker info` (a reload re-reads runtimes when dockerd missed them).

    + runtime: the runtime name
    + current: the node snapshot
    + after: operations that already checked it when they changed something (the restart)
    """
    if any_changed(after):
        host.noop(f"{runtime} runtime checked right after dockerd was restarted")
        return
    if current.docker_info_ok and runtime in current.runtimes:
        host.noop(f"{runtime} runtime registered (docker info)")
        return
    # dockerd was not answering, or answered without the runtime: check on the node now (the docker_engine step
    # may just have started it), reloading it if it runs without the runtime
    yield StringCommand("sh", "-c", QuoteString(_RELOAD_AND_CHECK), "lpfleet-runtime-check", QuoteString(runtime))


@operation()
def gpu_containers_work(image: str, current: ContainerHostState, after: Sequence[OperationMeta]):
    """
    After the toolkit or dockerd changed, a `--gpus all` container sees every GPU of the node.

    Skipped, saying why, on a node without NVIDIA device nodes (`/dev/nvidiaN`): there is no GPU to hand to
    a container there, whatever an `nvidia-smi` on PATH answers (the sandbox's is a stand-in).

    + image: an image to run `nvidia-smi -L` in (the toolkit mounts nvidia-smi into any image)
    + current: the node snapshot
    + after: the operations whose change calls for the check
    """
    if current.gpu_device_nodes == 0:
        reason = "GPU container check skipped: no /dev/nvidiaN device nodes on this node"
        if current.nvidia_smi:
            reason += f" ({current.nvidia_smi} answers without a kernel driver behind it: a stand-in)"
        report(reason)
        host.noop(reason)
        return
    if not any_changed(after):
        host.noop("GPU container check: toolkit and dockerd unchanged since the last check")
        return
    yield StringCommand(
        "sh", "-c", QuoteString(_GPU_CHECK), "lpfleet-gpu-check", QuoteString(image), str(current.gpu_device_nodes)
    )
