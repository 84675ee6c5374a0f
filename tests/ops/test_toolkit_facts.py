"""ContainerHostFacts: the shell script runs under POSIX sh, and its output parses into the node snapshot."""

from __future__ import annotations

import base64
import json
import subprocess

from lpfleet.facts.docker import ContainerHostFacts, DownloadedFile, parse_state, repo_marker

# Lines captured from a sandbox node (docker.io 20.10 on Debian 12, toolkit 1.20.0-1 installed, a stale list).
DAEMON_JSON = {"features": {"buildkit": True}, "live-restore": True, "log-driver": "json-file",
               "runtimes": {"nvidia": {"args": [], "path": "nvidia-container-runtime"}}}
CAPTURED = [
    "@@os debian bookworm amd64 debian",
    "@@pkg ca-certificates 20230311+deb12u1 ii ",
    "@@pkg docker-ce  un ",
    "@@pkg docker.io 20.10.24+dfsg1-1+deb12u1+b6 ii ",
    "@@pkg libnvidia-container1 1.20.0-1 hi ",
    "@@pkg nvidia-container-toolkit 1.20.0-1 hi ",
    "@@unit ExecMainStartTimestampMonotonic=2011552377",
    "@@unit ExecMainPID=1925",
    "@@unit LoadState=loaded",
    "@@unit ActiveState=active",
    "@@unit UnitFileState=enabled",
    "@@argv L3Vzci9zYmluL2RvY2tlcmQKLUgKZmQ6Ly8KLS1jb250YWluZXJkPS9ydW4vY29udGFpbmVyZC9jb250YWluZXJkLnNvY2sK",
    "@@daemon-json-path /etc/docker/daemon.json",
    "@@file daemon.json 1 " + base64.b64encode(json.dumps(DAEMON_JSON).encode()).decode(),
    "@@file docker-keyring 0",
    "@@fetch nvidia-key 0 " + base64.b64encode(b"-----BEGIN PGP PUBLIC KEY BLOCK-----").decode(),
    "@@fetch docker-key skip",
    "@@stale /etc/apt/sources.list.d/nvidia-docker.list",
    "@@hook /usr/bin/nvidia-container-runtime-hook",
    "@@docker-info " + base64.b64encode(json.dumps({
        "DefaultRuntime": "runc", "LiveRestoreEnabled": True, "Runtimes": {
            "io.containerd.runc.v2": {"path": "runc"}, "nvidia": {"path": "nvidia-container-runtime"},
            "runc": {"path": "runc"}}}).encode()).decode(),
    "@@gpu-devices 0",
    "@@nvidia-smi /usr/bin/nvidia-smi",
]


def test_captured_output_parses():
    state = parse_state(CAPTURED)
    assert (state.os_id, state.codename, state.arch, state.distro) == ("debian", "bookworm", "amd64", "debian")
    assert state.installed_version("docker.io") == "20.10.24+dfsg1-1+deb12u1+b6"
    assert state.installed_version("docker-ce") is None
    assert state.packages["nvidia-container-toolkit"].held
    assert not state.packages["ca-certificates"].held
    assert state.docker_installed and state.docker_active and state.docker_enabled
    assert state.dockerd_started == "2011552377"
    assert state.dockerd_args == ("/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock")
    assert json.loads(state.file("daemon.json")) == DAEMON_JSON
    assert state.file("docker-keyring") is None
    assert state.download("nvidia-key").ok and state.download("nvidia-key").data.startswith(b"-----BEGIN PGP")
    assert state.download("docker-key").skipped
    assert state.stale_sources == ("/etc/apt/sources.list.d/nvidia-docker.list",)
    assert state.hook_path == "/usr/bin/nvidia-container-runtime-hook"
    assert state.docker_info_ok and state.default_runtime == "runc"
    assert state.runtimes == ("io.containerd.runc.v2", "nvidia", "runc")
    assert (state.gpu_device_nodes, state.nvidia_smi) == (0, "/usr/bin/nvidia-smi")


def test_dockerd_not_answering_is_not_docker_info():
    assert not parse_state(["@@docker-info "]).docker_info_ok
    assert not parse_state(["@@docker-info " + base64.b64encode(b"Bad Gateway").decode()]).docker_info_ok


def test_curl_failures_carry_the_reason():
    error = base64.b64encode(b"curl: (22) The requested URL returned error: 404").decode()
    state = parse_state([f"@@fetch nvidia-key 22 {error}", "@@fetch docker-key 127"])
    assert state.download("nvidia-key").error == "curl exit 22: curl: (22) The requested URL returned error: 404"
    assert state.download("docker-key").error == "curl is not installed"


def test_unreadable_node_state_is_empty_not_a_crash():
    state = parse_state([])
    assert not state.docker_installed and state.packages == {} and not state.download("nvidia-key").ok


def test_the_script_runs_under_posix_sh_and_parses():
    """Run the real fact command here (read-only; no URL to fetch) and parse what it prints."""
    command = ContainerHostFacts().command(nvidia_key_url="", toolkit_repo_marker="repo.test/stable/deb")
    result = subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    labels = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("@@file ")]
    assert labels == ["daemon.json", "nvidia-keyring", "nvidia-source", "docker-keyring", "docker-source",
                      "restart-marker"]
    state = parse_state(result.stdout.splitlines())
    assert state.os_id != "unknown" and state.arch != "unknown"
    assert state.download("nvidia-key").skipped and state.download("docker-key").skipped


def test_downloaded_file_fact_parses_both_outcomes():
    fact = DownloadedFile()
    assert fact.process(["0 " + base64.b64encode(b"key").decode()]).data == b"key"
    assert not fact.process(["1 "]).ok


def test_repo_marker_drops_scheme_and_arch():
    assert repo_marker("https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH)") == (
        "nvidia.github.io/libnvidia-container/stable/deb"
    )
    assert repo_marker("http://sb-apt:8080/stable/deb/amd64") == "sb-apt:8080/stable/deb/amd64"


def test_gpu_fact_parses_nvidia_smi_and_sees_a_stand_in():
    from lpfleet.facts.nvidia import NvidiaGpus, parse_gpus

    stand_in = parse_gpus([
        "@@devices 0", "@@smi",
        "0, GPU-1f2e3d4c-0000-0000-0000-000000000001, NVIDIA A100-SXM4-80GB, 81920, 4",
        "1, GPU-1f2e3d4c-0000-0000-0000-000000000002, NVIDIA A100-SXM4-80GB, 81920, 0",
        "No devices were found",
    ])
    assert [gpu.index for gpu in stand_in.gpus] == [0, 1]
    assert stand_in.gpus[0].name == "NVIDIA A100-SXM4-80GB" and stand_in.gpus[0].memory_total_mib == 81920
    assert stand_in.smi_present and not stand_in.real_driver
    assert parse_gpus(["@@devices 2", "@@smi", "0, GPU-a, NVIDIA H100, 81559, 1"]).real_driver
    assert parse_gpus(["@@devices 0"]) == NvidiaGpus().default()
    result = subprocess.run(["sh", "-c", NvidiaGpus().command()], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("@@devices ")
