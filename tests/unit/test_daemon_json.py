"""The daemon.json merge: parsed structures in, parsed structures and nvidia-ctk-formatted text out."""

from __future__ import annotations

import json

import pytest

from lpfleet.daemon_json import (
    DEFAULT_PATH,
    DaemonJsonError,
    DockerConfigWanted,
    config_file_from_args,
    flag_conflicts,
    merge,
    parse,
    plan,
    render,
)

NVIDIA_ONLY = '{\n    "runtimes": {\n        "nvidia": {\n            "args": [],\n            "path": "nvidia-container-runtime"\n        }\n    }\n}'
EVERYTHING = DockerConfigWanted(set_default_runtime=True, cdi=True, live_restore=True)


@pytest.mark.parametrize("current", [None, "", "  \n", b"", "\ufeff", b"\xef\xbb\xbf\n"])
def test_missing_or_blank_file_becomes_exactly_what_nvidia_ctk_writes(current):
    result = plan(current, DockerConfigWanted())
    assert result.changed
    assert result.content == NVIDIA_ONLY  # byte for byte, no trailing newline, like nvidia-ctk
    assert result.changes == ("runtimes.nvidia added",)


def test_foreign_keys_are_kept_untouched():
    current = {
        "log-driver": "json-file",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "runtimes": {"crun": {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}},
        "features": {"buildkit": True},
        "registry-mirrors": ["http://mirror.local:5000"],
    }
    result = plan(json.dumps(current), EVERYTHING)
    merged = json.loads(result.content)
    assert merged["log-driver"] == "json-file"
    assert merged["log-opts"] == {"max-size": "10m", "max-file": "3"}
    assert merged["runtimes"]["crun"] == {"path": "/usr/bin/crun", "runtimeArgs": ["--debug"]}
    assert merged["features"] == {"buildkit": True, "cdi": True}
    assert merged["registry-mirrors"] == ["http://mirror.local:5000"]
    assert merged["runtimes"]["nvidia"] == {"args": [], "path": "nvidia-container-runtime"}
    assert merged["default-runtime"] == "nvidia"
    assert merged["live-restore"] is True
    assert set(merged) == set(current) | {"default-runtime", "live-restore"}


def test_merge_does_not_mutate_its_input():
    current = {"runtimes": {"crun": {"path": "/usr/bin/crun"}}, "features": {"buildkit": True}}
    snapshot = json.loads(json.dumps(current))
    merge(current, EVERYTHING)
    assert current == snapshot


def test_converged_file_is_not_changed_whatever_its_formatting():
    hand_written = '{"live-restore":true,\n "runtimes":{"nvidia":{"path":"nvidia-container-runtime","args":[]}}}\n'
    result = plan(hand_written, DockerConfigWanted(live_restore=True))
    assert not result.changed
    assert result.changes == ()


@pytest.mark.parametrize(
    "entry",
    [
        {"path": "/usr/bin/nvidia-container-runtime", "args": []},
        {"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": []},
        {"path": "nvidia-container-runtime"},
    ],
)
def test_equivalent_runtime_entries_count_as_converged(entry):
    assert not plan(json.dumps({"runtimes": {"nvidia": entry}}), DockerConfigWanted()).changed


@pytest.mark.parametrize(
    ("entry", "expected_path"),
    [
        ({"path": "/opt/other/runtime", "args": []}, "nvidia-container-runtime"),
        ({"path": "/usr/bin/nvidia-container-runtime", "runtimeArgs": ["--debug"]}, "/usr/bin/nvidia-container-runtime"),
        ("nvidia-container-runtime", "nvidia-container-runtime"),
    ],
)
def test_wrong_nvidia_entry_is_replaced_keeping_an_equivalent_path(entry, expected_path):
    result = plan(json.dumps({"runtimes": {"nvidia": entry}}), DockerConfigWanted())
    assert result.changed
    assert json.loads(result.content)["runtimes"]["nvidia"] == {"args": [], "path": expected_path}
    assert result.changes[0].startswith("runtimes.nvidia replaced")


def test_options_not_asked_for_are_left_alone():
    current = {"default-runtime": "runc", "features": {"cdi": False}, "live-restore": False,
               "runtimes": {"nvidia": {"path": "nvidia-container-runtime", "args": []}}}
    result = plan(json.dumps(current), DockerConfigWanted())
    assert not result.changed
    assert result.merged == current


def test_each_option_asked_for_is_one_change_line():
    result = plan("{}", EVERYTHING)
    assert result.changes == (
        "runtimes.nvidia added",
        'default-runtime set to "nvidia" (was null)',
        "features.cdi set to true",
        "live-restore set to true",
    )
    again = plan(result.content, EVERYTHING)
    assert not again.changed and again.content == result.content


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"log-driver": "json-file",', "not valid JSON: Expecting property name enclosed in double quotes at line 1"),
        ("{'single': 'quotes'}", "not valid JSON"),
        ("[]", "not a JSON object (top level is list)"),
        ('"just a string"', "not a JSON object (top level is str)"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        ('{"runtimes": ["nvidia"]}', '"runtimes" is a list, not an object'),
        ('{"features": "cdi"}', '"features" is a str, not an object'),
    ],
)
def test_unmergeable_files_are_refused_with_the_reason(text, message):
    with pytest.raises(DaemonJsonError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan(text, EVERYTHING)


def test_render_matches_go_json_marshal_indent():
    config = {"b": 1, "a": {"z": [], "y": {}}, "html": "<a & b>", "unicode": "é"}
    assert render(config) == (
        "{\n"
        '    "a": {\n'
        '        "y": {},\n'
        '        "z": []\n'
        "    },\n"
        '    "b": 1,\n'
        '    "html": "\\u003ca \\u0026 b\\u003e",\n'
        '    "unicode": "é"\n'
        "}"
    )
    assert json.loads(render(config)) == config


def test_flag_conflicts_name_the_directive_and_the_flag():
    config = {"live-restore": True, "default-runtime": "nvidia", "runtimes": {}, "log-driver": "local"}
    args = ["/usr/sbin/dockerd", "-H", "fd://", "--live-restore", "--add-runtime=crun=/usr/bin/crun",
            "--default-runtime=runc"]
    assert flag_conflicts(config, args) == (
        "default-runtime (dockerd is started with --default-runtime)",
        "live-restore (dockerd is started with --live-restore)",
    )
    assert flag_conflicts(config, ["/usr/sbin/dockerd", "-H", "fd://"]) == ()


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["/usr/bin/dockerd", "-H", "fd://"], DEFAULT_PATH),
        (["/usr/bin/dockerd", "--config-file", "/srv/docker.json"], "/srv/docker.json"),
        (["/usr/bin/dockerd", "--config-file=/srv/d.json", "-H", "fd://"], "/srv/d.json"),
    ],
)
def test_config_file_is_where_dockerd_reads_it(args, path):
    assert config_file_from_args(args) == path


def test_parse_keeps_every_value():
    assert parse('{"a": [1, 2.5, null, true], "b": {"c": "d"}}') == {"a": [1, 2.5, None, True], "b": {"c": "d"}}
