"""apt operations with the checks the usual roles skip: key fingerprints, stale sources, exact version pins.

Every operation here decides from the node snapshot (`lpfleet.facts.docker.ContainerHostState`) gathered
once per run, so a converged node costs no extra round-trip; each is a no-op (with `host.noop`) when the node
already matches.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from io import BytesIO

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.api.operation import OperationMeta

from lpfleet.facts.docker import ContainerHostState, Download, DownloadedFile
from lpfleet.openpgp import OpenPGPError, check_key, normalize_fingerprint
from lpfleet.operations.files import staging_path
from lpfleet.operations.plan_notes import note

APT_ENV = "DEBIAN_FRONTEND=noninteractive"
APT_GET = ("apt-get", "-q", "-y", "-o", "DPkg::Lock::Timeout=300")


def fail(message: str) -> StringCommand:
    """A command that fails this host with `message` on stderr (pyinfra prints it under the host)."""
    return StringCommand("echo", QuoteString(f"lpfleet: {message}"), "1>&2;", "exit", "1")


def report(message: str) -> None:
    """Print a line under the host once (operations run twice: when prepared and when executed).

    pyinfra does not show a successful command's output, so what a change does is said here.
    """
    if state.is_executing:
        host.log_styled(f"lpfleet: {message}", fg="yellow", log_func=logger.info)
    else:
        note(message)  # `lpfleet plan` (pyinfra --dry): the same words, before anything runs


def any_changed(operations: Sequence[OperationMeta]) -> bool:
    """Did (at execute time) / will (at prepare time) any of these operations change the host?"""
    if state.is_executing:
        return any(op.is_complete() and op.did_change() for op in operations)
    return any(op.will_change for op in operations)


def upload(content: bytes, dest: str, mode: str = "0644") -> list:
    """Commands that write `content` to `dest` atomically: upload beside it, then rename over it."""
    directory = posixpath.dirname(dest)
    temp = staging_path(dest)
    return [
        StringCommand("mkdir", "-p", QuoteString(directory)),
        FileUploadCommand(BytesIO(content), temp),
        StringCommand("chmod", mode, QuoteString(temp), "&&", "mv", "-f", QuoteString(temp), QuoteString(dest)),
    ]


def deb822_source(uri: str, keyring: str, suite: str = "/", components: Sequence[str] = (),
                  architectures: Sequence[str] = ()) -> bytes:
    """A deb822 .sources file; suite "/" with no components is a flat repository (NVIDIA's layout)."""
    lines = ["Types: deb", f"URIs: {uri}", f"Suites: {suite}"]
    if components:
        lines.append("Components: " + " ".join(components))
    if architectures:
        lines.append("Architectures: " + " ".join(architectures))
    lines.append(f"Signed-By: {keyring}")
    return ("\n".join(lines) + "\n").encode()


@operation()
def unsupported_distribution(os_id: str, what: str):
    """
    Fail this host: it is not Debian or Ubuntu (or derived from them).

    + os_id: the node's /etc/os-release ID
    + what: what cannot be installed there
    """
    yield fail(f"{what} serves Debian and Ubuntu; this node is {os_id}")


@operation()
def apt_key_pinned(
    label: str,
    url: str,
    fingerprint: str,
    keyring: str,
    served: Download,
    installed: bytes | None,
    armored: bool = False,
):
    """
    Install an apt signing key only if the key served at `url` is exactly the pinned one.

    The node downloaded the key in this run's snapshot; the fingerprint is checked here, on the controller.
    A key whose fingerprint differs (rotated, substituted, or bundled with another key) fails this host and
    nothing is written, so apt never trusts it.

    + label: what the key signs, for messages (e.g. "NVIDIA Container Toolkit")
    + url: where the key is served
    + fingerprint: the pinned primary key fingerprint
    + keyring: where apt's `signed-by` points
    + served: the key as the node downloaded it this run
    + installed: the keyring file now on the node (None when absent)
    + armored: keep the served ASCII armor (Docker's .asc) instead of dearmoring (NVIDIA's .gpg)
    """
    try:
        fingerprint = normalize_fingerprint(fingerprint)
    except OpenPGPError as exc:
        yield fail(f"{label} key: the pinned fingerprint is unusable: {exc}; nothing installed")
        return
    if not served.ok and served.error == "curl is not installed":
        # The snapshot was taken before curl was installed (an earlier operation installs it): fetch now.
        if not state.is_executing:
            yield StringCommand("true")  # at prepare time: the key is still to be fetched and checked
            return
        served = host.get_fact(DownloadedFile, url=url)
    if not served.ok:
        if installed is not None and check_key(installed, fingerprint).ok:
            host.noop(
                f"{label} key: could not re-check {url} ({served.error}); "
                f"{keyring} still holds only the pinned key {fingerprint}"
            )
            return
        yield fail(f"{label} key: could not download {url}: {served.error}; nothing installed")
        return
    verdict = check_key(served.data, fingerprint)
    if not verdict.ok:
        yield fail(
            f"{label} key at {url} REJECTED: {verdict.problem}. It was not installed and apt trusts nothing new; "
            f"if the vendor really rotated its key, verify the new fingerprint out of band and set it in group data"
        )
        return
    wanted = served.data if armored else verdict.dearmored
    if installed == wanted:
        host.noop(f"{label} key {fingerprint} already installed at {keyring}")
        return
    yield from upload(wanted, keyring)


@operation()
def apt_stale_sources_removed(label: str, stale: Sequence[str]):
    """
    Remove other apt source files that name the same vendor repository as ours.

    Leftover `nvidia-docker.list`-style files make apt fail with "Conflicting values set for option Signed-By".

    + label: the vendor, for messages
    + stale: the source files the snapshot found
    """
    if not stale:
        host.noop(f"no stale {label} source files")
        return
    for path in stale:
        report(f"removing stale {label} apt source {path} (it conflicts with ours: Signed-By / duplicate target)")
        yield StringCommand("rm", "-f", QuoteString(path))


@operation()
def apt_source_file(path: str, content: bytes, current: bytes | None):
    """
    Write a deb822 source file when its content differs.

    + path: the .sources file
    + content: what it must hold
    + current: what it holds now (None when absent)
    """
    if current == content:
        host.noop(f"{path} up to date")
        return
    yield from upload(content, path)


@operation()
def apt_update_source(path: str, after: Sequence[OperationMeta]):
    """
    `apt-get update` of one source file only, and only when its key or source changed this run.

    + path: the .sources file to refresh (other sources are not fetched)
    + after: the operations whose change calls for the update
    """
    if not any_changed(after):
        host.noop(f"apt lists for {path} current (source and key unchanged)")
        return
    yield StringCommand(*_update_one_source(path))


def _update_one_source(path: str) -> tuple:
    return (
        *APT_GET, "update",
        "-o", QuoteString(f"Dir::Etc::sourcelist={path}"),
        "-o", "Dir::Etc::sourceparts=-",
        "-o", "APT::Get::List-Cleanup=0",
    )


@operation()
def apt_packages_present(packages: Sequence[str], current: ContainerHostState, update_on_failure: bool = True):
    """
    Install packages that are not installed (any version), without recommends.

    + packages: package names
    + current: the node snapshot
    + update_on_failure: retry once after `apt-get update` (stale lists on a long-lived node)
    """
    missing = [name for name in packages if current.installed_version(name) is None]
    if not missing:
        host.noop(f"{', '.join(packages)} installed")
        return
    install = StringCommand("env", APT_ENV, *APT_GET, "install", "--no-install-recommends",
                            *[QuoteString(name) for name in missing])
    if update_on_failure:
        yield StringCommand(install, "||", "{", "env", APT_ENV, *APT_GET, "update", "&&", install, ";", "}")
    else:
        yield install


@operation()
def apt_packages_absent(packages: Sequence[str], current: ContainerHostState, reason: str):
    """
    Purge packages that conflict with what this node must run.

    + packages: package names to remove when installed
    + current: the node snapshot
    + reason: why, shown in the output
    """
    installed = [name for name in packages if current.installed_version(name) is not None]
    if not installed:
        host.noop(f"none of {', '.join(packages)} installed")
        return
    report(f"removing {' '.join(installed)}: {reason}")
    yield StringCommand("env", APT_ENV, *APT_GET, "remove", "--purge", "--allow-change-held-packages",
                        *[QuoteString(name) for name in installed])


@operation()
def apt_packages_pinned(
    packages: Sequence[str],
    version: str,
    current: ContainerHostState,
    source: str,
    record: str | None = None,
    marker: str | None = None,
):
    """
    Every package at exactly `version`, installed together and held; upgrades and downgrades move all at once.

    + packages: packages that share one version (one apt transaction, so dependency pins hold)
    + version: the exact Debian version, e.g. 1.20.0-1
    + current: the node snapshot
    + source: the .sources file that carries them (refreshed alone if the version is not in apt's lists)
    + record: a line to append to `marker` when the packages change (None: nothing to record)
    + marker: the file recording that a service must be restarted
    """
    installed = {name: current.installed_version(name) for name in packages}
    not_held = [name for name in packages if not (current.packages.get(name) and current.packages[name].held)]
    if all(found == version for found in installed.values()):
        if not not_held:
            host.noop(f"{', '.join(packages)} at {version}, held")
            return
        yield StringCommand("apt-mark", "hold", *[QuoteString(name) for name in not_held])
        return

    report(", ".join(f"{name} {found or 'absent'} -> {version}" for name, found in installed.items()))
    if record and marker:
        # Recorded before installing, so a run cut short after the install still restarts next time.
        yield StringCommand(
            "mkdir", "-p", QuoteString(posixpath.dirname(marker)), "&&",
            "echo", QuoteString(record), ">>", QuoteString(marker),
        )
    first = QuoteString(f"{packages[0]}={version}")
    yield StringCommand("apt-cache", "show", first, ">/dev/null", "2>&1", "||", *_update_one_source(source))
    yield StringCommand(
        "env", APT_ENV, *APT_GET, "install", "--no-install-recommends", "--allow-downgrades",
        "--allow-change-held-packages", "-o", "Dpkg::Options::=--force-confold",
        *[QuoteString(f"{name}={version}") for name in packages],
        "&&", "apt-mark", "hold", *[QuoteString(name) for name in packages],
    )
