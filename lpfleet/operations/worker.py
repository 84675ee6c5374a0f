"""The go-livepeer AI worker container: the operations that make it what `lpfleet.worker_plan` says.

pyinfra's docker.container does not notice a changed spec, so the plan carries a hash of everything the
container is made from - the `docker run` options, go-livepeer's flags, the image reference, the sha256 of the
aiModels.json content it reads and of the orch secret - and the container carries it as a label. Converging is
then one comparison: the same hash, image id and a running container is "No changes"; otherwise the container
is recreated (or started, when only stopped).

The orchestrator secret never appears on a command line: it is written from stdin into a 0600 file in the folder that
is mounted into the container, and `-orchSecret` names that file (go-livepeer reads a file path there).
"""

from __future__ import annotations

from pydantic import SecretStr
from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from lpfleet.facts.worker import WorkerContainerState
from lpfleet.operations.plan_notes import note
from lpfleet.worker_plan import SPEC_LABEL, WorkerPlan, sha256_text


def plan_action(plan: WorkerPlan, current: WorkerContainerState) -> tuple[str, str]:
    """(action, why): "create", "recreate", "start" or "none"."""
    if not current.exists:
        return "create", "no worker container"
    if current.labels.get(SPEC_LABEL) != plan.spec_hash:
        return "recreate", "its image, flags, aiModels.json or secret changed"
    if current.image_id and current.container_image_id and current.image_id != current.container_image_id:
        return "recreate", f"{plan.image} now points at another image"
    if current.status in ("exited", "created", "dead"):
        return "start", f"it is {current.status}"
    if current.status == "paused":
        return "start", "it is paused"
    return "none", "running with the current spec" if current.running else f"{current.status} (restart policy)"


# $1 aiModels.json path; then the docker run argv follows.
_RUN = r"""
models=$1; name=$2; shift 2
if [ ! -f "$models" ]; then
  echo "lpfleet: $models is missing: the models_config step writes it (go-livepeer would misread the path)" >&2
  exit 1
fi
if docker container inspect "$name" >/dev/null 2>&1; then
  docker stop --time 60 "$name" >/dev/null && docker rm "$name" >/dev/null || exit 1
fi
docker run -d --name "$name" "$@" >/dev/null
"""

# $1 container, $2 CLI port, $3 seconds. Waits for go-livepeer to finish warming (its CLI server answers),
# and stops waiting early when it or a runner crashes: verification reports and explains those, so this
# never fails the host.
_READY = r"""
name=$1 port=$2 limit=$3
end=$(( $(date +%s) + limit ))
while [ "$(date +%s)" -lt "$end" ]; do
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/status"; then
    echo "lpfleet: go-livepeer answers on 127.0.0.1:$port (warm runners started)"; exit 0
  fi
  st=$(docker inspect -f '{{.State.Status}} {{.RestartCount}}' "$name" 2>/dev/null || echo missing)
  if [ "$st" != "running 0" ]; then
    echo "lpfleet: worker $name is $st while warming: see the verification" >&2; exit 0
  fi
  if [ -n "$(docker ps -aq --filter label=creator=ai-worker --filter status=restarting --filter status=exited)" ]; then
    echo "lpfleet: a runner container of $name crashed while warming: see the verification" >&2; exit 0
  fi
  sleep 1
done
echo "lpfleet: go-livepeer still warming after ${limit} s: see the verification" >&2
"""


@operation()
def worker_container(plan: WorkerPlan, current: WorkerContainerState):
    """
    The go-livepeer worker container, created or recreated when its spec hash differs, started when stopped.

    + plan: the desired container (``worker_plan``)
    + current: the ``WorkerContainer`` fact read for this plan
    """
    action, why = plan_action(plan, current)
    if action == "none":
        host.noop(f"worker container {plan.name}: {why}")
        return
    note(f"{action} the worker container {plan.name} ({plan.image}): {why}")
    if action == "start":
        command = "unpause" if current.status == "paused" else "start"
        yield StringCommand("docker", command, QuoteString(plan.name))
        yield _wait_ready(plan)
        return
    args = [
        "sh", "-c", QuoteString(_RUN), "lpfleet-worker",
        QuoteString(plan.ai_models_path), QuoteString(plan.name),
        "--label", QuoteString(f"{SPEC_LABEL}={plan.spec_hash}"),
        *(QuoteString(option) for option in plan.options),
        QuoteString(plan.image),
        *(QuoteString(flag) for flag in plan.flags),
    ]
    yield StringCommand(*args)
    yield _wait_ready(plan)


def _wait_ready(plan: WorkerPlan) -> StringCommand:
    return StringCommand("sh", "-c", QuoteString(_READY), "lpfleet-worker-ready", QuoteString(plan.name),
                         str(plan.cli_port), str(plan.ready_timeout_s))


@operation()
def orch_secret_file(path: str, secret: SecretStr | None, current_sha256: str | None, current_mode: str | None):
    """
    The orch secret in a 0600 file (go-livepeer's -orchSecret takes a file path), uploaded, never on a command line.

    + path: the file on the node
    + secret: the secret (None: nothing to write)
    + current_sha256: sha256 of the file on the node now (None: absent)
    + current_mode: its octal mode now
    """
    if secret is None:
        host.noop("no orch secret configured")
        return
    value = secret.get_secret_value()
    if current_sha256 == sha256_text(value):
        if current_mode == "600":
            host.noop(f"{path} up to date (0600)")
            return
        yield StringCommand("chmod", "600", QuoteString(path))
        return
    from lpfleet.operations.files import stdin_write

    # the bytes go on stdin into a 0600 temp file beside the target (never argv, nor pyinfra's /tmp upload)
    yield stdin_write(path, value.encode(), "600")
