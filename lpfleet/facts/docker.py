"""What a node's Docker Engine and NVIDIA Container Toolkit look like, gathered in ONE round-trip.

A no-op converge of the docker_engine and nvidia_toolkit steps reads everything it decides on from this one
fact: OS and architecture, the dpkg state of every package involved, daemon.json (the file dockerd really
reads), the apt keyrings and sources, the signing keys as the repositories serve them now (downloaded on the
node, checked on the controller), stale NVIDIA source files, the docker unit and the running dockerd's command
line, the Engine API's `/info` (runtimes), the pending-restart marker and the GPU device nodes.

`node_snapshot(host, plan)` gathers it once per host per deploy run (kept in the NodePlan) and hands it to both
tasks (pyinfra facts are not cached; the snapshot is the state before the deploy, as every fact read in
deploy code is). Operations decide from the snapshot; commands that overwrite something re-check it on the node.
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass, field

from pyinfra.api import FactBase, QuoteString, StringCommand

from lpfleet.facts.batch import FactRequest, known_fact
from lpfleet.host_layout import (  # the desired layout is pure; re-exported for the tasks and tests
    DOCKER_KEYRING,
    DOCKER_PACKAGES_CE,
    DOCKER_PACKAGES_DISTRO,
    DOCKER_SOURCE,
    NVIDIA_KEYRING,
    NVIDIA_REPO_MARKERS,
    NVIDIA_SOURCE,
    PREREQUISITE_PACKAGES,
    RESTART_MARKER,
    TOOLKIT_PACKAGES,
    docker_key_url,
    repo_marker,
)

# Positional parameters: $1 nvidia key url, $2 docker key url ("" = skip; "{distro}" becomes debian/ubuntu),
# $3 a string naming the configured toolkit repo, $4 nvidia keyring, $5 nvidia source, $6 docker keyring,
# $7 docker source, $8 restart marker, $9 packages (space separated).
_SCRIPT = r"""
b64() { if [ -r "$1" ]; then printf '1 '; base64 -w0 <"$1"; echo; else echo 0; fi; }
fetch() {
  if [ -z "$1" ]; then echo "skip"; return; fi
  if ! command -v curl >/dev/null 2>&1; then echo "127"; return; fi
  t=$(mktemp) || { echo "1"; return; }
  curl -fsSL --max-time 20 --retry 2 -o "$t" "$1" 2>"$t.err"; rc=$?
  if [ $rc = 0 ]; then printf '0 '; base64 -w0 <"$t"; echo; else printf '%s ' "$rc"; base64 -w0 <"$t.err"; echo; fi
  rm -f "$t" "$t.err"
}
. /etc/os-release 2>/dev/null
distro=${ID:-unknown}
case "$distro" in debian|ubuntu) ;; *)
  case " ${ID_LIKE:-} " in *" ubuntu "*) distro=ubuntu ;; *" debian "*) distro=debian ;; esac ;;
esac
codename=${VERSION_CODENAME:-unknown}
if [ "$distro" = ubuntu ] && [ -n "${UBUNTU_CODENAME:-}" ]; then codename=$UBUNTU_CODENAME; fi
echo "@@os ${ID:-unknown} $codename $(dpkg --print-architecture 2>/dev/null || echo unknown) $distro"
dpkg-query -W -f='@@pkg ${Package} ${Version} ${db:Status-Abbrev}\n' $9 2>/dev/null
unit=$(systemctl show docker \
  --property=LoadState,ActiveState,UnitFileState,ExecMainPID,ExecMainStartTimestampMonotonic 2>/dev/null)
printf '%s\n' "$unit" | sed -n 's/^./@@unit &/p'
pid=${unit#*ExecMainPID=}; pid=${pid%%[!0-9]*}
active=${unit#*ActiveState=}; active=${active%%[!a-z]*}
argv=""
if [ -n "$pid" ] && [ "$pid" != 0 ] && [ -r "/proc/$pid/cmdline" ]; then
  argv=$(tr '\0' '\n' <"/proc/$pid/cmdline" | base64 -w0)
else
  argv=$(systemctl show docker --property=ExecStart --value 2>/dev/null | sed -n 's/.*argv\[\]=\([^;]*\);.*/\1/p' | head -1 | tr ' ' '\n' | base64 -w0)
fi
echo "@@argv $argv"
cfg=$(printf '%s' "$argv" | base64 -d 2>/dev/null | sed -n 's/^--config-file=//p; /^--config-file$/{n;p}' | head -1)
cfg=${cfg:-/etc/docker/daemon.json}
echo "@@daemon-json-path $cfg"
echo "@@file daemon.json $(b64 "$cfg")"
echo "@@file nvidia-keyring $(b64 "$4")"
echo "@@file nvidia-source $(b64 "$5")"
echo "@@file docker-keyring $(b64 "$6")"
echo "@@file docker-source $(b64 "$7")"
echo "@@file restart-marker $(b64 "$8")"
echo "@@fetch nvidia-key $(fetch "$1")"
echo "@@fetch docker-key $(fetch "$(printf '%s' "$2" | sed "s/{distro}/$distro/g")")"
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && [ "$f" != "$5" ] || continue
  if grep -q -F @@MARKERS@@ -e "${3:-nvidia.github.io/}" "$f" 2>/dev/null; then
    echo "@@stale $f"
  fi
done
echo "@@hook $(command -v nvidia-container-runtime-hook || true)"
if [ "$active" = active ]; then
  # the Engine API's /info straight from the socket: what `docker info` shows, without the CLI's start-up cost
  if command -v curl >/dev/null 2>&1; then
    info=$(curl -s --max-time 15 --unix-socket /var/run/docker.sock http://localhost/info 2>/dev/null | base64 -w0)
  else
    info=$(timeout 15 docker info --format '{{json .}}' 2>/dev/null | base64 -w0)
  fi
  echo "@@docker-info $info"
fi
n=0
for d in /dev/nvidia[0-9]*; do [ -e "$d" ] && n=$((n + 1)); done
echo "@@gpu-devices $n"
echo "@@nvidia-smi $(command -v nvidia-smi || true)"
exit 0
""".replace("@@MARKERS@@", " ".join(f"-e {shlex.quote(marker)}" for marker in NVIDIA_REPO_MARKERS))


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    status: str  # dpkg's db:Status-Abbrev, e.g. "ii " installed, "hi " installed and held

    @property
    def installed(self) -> bool:
        return len(self.status) > 1 and self.status[1] == "i"

    @property
    def held(self) -> bool:
        return self.status.startswith("h")


@dataclass(frozen=True)
class Download:
    """A file the node fetched: `ok` with its bytes, or curl's exit code and error text."""

    ok: bool
    data: bytes = b""
    error: str = ""

    @property
    def skipped(self) -> bool:
        return not self.ok and self.error == "not requested"


@dataclass(frozen=True)
class ContainerHostState:
    """The snapshot the docker_engine and nvidia_toolkit steps decide from."""

    os_id: str = "unknown"
    distro: str = "unknown"  # debian or ubuntu (derivatives map to their base), else the os id
    codename: str = "unknown"  # the base distribution's codename (Docker's repo suite)
    arch: str = "unknown"
    packages: dict[str, Package] = field(default_factory=dict)
    unit: dict[str, str] = field(default_factory=dict)
    dockerd_args: tuple[str, ...] = ()
    daemon_json_path: str = "/etc/docker/daemon.json"
    files: dict[str, bytes | None] = field(default_factory=dict)  # None: absent
    fetched: dict[str, Download] = field(default_factory=dict)
    stale_sources: tuple[str, ...] = ()
    hook_path: str = ""
    docker_info_ok: bool = False
    default_runtime: str = ""
    runtimes: tuple[str, ...] = ()
    gpu_device_nodes: int = 0  # /dev/nvidiaN: what a real driver creates, one per GPU
    nvidia_smi: str = ""  # path of nvidia-smi on PATH, "" when absent

    def installed_version(self, package: str) -> str | None:
        found = self.packages.get(package)
        return found.version if found and found.installed else None

    def file(self, label: str) -> bytes | None:
        return self.files.get(label)

    def download(self, label: str) -> Download:
        return self.fetched.get(label) or Download(ok=False, error="the node state could not be read")

    @property
    def docker_installed(self) -> bool:
        return self.unit.get("LoadState") == "loaded"

    @property
    def docker_active(self) -> bool:
        return self.unit.get("ActiveState") == "active"

    @property
    def docker_enabled(self) -> bool:
        return self.unit.get("UnitFileState") in ("enabled", "enabled-runtime", "static", "alias")

    @property
    def dockerd_started(self) -> str:
        """Monotonic start time of the running dockerd (changes on every restart, not on reload)."""
        return self.unit.get("ExecMainStartTimestampMonotonic", "")


class ContainerHostFacts(FactBase[ContainerHostState]):
    """Docker Engine + NVIDIA toolkit state of a node, and the apt keys as served now, in one command.

    + nvidia_key_url: the toolkit repository's key URL (downloaded on the node every run)
    + docker_key_url: Docker's key URL ("{distro}" becomes debian or ubuntu), "" when Docker is the distro's
    + toolkit_repo_marker: a string that identifies the configured toolkit repo in other source files
    """

    def command(self, nvidia_key_url: str, docker_key_url: str = "", toolkit_repo_marker: str = "") -> StringCommand:
        packages = " ".join(DOCKER_PACKAGES_CE + DOCKER_PACKAGES_DISTRO + TOOLKIT_PACKAGES + PREREQUISITE_PACKAGES)
        return StringCommand(
            "sh",
            "-c",
            QuoteString(_SCRIPT),
            "lpfleet-container-host-state",
            QuoteString(nvidia_key_url),
            QuoteString(docker_key_url),
            QuoteString(toolkit_repo_marker),
            QuoteString(NVIDIA_KEYRING),
            QuoteString(NVIDIA_SOURCE),
            QuoteString(DOCKER_KEYRING),
            QuoteString(DOCKER_SOURCE),
            QuoteString(RESTART_MARKER),
            QuoteString(packages),
        )

    @staticmethod
    def default() -> ContainerHostState:
        return ContainerHostState()

    def process(self, output: list[str]) -> ContainerHostState:
        return parse_state(output)


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=False)
    except ValueError:
        return b""


def parse_state(output: list[str]) -> ContainerHostState:
    """The fact's output lines -> ContainerHostState (pure; unknown lines are ignored)."""
    values: dict = {"packages": {}, "unit": {}, "files": {}, "fetched": {}}
    stale: list[str] = []
    for line in output:
        if not line.startswith("@@"):
            continue
        tag, _, rest = line[2:].partition(" ")
        if tag == "os":
            parts = (rest.split() + ["unknown"] * 4)[:4]
            values["os_id"], values["codename"], values["arch"], values["distro"] = parts
        elif tag == "pkg":
            name, _, remainder = rest.partition(" ")
            version, _, status = remainder.partition(" ")
            values["packages"][name] = Package(name, version, status)
        elif tag == "unit":
            key, _, value = rest.partition("=")
            values["unit"][key] = value
        elif tag == "argv":
            values["dockerd_args"] = tuple(a for a in _b64(rest).decode(errors="replace").split("\n") if a)
        elif tag == "daemon-json-path":
            values["daemon_json_path"] = rest.strip() or "/etc/docker/daemon.json"
        elif tag == "file":
            label, _, payload = rest.partition(" ")
            present, _, data = payload.partition(" ")
            values["files"][label] = _b64(data) if present == "1" else None
        elif tag == "fetch":
            label, _, payload = rest.partition(" ")
            code, _, data = payload.partition(" ")
            if code == "skip":
                values["fetched"][label] = Download(ok=False, error="not requested")
            elif code == "0":
                values["fetched"][label] = Download(ok=True, data=_b64(data))
            elif code == "127":
                values["fetched"][label] = Download(ok=False, error="curl is not installed")
            else:
                message = _b64(data).decode(errors="replace").strip() or "no error text"
                values["fetched"][label] = Download(ok=False, error=f"curl exit {code}: {message}")
        elif tag == "stale":
            stale.append(rest.strip())
        elif tag == "hook":
            values["hook_path"] = rest.strip()
        elif tag == "docker-info":
            info = _docker_info(_b64(rest.strip()))
            if info is not None:
                values["docker_info_ok"] = True
                values["default_runtime"] = str(info.get("DefaultRuntime") or "")
                runtimes = info.get("Runtimes")
                values["runtimes"] = tuple(sorted(runtimes)) if isinstance(runtimes, dict) else ()
        elif tag == "gpu-devices":
            values["gpu_device_nodes"] = int(rest.strip() or 0)
        elif tag == "nvidia-smi":
            values["nvidia_smi"] = rest.strip()
    values["stale_sources"] = tuple(stale)
    return ContainerHostState(**values)


def _docker_info(raw: bytes) -> dict | None:
    """The Engine API's /info answer, or None when dockerd did not answer with JSON."""
    try:
        info = json.loads(raw) if raw.strip() else None
    except ValueError:
        return None
    return info if isinstance(info, dict) else None


class DownloadedFile(FactBase[Download]):
    """A small file as the node downloads it now (for a key that could not be fetched before curl was installed).

    + url: what to download
    """

    def command(self, url: str) -> StringCommand:
        return StringCommand(
            "t=$(mktemp);", "if", "curl", "-fsSL", "--max-time", "20", "--retry", "2", "-o", '"$t"', QuoteString(url),
            "2>/dev/null;", "then", "printf", "'0 ';", "base64", "-w0", '<"$t";', "else", "printf", "'1 ';", "fi;",
            "echo;", "rm", "-f", '"$t"',
        )

    @staticmethod
    def default() -> Download:
        return Download(ok=False, error="no answer")

    def process(self, output: list[str]) -> Download:
        code, _, data = "".join(output).partition(" ")
        if code == "0":
            return Download(ok=True, data=_b64(data.strip()))
        return Download(ok=False, error="download failed")


def container_host_state(
    host, nvidia_key_url: str, docker_key_url: str = "", toolkit_repo_marker: str = "", memo: dict | None = None
):
    """The node's ContainerHostState, gathered once per host per deploy run (one round-trip, or none when the
    run's batch already read it: lpfleet.facts.batch) when the caller passes its host's per-run `memo`
    (lpfleet.fleet_plan.NodePlan.facts)."""
    memo = {} if memo is None else memo
    key = ("container-host-state", nvidia_key_url, docker_key_url, toolkit_repo_marker)
    if key not in memo:
        memo[key] = known_fact(
            host,
            ContainerHostFacts,
            nvidia_key_url=nvidia_key_url,
            docker_key_url=docker_key_url,
            toolkit_repo_marker=toolkit_repo_marker,
        )
    return memo[key]


def snapshot_kwargs(spec) -> dict[str, str]:
    """ContainerHostFacts' arguments for a NodeSpec."""
    return {
        "nvidia_key_url": spec.toolkit.key_url,
        "docker_key_url": docker_key_url(spec),
        "toolkit_repo_marker": repo_marker(spec.toolkit.repo_url),
    }


def snapshot_request(spec) -> FactRequest:
    """The fact node_snapshot reads, for the run's batch."""
    return FactRequest(ContainerHostFacts, snapshot_kwargs(spec))


def node_snapshot(host, plan) -> ContainerHostState:
    """The snapshot both the docker_engine and the nvidia_toolkit steps use for a NodePlan's node."""
    return container_host_state(host, **snapshot_kwargs(plan.spec), memo=plan.facts)
