"""`lpfleet sandbox up | down | status`: the whole sandbox as Docker objects plus its state file.

`up` is idempotent: it builds only changed images, reuses running nodes and services, adds missing nodes,
removes nodes beyond --nodes, and rewrites state.json from what actually runs.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lpfleet.sandbox import gpus as fake_gpus
from lpfleet.sandbox import nodes as node_ops
from lpfleet.sandbox.engine import DockerError, docker, names, require_daemon
from lpfleet.sandbox.images import BuiltImage, ImageSpec, RunSpec, build_images, discover
from lpfleet.sandbox.state import (
    KEY_FILE,
    LABEL,
    ROLE_LABEL,
    AptState,
    HubState,
    NodeState,
    SandboxError,
    SandboxState,
    ServiceState,
    load_state,
    remove_state,
    sandbox_name,
    save_state,
    state_dir,
)

Log = Callable[[str], None]
DEFAULT_NODES = 3
MAX_NODES = 50
NODE_IMAGE = "node"
#: Run options for the services whose image.json has no "run" section (agreed with helpers C and D,
#: documented in docs/sandbox.md); a "run" section in image.json replaces these.
DEFAULT_RUN: dict[str, RunSpec] = {
    "apt": RunSpec(port=8080, facts={"fingerprint": ["cat", "/srv/apt/fingerprint"]}),
    "hub": RunSpec(port=8080, publish=[8080], generated_secrets=["LPFLEET_HUB_TOKEN"]),
}
HUB_TOKEN_ENV = "LPFLEET_HUB_TOKEN"


def network_name(sandbox: str) -> str:
    return f"{sandbox}-net"


def ensure_key(folder: Path) -> Path:
    """The sandbox's SSH key (ed25519, no passphrase), generated once per sandbox, 0600."""
    key = folder / KEY_FILE
    if not (key.is_file() and key.with_suffix(".pub").is_file()):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        key.unlink(missing_ok=True)
        key.with_suffix(".pub").unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"lpfleet-sandbox-{folder.name}",
                        "-f", str(key)], check=True, capture_output=True)
    os.chmod(key, 0o600)
    return key


def ensure_network(sandbox: str) -> str:
    network = network_name(sandbox)
    if network not in names("network", f"{LABEL}={sandbox}"):
        if docker("network", "inspect", network, check=False).returncode == 0:
            raise SandboxError(f"a Docker network named {network} exists that is not sandbox {sandbox}'s "
                               f"(no label {LABEL}={sandbox}); remove it or pick another LPFLEET_SANDBOX")
        docker("network", "create", "--label", f"{LABEL}={sandbox}", network)
    return network


# --- services ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Service:
    name: str  # service name (container suffix)
    image: BuiltImage
    run: RunSpec

    def container(self, sandbox: str) -> str:
        return f"{sandbox}-{self.name}"


def services_of(specs: Mapping[str, ImageSpec], built: Mapping[str, BuiltImage]) -> list[Service]:
    services = []
    for name, spec in sorted(specs.items()):
        run = spec.run or DEFAULT_RUN.get(name)
        if spec.target == "host" and run is not None:
            services.append(Service(run.service or name, built[name], run))
    return services


def _container_image(sandbox: str, container: str) -> tuple[bool, str] | None:
    """(running, image id) of our container of that name; None when there is none. A container of that
    name that is not this sandbox's is an error: we never remove what we did not make."""
    result = docker("inspect", "--type", "container", "--format",
                    f'{{{{.State.Running}}}} {{{{.Image}}}} {{{{index .Config.Labels "{LABEL}"}}}}', container,
                    check=False)
    if result.returncode != 0:
        return None
    running, image, owner = (result.stdout.split() + ["", ""])[:3]
    if owner != sandbox:
        raise SandboxError(f"a container named {container} exists that is not sandbox {sandbox}'s (no label "
                           f"{LABEL}={sandbox}); remove it or pick another LPFLEET_SANDBOX")
    return running == "true", image


def _env_file(folder: Path, service: Service, sandbox_secrets: dict[str, str], sandbox: str) -> Path | None:
    """Service environment as a 0600 --env-file, so generated secrets never appear on a command line."""
    values = {key: value.replace("{sandbox}", sandbox) for key, value in service.run.env.items()}
    for var in service.run.generated_secrets:
        values[var] = sandbox_secrets.setdefault(var, secrets.token_urlsafe(24))
    if not values:
        return None
    path = folder / f".{service.name}.env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.writelines(f"{key}={value}\n" for key, value in sorted(values.items()))
    return path


def ensure_service(sandbox: str, service: Service, network: str, folder: Path, sandbox_secrets: dict[str, str],
                   log: Log, known_ports: Mapping[str, str] | None = None) -> bool:
    """Run the service container on the current image; reuse it when it already does. Returns whether it
    was (re)started."""
    container = service.container(sandbox)
    env_file = _env_file(folder, service, sandbox_secrets, sandbox)
    current = _container_image(sandbox, container)
    if current == (True, service.image.id):
        return False
    previous_ports: dict[int, int] = {}
    if current is not None:
        log(f"replacing {container} ({'new image' if current[1] != service.image.id else 'not running'})")
        for port in service.run.publish:  # keep its URLs: tests and state readers may hold them
            url = (known_ports or {}).get(str(port), "")
            if url.rpartition(":")[2].isdigit():
                previous_ports[port] = int(url.rpartition(":")[2])
        docker("rm", "-f", container)

    def run_args(host_ports: dict[int, int]) -> list[str]:
        args = ["run", "-d", "--name", container, "--hostname", container, "--network", network,
                "--label", f"{LABEL}={sandbox}", "--label", f"{ROLE_LABEL}=service"]
        if service.run.init:
            args.append("--init")
        if env_file:
            args += ["--env-file", str(env_file)]
        for port in service.run.publish:
            args += ["-p", f"127.0.0.1:{host_ports.get(port, '')}:{port}"]
        for mount in service.run.tmpfs:
            args += ["--tmpfs", mount]
        return [*args, service.image.tag, *(service.run.command or [])]

    try:
        docker(*run_args(previous_ports))
    except DockerError:
        if not previous_ports:
            raise
        docker("rm", "-f", container, check=False)  # the old host port was taken meanwhile: any free one
        docker(*run_args({}))
    return True


def _published(container: str, port: int) -> int:
    out = docker("port", container, f"{port}/tcp").stdout.split()
    for entry in out:
        host, _, value = entry.rpartition(":")
        if host in ("127.0.0.1", "0.0.0.0") and value.isdigit():
            return int(value)
    raise SandboxError(f"{container}: port {port} is not published on 127.0.0.1")


def _wait_port(container: str, port: int, timeout: float = 30) -> None:
    ip = docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                container).stdout.split()
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((ip[0], port), timeout=1).close()
            return
        except (OSError, IndexError):
            if time.monotonic() > deadline:
                logs = docker("logs", "--tail", "20", container, check=False)
                raise SandboxError(f"{container} does not answer on port {port} after {timeout:.0f} s; "
                                   f"last log lines:\n{logs.stdout}{logs.stderr}") from None
            time.sleep(0.1)


def service_state(sandbox: str, service: Service) -> ServiceState:
    container = service.container(sandbox)
    if service.run.ready == "port" and service.run.port:
        _wait_port(container, service.run.port)
    published = {str(port): f"http://127.0.0.1:{_published(container, port)}" for port in service.run.publish}
    facts = {}
    for fact, command in service.run.facts.items():
        result = docker("exec", container, *command, check=False)
        if result.returncode != 0:
            raise SandboxError(f"{container}: reading {fact} with {' '.join(command)!r} failed: {result.stderr}")
        facts[fact] = result.stdout.strip()
    return ServiceState(container=container, image=service.image.tag, published=published, facts=facts)


def _apt_state(service: ServiceState) -> AptState:
    from lpfleet.sandbox import aptrepo

    urls = aptrepo.node_view_urls(service.container)
    fingerprint = service.facts.get("fingerprint", "")
    if len(fingerprint) != 40:
        raise SandboxError(f"{service.container}: key fingerprint {fingerprint!r} is not 40 hex digits")
    return AptState(container=service.container, key_fingerprint=fingerprint, **urls)


def _hub_state(service: ServiceState, run: RunSpec, sandbox_secrets: dict[str, str]) -> HubState:
    port = run.port or 8080
    return HubState(
        container=service.container,
        controller_url=service.published.get(str(port), ""),
        node_url=f"http://{service.container}:{port}",
        token=sandbox_secrets.get(HUB_TOKEN_ENV),
    )


# --- up / down / status -----------------------------------------------------------------------------------------

def up(
    nodes: int = DEFAULT_NODES,
    name: str | None = None,
    image_folders: list[Path] | None = None,
    log: Log = print,
) -> SandboxState:
    """Bring the sandbox to `nodes` running nodes plus its services; return (and save) its state."""
    if not 1 <= nodes <= MAX_NODES:
        raise SandboxError(f"--nodes must be between 1 and {MAX_NODES}, got {nodes}")
    require_daemon()
    sandbox = name or sandbox_name()
    folder = state_dir(sandbox)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ensure_key(folder)
    specs = discover(image_folders)
    if NODE_IMAGE not in specs:
        raise SandboxError(f"no image folder {NODE_IMAGE!r} among {sorted(specs)}")
    built = build_images(specs, log)
    network = ensure_network(sandbox)
    node_image = built[NODE_IMAGE]

    node_images = {image.tag: (image.id, image.tags) for image in built.values() if image.target == "node"}
    images_dir = folder / "node-images"
    node_ops.stage_node_images(node_images, images_dir, log)

    existing = node_ops.inspect_nodes(sandbox)
    wanted = {node_ops.node_name(sandbox, index): index for index in range(1, nodes + 1)}
    for extra in sorted(set(existing) - set(wanted)):
        log(f"removing {extra} (beyond --nodes {nodes})")
        node_ops.remove_node(extra)
    authorized = key.with_suffix(".pub").read_bytes()
    node_states: list[NodeState] = []
    created: list[str] = []
    to_start: list[str] = []
    for container, index in wanted.items():
        gpu_class, gpus = fake_gpus.node_gpus(sandbox, container, index)
        csv = fake_gpus.gpus_csv(gpus)
        current = existing.get(container)
        if current is None:
            node_ops.create_node(sandbox, index, node_image.tag, network, images_dir)
            created.append(container)
        elif current.image_id != node_image.id:
            log(f"{container} runs an older node image; `lpfleet sandbox down` then `up` renews it")
        node_ops.put_node_files(container, authorized, csv)
        if current is None or not current.running:
            to_start.append(container)
        node_states.append(NodeState(name=container, index=index, ssh_port=0, gpu_class=gpu_class, gpus=gpus))
    if to_start:
        docker("start", *to_start)
    if created:
        log(f"created {', '.join(created)}")

    previous = _previous_state(sandbox)
    state_secrets: dict[str, str] = dict(previous.secrets) if previous else {}
    services = services_of(specs, built)
    started = [svc.container(sandbox) for svc in services
               if ensure_service(sandbox, svc, network, folder, state_secrets, log,
                                 previous.services[svc.name].published
                                 if previous and svc.name in previous.services else None)]
    if started:
        log(f"started {', '.join(started)}")
    skipped = sorted({"hub", "apt"} - {svc.name for svc in services})
    for missing in skipped:
        log(f"no image folder {missing}/ yet: sandbox runs without the {missing} service")

    ports = {node.name: port for node, port in _ssh_ports(sandbox, node_states)}
    for node in node_states:
        node.ssh_port = ports[node.name]
    node_ops.wait_for_ssh(ports)
    node_ops.load_images_into_running_dockerds([n.name for n in node_states], node_images, log)

    state = SandboxState(name=sandbox, network=network, ssh_key=str(key), nodes=node_states,
                         node_images={tag: ident for ident, tags in node_images.values() for tag in tags},
                         secrets=state_secrets)
    for svc in services:
        service = service_state(sandbox, svc)
        state.services[svc.name] = service
        if svc.name == "apt":
            state.apt = _apt_state(service)
        elif svc.name == "hub":
            state.hub = _hub_state(service, svc.run, state_secrets)
    save_state(state)
    return state


def _previous_state(sandbox: str) -> SandboxState | None:
    """What an earlier `up` recorded: running services were started with its secrets, and a replaced
    service keeps its published ports."""
    try:
        return load_state(sandbox)
    except SandboxError:
        return None


def _ssh_ports(sandbox: str, node_states: list[NodeState]) -> list[tuple[NodeState, int]]:
    found = node_ops.inspect_nodes(sandbox)
    result = []
    for node in node_states:
        port = found[node.name].ssh_port if node.name in found else None
        if not port:
            problem = node_ops.exited_node_problem(node.name)
            raise SandboxError(problem or f"{node.name}: SSH port 22 is not published")
        result.append((node, port))
    return result


def down(name: str | None = None, log: Log = print) -> list[str]:
    """Remove the sandbox's containers, network and volumes (by label) and its state; returns what went."""
    require_daemon()
    sandbox = name or sandbox_name()
    label = f"{LABEL}={sandbox}"
    removed = []
    containers = names("container", label)
    if containers:
        docker("rm", "-f", "-v", *containers)
        removed += containers
    volumes = names("volume", label)
    if volumes:
        docker("volume", "rm", "-f", *volumes)
        removed += volumes
    networks = names("network", label)
    if networks:
        docker("network", "rm", *networks)
        removed += networks
    remove_state(sandbox)
    node_ops.prune_image_cache()
    log(f"sandbox {sandbox}: removed {len(removed)} Docker objects" + (f" ({', '.join(removed)})" if removed else ""))
    return removed


@dataclass(frozen=True)
class ObjectStatus:
    name: str
    kind: str
    status: str
    ports: str


def status(name: str | None = None) -> list[ObjectStatus]:
    require_daemon()
    sandbox = name or sandbox_name()
    out = docker("ps", "-a", "--filter", f"label={LABEL}={sandbox}", "--format",
                 f'{{{{.Names}}}}\t{{{{.Label "{ROLE_LABEL}"}}}}\t{{{{.Status}}}}\t{{{{.Ports}}}}').stdout
    rows = []
    for line in sorted(out.splitlines()):
        container, role, state, ports = (line.split("\t") + ["", "", ""])[:4]
        rows.append(ObjectStatus(container, role or "?", state, ports))
    for network in names("network", f"{LABEL}={sandbox}"):
        rows.append(ObjectStatus(network, "network", "", ""))
    return rows


def ssh_command(state: SandboxState, node: NodeState) -> str:
    return (f"ssh -i {state.ssh_key} -p {node.ssh_port} -o StrictHostKeyChecking=no "
            f"-o UserKnownHostsFile=/dev/null root@127.0.0.1")
