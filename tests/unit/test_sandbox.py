"""Pure parts of the sandbox: image build order and input hash, image.json validation, the GPU scheme, the
state file, the per-node files tar, and the stand-in nvidia-smi run as a script."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from lpfleet.sandbox import gpus
from lpfleet.sandbox.images import IMAGES_DIR, ImageError, build_order, discover, input_hash
from lpfleet.sandbox.nodes import bundle_manifest, missing_images, node_files_tar
from lpfleet.sandbox.state import (
    SandboxError,
    SandboxState,
    StateMissing,
    load_state,
    sandbox_name,
    save_state,
    state_dir,
)

NVIDIA_SMI = IMAGES_DIR / "node" / "nvidia-smi"


def test_build_order_puts_bases_first_and_is_stable():
    bases = {"node": "debian", "hub": "python", "python": "debian", "apt": "python", "ai": "hub"}
    order = build_order(bases)
    assert sorted(order) == sorted(bases)
    for name, base in bases.items():
        if base != "debian":
            assert order.index(base) < order.index(name)
    assert build_order(dict(reversed(list(bases.items())))) == order


def test_build_order_rejects_cycles_and_unknown_bases():
    with pytest.raises(ImageError, match="cycle: a -> b -> a"):
        build_order({"a": "b", "b": "a"})
    with pytest.raises(ImageError, match="image 'x': base 'nope' is neither 'debian' nor an image folder"):
        build_order({"x": "nope"})


def test_input_hash_changes_with_content_path_and_base_only():
    files = {"folder/Dockerfile": b"FROM x", "folder/a": b"1"}
    same = input_hash(dict(reversed(list(files.items()))), "sha256:1")
    assert input_hash(files, "sha256:1") == same
    assert input_hash({**files, "folder/a": b"2"}, "sha256:1") != same
    assert input_hash({"folder/Dockerfile": b"FROM x", "folder/b": b"1"}, "sha256:1") != same
    assert input_hash(files, "sha256:2") != same
    # a byte moving between two files is a different input
    assert input_hash({"folder/a": b"ab", "folder/b": b""}, "") != input_hash({"folder/a": b"a", "folder/b": b"b"}, "")


def _folder(root: Path, name: str, meta: dict | str, dockerfile: str = "ARG BASE\nFROM ${BASE}\n") -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "image.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    (folder / "Dockerfile").write_text(dockerfile)
    return folder


def test_discover_reads_the_shipped_image_folders():
    specs = discover()
    assert {"python", "node"} <= set(specs)
    assert specs["node"].base == "debian" and specs["node"].target == "host"
    build_order({name: spec.base for name, spec in specs.items()})  # every base resolves


def test_discover_errors_name_the_file_and_the_field(tmp_path):
    bad = _folder(tmp_path, "svc", {"tags": [], "base": "debian", "target": "cloud"})
    with pytest.raises(ImageError) as error:
        discover([bad])
    message = str(error.value)
    assert str(bad / "image.json") in message
    assert "tags:" in message and "target:" in message


def test_discover_rejects_bad_json_context_reserved_name_and_run_on_node_images(tmp_path):
    with pytest.raises(ImageError, match="not JSON"):
        discover([_folder(tmp_path, "a", "{")])
    with pytest.raises(ImageError, match="context '../nowhere' is not a folder"):
        discover([_folder(tmp_path, "b", {"tags": ["t"], "base": "debian", "target": "host",
                                          "context": "../nowhere"})])
    with pytest.raises(ImageError, match="reserved"):
        discover([_folder(tmp_path, "debian", {"tags": ["t"], "base": "debian", "target": "host"})])
    with pytest.raises(ImageError, match="only target \"host\" images run"):
        discover([_folder(tmp_path, "c", {"tags": ["t"], "base": "debian", "target": "node", "run": {}})])
    with pytest.raises(ImageError, match="run.bogus"):
        discover([_folder(tmp_path, "d", {"tags": ["t"], "base": "debian", "target": "host", "run": {"bogus": 1}})])
    half_written = tmp_path / "e"
    half_written.mkdir()
    (half_written / "Dockerfile").write_text("FROM x")
    with pytest.raises(ImageError, match="missing image.json"):
        discover([half_written])
    not_an_image = tmp_path / "f"
    not_an_image.mkdir()
    assert discover([not_an_image]) == {}


def test_gpu_scheme_classes_counts_and_stable_distinct_uuids():
    classes = [gpus.node_gpus("s", f"s-node-{i}", i) for i in range(1, 7)]
    assert [c for c, _ in classes] == ["consumer", "datacenter", "consumer"] * 2
    assert [len(g) for _, g in classes] == [1, 2, 1] * 2
    assert classes[0][1][0].name == "NVIDIA GeForce RTX 4090" and classes[0][1][0].memory_total_mib == 24564
    assert {g.name for g in classes[1][1]} == {"NVIDIA A100-SXM4-80GB"}
    uuids = [gpu.uuid for _, node in classes for gpu in node]
    assert len(set(uuids)) == len(uuids)
    assert gpus.node_gpus("s", "s-node-1", 1) == classes[0]
    assert gpus.node_gpus("other", "other-node-1", 1)[1][0].uuid != classes[0][1][0].uuid
    with pytest.raises(ValueError):
        gpus.node_gpus("s", "s-node-0", 0)


def test_gpus_csv_is_the_noheader_nounits_query_output():
    _, two = gpus.node_gpus("s", "s-node-2", 2)
    lines = gpus.gpus_csv(two).splitlines()
    assert lines == [f"{g.index}, {g.uuid}, NVIDIA A100-SXM4-80GB, 81920, 0" for g in two]


def _run_smi(tmp_path: Path, csv: str | None, *args: str) -> subprocess.CompletedProcess:
    """The node's nvidia-smi script, with its gpus.csv path pointed at a test file."""
    source = NVIDIA_SMI.read_text()
    target = tmp_path / "gpus.csv"
    if csv is not None:
        target.write_text(csv)
    script = tmp_path / "nvidia-smi"
    script.write_text(source.replace('"/etc/lpfleet-sandbox/gpus.csv"', repr(str(target)), 1))
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)


def test_nvidia_smi_answers_the_query_list_and_table_from_gpus_csv(tmp_path):
    _, two = gpus.node_gpus("s", "s-node-2", 2)
    csv = gpus.gpus_csv(two)
    query = _run_smi(tmp_path, csv, "--query-gpu=index,uuid,name,memory.total,memory.used",
                     "--format=csv,noheader,nounits")
    assert query.returncode == 0 and query.stdout == csv
    with_units = _run_smi(tmp_path, csv, "--query-gpu=name,memory.total", "--format=csv")
    assert with_units.stdout.splitlines() == ["name, memory.total [MiB]"] + ["NVIDIA A100-SXM4-80GB, 81920 MiB"] * 2
    listing = _run_smi(tmp_path, csv, "-L")
    assert listing.stdout.splitlines() == [f"GPU {g.index}: {g.name} (UUID: {g.uuid})" for g in two]
    table = _run_smi(tmp_path, csv)
    assert table.returncode == 0 and table.stdout.count("NVIDIA A100-SXM4-80GB") == 2 and "81920MiB" in table.stdout


def test_nvidia_smi_fails_like_a_missing_driver_and_on_bad_fields(tmp_path):
    missing = _run_smi(tmp_path, None, "-L")
    assert missing.returncode == 9 and "couldn't communicate with the NVIDIA driver" in missing.stdout
    bad = _run_smi(tmp_path, "0, GPU-x, N, 1, 0\n", "--query-gpu=bogus", "--format=csv")
    assert bad.returncode == 2 and 'Field "bogus"' in bad.stderr


def test_sandbox_name_from_env_and_validated():
    assert sandbox_name({}) == "lpfleet-sandbox"
    assert sandbox_name({"LPFLEET_SANDBOX": "ci-1"}) == "ci-1"
    for bad in ("Upper", "-x", "a b", "x" * 41, "a/b"):
        with pytest.raises(SandboxError, match="LPFLEET_SANDBOX"):
            sandbox_name({"LPFLEET_SANDBOX": bad})


def test_state_round_trip_is_private_and_missing_state_says_what_to_run(tmp_path):
    env = {"LPFLEET_SANDBOX_DIR": str(tmp_path)}
    with pytest.raises(StateMissing, match="run `lpfleet sandbox up` first"):
        load_state("s1", env)
    gpu_class, node_gpus = gpus.node_gpus("s1", "s1-node-1", 1)
    state = SandboxState(name="s1", network="s1-net", ssh_key="/k", secrets={"LPFLEET_HUB_TOKEN": "t0ken"},
                         nodes=[{"name": "s1-node-1", "index": 1, "ssh_port": 2222, "gpu_class": gpu_class,
                                 "gpus": node_gpus}])
    path = save_state(state, env)
    assert path == state_dir("s1", env) / "state.json" == tmp_path / "s1" / "state.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert load_state("s1", env) == state
    assert load_state(None, {**env, "LPFLEET_SANDBOX": "s1"}).node(1).ssh_port == 2222
    path.write_text("{}")
    with pytest.raises(SandboxError, match="not a valid sandbox state"):
        load_state("s1", env)


def test_node_files_tar_has_root_owned_files_with_exact_modes():
    data = node_files_tar(b"ssh-ed25519 AAAA test\n", "0, GPU-1, X, 1, 0\n")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert members["root/.ssh/authorized_keys"].mode == 0o600
        assert members["etc/lpfleet-sandbox/gpus.csv"].mode == 0o644
        assert all(m.uid == 0 and m.gid == 0 for m in members.values())
        assert tar.extractfile("root/.ssh/authorized_keys").read() == b"ssh-ed25519 AAAA test\n"


def test_missing_images_compares_every_tag_with_its_image_id():
    images = {"r:latest": ("sha256:a", ["r:latest", "r:llm"]), "w:1": ("sha256:b", ["w:1"])}
    assert missing_images({"r:latest": "sha256:a", "r:llm": "sha256:a", "w:1": "sha256:b"}, images) == []
    assert missing_images({"r:latest": "sha256:a", "w:1": "sha256:old"}, images) == ["r:llm", "w:1"]
    assert missing_images({}, {}) == []


def test_bundle_manifest_lists_every_tag_with_its_id_in_a_stable_order():
    images = {"w:1": ("sha256:b", ["w:1"]), "r:latest": ("sha256:a", ["r:llm", "r:latest"])}
    assert bundle_manifest(images) == "r:latest sha256:a\nr:llm sha256:a\nw:1 sha256:b\n"
    assert bundle_manifest({}) == ""
