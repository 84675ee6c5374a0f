"""Our daemon.json merge as a pyinfra operation (instead of running `nvidia-ctk runtime configure` blindly).

The merge itself is pure (`lpfleet.daemon_json`); this wraps it: the file dockerd really reads, refusal of a
file that is not JSON (the host fails, the file stays byte for byte), refusal of a change dockerd would not start
with, an atomic compare-and-swap write with a timestamped backup, and a line in the restart marker saying
whether the change needs a restart or only a reload.
"""

from __future__ import annotations

import hashlib
import posixpath
from io import BytesIO

from pyinfra import host
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation

from lpfleet.daemon_json import DaemonJsonError, DockerConfigWanted, flag_conflicts, plan
from lpfleet.facts.docker import ContainerHostState
from lpfleet.operations.apt import fail, report
from lpfleet.operations.files import staging_path

#: Keys dockerd re-reads on SIGHUP (`systemctl reload docker`); any other change needs a restart.
RELOADABLE = ("runtimes.nvidia", "default-runtime", "live-restore")

# $1 path, $2 uploaded new file, $3 sha256 of the file we merged into ("absent" when there was none),
# $4 backup path, $5 marker, $6 marker line
_SWAP = r"""
set -e
path=$1 new=$2 expect=$3 backup=$4 marker=$5 line=$6
if [ "$expect" = absent ]; then
  if [ -e "$path" ]; then rm -f "$new"; echo "lpfleet: $path appeared since it was read; not overwritten, re-run" >&2; exit 1; fi
  chmod 0644 "$new"
else
  if ! printf '%s  %s\n' "$expect" "$path" | sha256sum -c --status 2>/dev/null; then
    rm -f "$new"; echo "lpfleet: $path changed since it was read; not overwritten, re-run" >&2; exit 1
  fi
  cp -p "$path" "$backup"
  chmod --reference="$path" "$new"; chown --reference="$path" "$new"
fi
mkdir -p "$(dirname "$marker")"
echo "$line" >>"$marker"
mv -f "$new" "$path"
echo "lpfleet: wrote $path${backup:+ (previous content in $backup)}"
"""


@operation()
def daemon_json_merged(wanted: DockerConfigWanted, current: ContainerHostState, marker: str, backup_suffix: str):
    """
    Merge our keys into the daemon.json dockerd reads, keeping every other key; refuse what cannot be merged.

    + wanted: which of our keys to manage (runtimes.nvidia always; default-runtime, features.cdi, live-restore)
    + current: the node snapshot (file content, dockerd's command line)
    + marker: file where the needed restart or reload is recorded for the restart operation
    + backup_suffix: appended to the path for the backup of the previous content (e.g. a timestamp)
    """
    path = current.daemon_json_path
    existing = current.file("daemon.json")
    try:
        merge = plan(existing, wanted)
    except DaemonJsonError as exc:
        yield fail(
            f"{path} is {exc}. Refusing to touch it: the file is left exactly as it is. "
            f"Fix it (or remove it) and re-run; dockerd will not start with it either."
        )
        return
    if not merge.changed:
        host.noop(f"{path} already has the nvidia runtime and our settings")
        return
    conflicts = flag_conflicts({key: True for key in _changed_keys(merge.changes)}, current.dockerd_args)
    if conflicts:
        yield fail(
            f"not writing {path}: dockerd refuses to start when a directive is both a flag and in daemon.json: "
            + "; ".join(conflicts)
            + ". Remove the flag from the docker unit (or DOCKER_OPTS) first."
        )
        return
    needs_restart = any(not change.startswith(RELOADABLE) for change in merge.changes)
    line = ("restart" if needs_restart else "reload") + ": daemon.json " + "; ".join(merge.changes)
    report(f"{path}: " + "; ".join(merge.changes) + (" (needs a dockerd restart)" if needs_restart else " (a dockerd reload is enough)"))
    expect = hashlib.sha256(existing).hexdigest() if existing is not None else "absent"
    directory = posixpath.dirname(path)
    new = staging_path(path)
    backup = f"{path}.{backup_suffix}" if existing is not None else ""
    yield StringCommand("mkdir", "-p", QuoteString(directory))
    yield FileUploadCommand(BytesIO(merge.content.encode()), new)
    yield StringCommand(
        "sh", "-c", QuoteString(_SWAP), "lpfleet-daemon-json",
        QuoteString(path), QuoteString(new), QuoteString(expect), QuoteString(backup),
        QuoteString(marker), QuoteString(line),
    )


def _changed_keys(changes: tuple[str, ...]) -> list[str]:
    return [change.split(" ", 1)[0].split(".", 1)[0] for change in changes]

