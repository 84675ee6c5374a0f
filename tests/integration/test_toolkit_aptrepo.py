"""The sandbox apt repository, built with the real Debian tools and used by the real apt, on this machine.

apt runs with private state and cache directories (nothing of the host's apt configuration is touched) against
the repository served on 127.0.0.1 by the same `serve.py` the `<name>-apt` container runs.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lpfleet.openpgp import check_key, dearmor
from lpfleet.sandbox import aptrepo

pytestmark = pytest.mark.integration

NEEDED = ("dpkg-deb", "apt-ftparchive", "gpg", "apt-get")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    missing = [tool for tool in NEEDED if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"missing {' '.join(missing)}: run scripts/host-deps (make test does)")
    root = tmp_path_factory.mktemp("aptrepo")
    web = root / "web"
    subprocess.run([str(aptrepo.BUILD_SCRIPT), str(web), *aptrepo.VERSIONS], check=True, capture_output=True)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(aptrepo.SERVE_SCRIPT), str(web), str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield {"root": root, "web": web, "url": f"http://127.0.0.1:{port}"}
    server.terminate()
    server.wait(timeout=10)


def _apt(repo, name: str, key: bytes):
    """An apt-get/apt-cache runner whose only source is the sandbox repo, trusting only `key` (binary)."""
    base = repo["root"] / name
    for sub in ("lists/partial", "cache/archives/partial", "sources"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "keyring.gpg").write_bytes(key)
    (base / "sources" / "nvidia.sources").write_text(
        f"Types: deb\nURIs: {repo['url']}{aptrepo.REPO_PATH}\nSuites: /\nSigned-By: {base / 'keyring.gpg'}\n"
    )
    options = [
        "-o", "Dir::Etc::sourcelist=/dev/null", "-o", f"Dir::Etc::sourceparts={base / 'sources'}",
        "-o", f"Dir::State::Lists={base / 'lists'}", "-o", f"Dir::Cache={base / 'cache'}",
        "-o", "Debug::NoLocking=1",
    ]

    def run(tool: str, *args: str):
        return subprocess.run([tool, *options, *args], capture_output=True, text=True, timeout=60)

    return run


def test_served_key_is_the_recorded_fingerprint_and_the_other_key_is_not(repo):
    fingerprint = (repo["web"] / "fingerprint").read_text().strip()
    assert check_key((repo["web"] / "gpgkey").read_bytes(), fingerprint).ok
    substituted = check_key((repo["web"] / "gpgkey-substituted").read_bytes(), fingerprint)
    assert not substituted.ok and "is not the pinned" in substituted.problem
    assert substituted.fingerprints == ((repo["web"] / "fingerprint-substituted").read_text().strip(),)


def test_apt_trusts_the_repo_only_with_the_pinned_key(repo):
    good = _apt(repo, "good", dearmor((repo["web"] / "gpgkey").read_bytes()))
    update = good("apt-get", "update")
    assert update.returncode == 0 and "NO_PUBKEY" not in update.stderr, update.stderr
    policy = good("apt-cache", "policy", "nvidia-container-toolkit").stdout
    for version in aptrepo.VERSIONS:
        assert version in policy

    bad = _apt(repo, "bad", dearmor((repo["web"] / "gpgkey-substituted").read_bytes()))
    update = bad("apt-get", "update")
    assert "NO_PUBKEY" in update.stderr and "is not signed" in update.stderr
    assert "Unable to locate package" in bad("apt-get", "install", "-s", "nvidia-container-toolkit").stderr


def test_the_toolkit_pins_the_exact_version_of_the_other_three(repo):
    apt = _apt(repo, "pins", dearmor((repo["web"] / "gpgkey").read_bytes()))
    assert apt("apt-get", "update").returncode == 0
    old, new = aptrepo.VERSIONS[0], aptrepo.VERSIONS[-1]
    alone = apt("apt-get", "install", "-s", f"nvidia-container-toolkit={old}")
    assert alone.returncode != 0
    assert f"Depends: nvidia-container-toolkit-base (= {old}) but {new} is to be installed" in alone.stdout
    together = apt("apt-get", "install", "-s", *[f"{name}={old}" for name in aptrepo.PACKAGES])
    assert together.returncode == 0, together.stdout + together.stderr
    for name in aptrepo.PACKAGES:
        assert f"Inst {name} ({old} " in together.stdout


def _unpack(repo, package: str, version: str) -> Path:
    deb = next((repo["web"] / "stable" / "deb").glob(f"*/{package}_{version}_*.deb"))
    target = repo["root"] / f"unpacked-{package}-{version}"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True)
    return target


def test_package_contents(repo):
    version = aptrepo.VERSIONS[-1]
    base = _unpack(repo, "nvidia-container-toolkit-base", version)
    assert (base / "etc/nvidia-container-runtime/config.toml").is_file()
    assert "exec runc" in (base / "usr/bin/nvidia-container-runtime").read_text()
    toolkit = _unpack(repo, "nvidia-container-toolkit", version)
    hook = toolkit / "usr/bin/nvidia-container-runtime-hook"
    assert hook.stat().st_mode & 0o111
    assert subprocess.run([str(hook), "--version"], capture_output=True, text=True).stdout.startswith(
        f"NVIDIA Container Runtime Hook version {version}"
    )
    control = subprocess.run(["dpkg-deb", "-f", str(next((repo["web"] / "stable" / "deb").glob(
        f"*/nvidia-container-toolkit_{version}_*.deb"))), "Depends"], capture_output=True, text=True).stdout
    assert f"nvidia-container-toolkit-base (= {version})" in control
    assert f"libnvidia-container-tools (= {version})" in control


@pytest.fixture()
def nvidia_ctk(repo):
    base = _unpack(repo, "nvidia-container-toolkit-base", aptrepo.VERSIONS[-1])

    def run(*args: str):
        return subprocess.run([sys.executable, str(base / "usr/bin/nvidia-ctk"), *args], capture_output=True,
                              text=True)

    run.config_toml = base / "etc/nvidia-container-runtime/config.toml"
    return run


def test_nvidia_ctk_runtime_configure_writes_like_the_real_one(nvidia_ctk, tmp_path):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"log-driver": "json-file", "features": {"buildkit": true}}')
    result = nvidia_ctk("runtime", "configure", "--runtime=docker", f"--config={daemon_json}", "--set-as-default",
                        "--cdi.enabled")
    assert result.returncode == 0
    assert f"Wrote updated config to {daemon_json}" in result.stderr
    text = daemon_json.read_text()
    assert not text.endswith("\n")  # Go's MarshalIndent, written as is
    # NVIDIA/nvidia-container-toolkit d34b304 pkg/config/engine/docker/docker.go:113-119: the map[string]bool
    # assertion fails on decoded JSON, so "features" is replaced by {"cdi": true} (buildkit is dropped)
    assert json.loads(text) == {
        "default-runtime": "nvidia",
        "features": {"cdi": True},
        "log-driver": "json-file",
        "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}},
    }
    assert text.startswith('{\n    "default-runtime": "nvidia",\n    "features": {\n        "cdi": true')


def test_nvidia_ctk_output_is_what_our_merge_writes(nvidia_ctk, tmp_path):
    """A manual `nvidia-ctk runtime configure` after our merge makes no diff (same format, same keys)."""
    from lpfleet.daemon_json import DockerConfigWanted, plan

    ours = plan('{"log-driver": "local"}', DockerConfigWanted()).content
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text(ours)
    assert nvidia_ctk("runtime", "configure", f"--config={daemon_json}").returncode == 0
    assert daemon_json.read_text() == ours


def test_nvidia_ctk_refuses_invalid_json_and_dry_run_writes_nothing(nvidia_ctk, tmp_path):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text("{broken")
    result = nvidia_ctk("runtime", "configure", f"--config={daemon_json}")
    assert result.returncode != 0 and "unable to parse config" in result.stderr
    assert daemon_json.read_text() == "{broken"
    missing = tmp_path / "absent.json"
    result = nvidia_ctk("runtime", "configure", f"--config={missing}", "--dry-run")
    assert json.loads(result.stdout)["runtimes"]["nvidia"]["path"] == "nvidia-container-runtime"
    assert not missing.exists()


def test_nvidia_ctk_config_set_in_place(nvidia_ctk, tmp_path):
    import tomllib

    config = tmp_path / "config.toml"
    config.write_text(nvidia_ctk.config_toml.read_text())
    result = nvidia_ctk("config", "--set", "nvidia-container-cli.no-cgroups=true",
                        "--set", "nvidia-container-runtime.log-level=debug", "--in-place", f"--config-file={config}")
    assert result.returncode == 0, result.stderr
    parsed = tomllib.loads(config.read_text())
    assert parsed["nvidia-container-cli"]["no-cgroups"] is True
    assert parsed["nvidia-container-runtime"]["log-level"] == "debug"
    assert parsed["nvidia-container-runtime"]["runtimes"] == ["docker-runc", "runc", "crun"]  # untouched
    assert "#no-cgroups" not in config.read_text()  # the commented default became the setting
