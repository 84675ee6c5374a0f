"""The models_config task through pyinfra's API on `@local`, against a temp dir: first run writes the file
(mode 0600, parent created), second run changes nothing, and no token appears in any output, diff included."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

from lpfleet.fleet import plan_for_spec
from lpfleet.secrets import Secret
from lpfleet.spec import NodeSpec, build_node_spec
from tasks.models_config import write_ai_models_config

TOKEN = "byoc-token-5f4e3d2c1b0a"
OLD_TOKEN = "old-token-0a1b2c3d4e5f"


def spec_for(path: Path, token: str = TOKEN, price: int = 4768371) -> NodeSpec:
    entries = [
        {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "price_per_unit": price, "warm": True},
        {"pipeline": "llm", "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct", "url": "http://llm.lan:8000",
         "token": Secret(token), "capacity": 2, "price_per_unit": 180000000},
    ]
    return build_node_spec("@local", [("group g", {"ai_models": entries, "ai_models_path": str(path)})], ("g",))


def deploy(spec: NodeSpec, diff: bool = False) -> int:
    """One pyinfra run of the task on @local; the number of operations that changed something."""
    inventory = Inventory((["@local"], {}))
    config = Config()
    config.DIFF = diff
    state = State(inventory, config)
    state.print_output = state.print_input = state.print_fact_output = state.print_noop_info = True
    connect_all(state)
    add_deploy(state, write_ai_models_config, plan_for_spec(spec, state))
    run_ops(state)
    host = inventory.get_host("@local")
    meta = state.get_meta_for_host(host)
    assert meta.ops_error == 0 if hasattr(meta, "ops_error") else True
    assert not state.failed_hosts
    return meta.ops_change


@pytest.fixture
def target(tmp_path) -> Path:
    return tmp_path / "lpData" / "sub" / "aiModels.json"  # parent folders do not exist yet


def test_first_run_writes_the_file_private_and_atomically(target):
    assert deploy(spec_for(target)) == 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    data = json.loads(target.read_text())
    assert data[1]["token"] == TOKEN and data[0]["price_per_unit"] == 4768371
    assert not list(target.parent.glob(".*lpfleet-*"))  # the temp file was renamed, not left behind


def test_second_run_changes_nothing(target):
    spec = spec_for(target)
    assert deploy(spec) == 1
    inode, mtime = target.stat().st_ino, target.stat().st_mtime_ns
    assert deploy(spec) == 0
    assert (target.stat().st_ino, target.stat().st_mtime_ns) == (inode, mtime)


def test_a_changed_spec_rewrites_and_a_wrong_mode_is_fixed(target):
    assert deploy(spec_for(target)) == 1
    assert deploy(spec_for(target, price=1)) == 1
    assert json.loads(target.read_text())[0]["price_per_unit"] == 1
    os.chmod(target, 0o644)
    assert deploy(spec_for(target, price=1)) == 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert deploy(spec_for(target, price=1)) == 0


def test_an_existing_world_readable_file_is_replaced_private(target):
    target.parent.mkdir(parents=True)
    target.write_text("[]")
    os.chmod(target, 0o644)
    assert deploy(spec_for(target)) == 1
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_no_token_in_any_output_even_with_diff(target, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps([{"pipeline": "llm", "model_id": "x/y", "url": "http://a:1", "token": OLD_TOKEN}], indent=2))
    assert deploy(spec_for(target), diff=True) == 1
    assert deploy(spec_for(target), diff=True) == 0
    out, err = capfd.readouterr()
    everything = out + err + caplog.text
    assert "Will modify" in everything and '"token": "***"' in everything  # the diff was shown, masked
    assert '-     "token": "***"' in everything and '+     "token": "***",' in everything
    assert TOKEN not in everything and OLD_TOKEN not in everything
    assert json.loads(target.read_text())[1]["token"] == TOKEN


def test_diff_of_a_new_file_is_masked(target, capfd, caplog):
    caplog.set_level(logging.DEBUG)
    assert deploy(spec_for(target), diff=True) == 1
    out, err = capfd.readouterr()
    everything = out + err + caplog.text
    assert "Will create" in everything and TOKEN not in everything


def run_fact_command(fact, **kwargs) -> list[str]:
    """The fact's real shell command run under sh, as a node would run it."""
    import subprocess

    command = fact().command(**kwargs).get_raw_value()
    proc = subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=True)
    return proc.stdout.splitlines()


def test_file_digest_fact_on_a_real_file(tmp_path):
    import hashlib

    from lpfleet.facts.files import FileDigest

    path = tmp_path / "it's a file.json"
    path.write_bytes(b"[1]\n")
    os.chmod(path, 0o640)
    info = FileDigest().process(run_fact_command(FileDigest, path=str(path)))
    assert (info.mode, info.sha256) == ("640", hashlib.sha256(b"[1]\n").hexdigest())
    assert FileDigest().process(run_fact_command(FileDigest, path=str(tmp_path / "missing"))) is None
    assert FileDigest().process(run_fact_command(FileDigest, path=str(tmp_path))) is None  # a folder


def test_masked_contents_fact_masks_on_the_node(tmp_path):
    from lpfleet.facts.files import MaskedFileContents

    path = tmp_path / "aiModels.json"
    path.write_text('[{"token": "a\\"b", "url": "http://x"},\n {"Token" : "plain", "model_id": "o/n"}]\n')
    lines = run_fact_command(MaskedFileContents, path=str(path))
    assert lines == ['[{"token": "***", "url": "http://x"},', ' {"Token" : "***", "model_id": "o/n"}]']
    assert run_fact_command(MaskedFileContents, path=str(tmp_path / "missing")) == []
