"""The sandbox's fake `nvidia-ctk runtime configure` against NVIDIA/nvidia-container-toolkit d34b304's behaviour.

Run from the source tree (stdlib python3, as the apt package ships it), on temporary daemon.json files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NVIDIA_CTK = (Path(__file__).resolve().parents[2] / "lpfleet" / "sandbox" / "aptrepo" / "packages"
              / "nvidia-container-toolkit-base" / "usr" / "bin" / "nvidia-ctk")


def configure(path: Path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(NVIDIA_CTK), "runtime", "configure", "--runtime=docker",
                           f"--config={path}", *flags], capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("content", ["", "   \n", "\n\n"])
def test_empty_daemon_json_fails_with_eof_and_is_left_alone(tmp_path, content):
    # pkg/config/engine/docker/option.go:79-82: json.NewDecoder(reader).Decode(&cfg) returns io.EOF for an
    # empty reader; cmd/nvidia-ctk/runtime/configure/configure.go:321 wraps it. Only a missing file is {}.
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text(content)
    result = configure(daemon_json)
    assert result.returncode != 0
    assert "unable to load config for runtime docker: EOF" in result.stderr
    assert daemon_json.read_text() == content


def test_missing_daemon_json_is_an_empty_config(tmp_path):
    # option.go:68-71: "Config file does not exist; using empty config"
    daemon_json = tmp_path / "daemon.json"
    assert configure(daemon_json).returncode == 0
    nvidia = {"args": [], "path": "nvidia-container-runtime"}
    assert json.loads(daemon_json.read_text()) == {"runtimes": {"nvidia": nvidia}}


def test_cdi_enabled_drops_the_other_feature_keys(tmp_path):
    # pkg/config/engine/docker/docker.go:113-119: config["features"].(map[string]bool) is never true for a
    # decoded JSON object (map[string]any), so features becomes {"cdi": true}
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"features": {"buildkit": true, "containerd-snapshotter": true}, "log-driver": "local"}')
    assert configure(daemon_json, "--cdi.enabled").returncode == 0
    config = json.loads(daemon_json.read_text())
    assert config["features"] == {"cdi": True}
    assert config["log-driver"] == "local"


def test_without_cdi_the_features_are_kept(tmp_path):
    daemon_json = tmp_path / "daemon.json"
    daemon_json.write_text('{"features": {"buildkit": true}}')
    assert configure(daemon_json).returncode == 0
    assert json.loads(daemon_json.read_text())["features"] == {"buildkit": True}
