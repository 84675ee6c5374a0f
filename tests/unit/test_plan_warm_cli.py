"""`lpfleet plan-warm` on the example fleet: the plan, the change it prints applies (ai_models_warm), a second
plan proposes nothing; demand from a CSV or group data; bad input is one line; `validate` warns about
overcommit.

The loader imports pyinfra_cli (gevent patching): these run the CLI in a child process, as operators do."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lpfleet.fleet import PROJECT_ROOT

LPFLEET = str(Path(sys.executable).parent / "lpfleet")


#: The example fleet's BYOC tokens come from the controller's environment (group_data/*.py: env_secret).
EXAMPLE_SECRETS = {
    "LPFLEET_BYOC_LLM_TOKEN": "byoc-llm-token-value",
    "LPFLEET_BYOC_FLUX_TOKEN": "byoc-flux-token-value",
}


@pytest.fixture(autouse=True)
def example_secrets(monkeypatch):
    for name, value in EXAMPLE_SECRETS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def fleet_dir(tmp_path, monkeypatch):
    for name in ("inventory.py", "group_data", "templates"):
        src = PROJECT_ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def lpfleet(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LPFLEET, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def plan(cwd: Path, *args: str) -> dict:
    proc = lpfleet(cwd, "plan-warm", "inventory.py", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def apply(fleet_dir: Path, changes: list[dict]) -> None:
    """Apply the printed change as an operator would: group files get ai_models_warm, hosts their data."""
    inventory = fleet_dir / "inventory.py"
    text = inventory.read_text()
    for change in changes:
        value = json.dumps(change["ai_models_warm"])
        if change["where"] == "group":
            with (fleet_dir / "group_data" / f"{change['name']}.py").open("a") as handle:
                handle.write(f"\nai_models_warm = {value}\n")
        else:
            host = change["name"]
            if f'("{host}", {{' in text:
                text = text.replace(f'("{host}", {{', f'("{host}", {{"ai_models_warm": {value}, ', 1)
            else:
                assert f'"{host}"' in text, host
                text = text.replace(f'"{host}"', f'("{host}", {{"ai_models_warm": {value}}})', 1)
    inventory.write_text(text)


def test_the_printed_change_applies_and_a_second_plan_changes_nothing(fleet_dir):
    first = plan(fleet_dir)
    assert first["optimal"] and first["covered_demand"] == first["total_demand"]
    assert first["changes"], (
        "the example fleet keeps one model warm on every consumer node: a plan spreads them"
    )
    apply(fleet_dir, first["changes"])
    valid = lpfleet(fleet_dir, "validate", "inventory.py")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    second = plan(fleet_dir)
    assert second["changes"] == []
    assert {n["host"]: n["warm_now"] for n in second["nodes"]} == {
        n["host"]: n["warm_planned"] for n in first["nodes"]
    }
    rendered = lpfleet(fleet_dir, "render", "inventory.py", first["nodes"][2]["host"], "--masked")
    entries = json.loads(rendered.stdout)
    assert sorted(f"{e['pipeline']} {e['model_id']}" for e in entries if e.get("warm")) == sorted(
        first["nodes"][2]["warm_planned"]
    )


def test_the_table_names_every_node_and_the_change(fleet_dir):
    proc = lpfleet(fleet_dir, "plan-warm", "inventory.py")
    assert proc.returncode == 0, proc.stderr
    assert not any(token in proc.stdout + proc.stderr for token in EXAMPLE_SECRETS.values())
    for host in ("gpu-c01.fleet.example", "gpu-d02.fleet.example"):
        assert host in proc.stdout
    assert "optimal (exhaustive search)" in proc.stdout
    assert '"ai_models_warm": [' in proc.stdout


def test_demand_from_a_csv_puts_the_heaviest_model_on_more_nodes(fleet_dir):
    (fleet_dir / "demand.csv").write_text(
        "pipeline,model_id,weight\n"
        "# a comment\n"
        "text-to-image,SG161222/RealVisXL_V4.0_Lightning,50\n"
        "image-to-image,timbrooks/instruct-pix2pix,1\n"
    )
    result = plan(fleet_dir, "--demand", "demand.csv")
    models = {m["model"]: m for m in result["models"]}
    assert result["total_demand"] == 51
    assert models["text-to-image SG161222/RealVisXL_V4.0_Lightning"]["warm_nodes"] == 3
    assert models["image-to-image timbrooks/instruct-pix2pix"]["warm_nodes"] >= 1


def test_demand_from_group_data(fleet_dir):
    with (fleet_dir / "group_data" / "all.py").open("a") as handle:
        handle.write('\nai_model_demand = {"upscale stabilityai/stable-diffusion-x4-upscaler": 9}\n')
    result = plan(fleet_dir)
    models = {m["model"]: m for m in result["models"]}
    assert result["total_demand"] == 9
    # every consumer node lists it: the only weighed model goes on all three
    assert models["upscale stabilityai/stable-diffusion-x4-upscaler"]["warm_nodes"] == 3


@pytest.mark.parametrize(
    "content, message",
    [
        ("model,weight\nx,1\n", "line 1: the header must be `pipeline,model_id,weight`"),
        (
            "pipeline,model_id,weight\ntext-to-img,org/a,1\n",
            "row 2: pipeline: unknown pipeline 'text-to-img'",
        ),
        ("pipeline,model_id,weight\nllm,org/a,-1\n", "row 2: weight: must be a finite number >= 0"),
        ("pipeline,model_id,weight\nllm,org/a,lots\n", "row 2: weight: 'lots' is not a number"),
    ],
)
def test_a_bad_demand_file_is_one_line(fleet_dir, content, message):
    (fleet_dir / "demand.csv").write_text(content)
    proc = lpfleet(fleet_dir, "plan-warm", "inventory.py", "--demand", "demand.csv")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"lpfleet plan-warm: demand.csv: {message}"
    assert "Traceback" not in proc.stderr


def test_a_missing_inventory_or_demand_file(fleet_dir):
    proc = lpfleet(fleet_dir, "plan-warm", "nope.py")
    assert proc.returncode == 2 and proc.stderr.strip() == "lpfleet plan-warm: inventory nope.py not found"
    proc = lpfleet(fleet_dir, "plan-warm", "inventory.py", "--demand", "missing.csv")
    assert proc.returncode == 2 and "missing.csv: cannot read the demand file" in proc.stderr


def test_validate_warns_when_the_warm_set_overcommits_a_gpu(fleet_dir):
    # two containers per GPU on one 24 GB GPU, two 12 GB warm models plus the per-model override to 14 GB
    inventory = fleet_dir / "inventory.py"
    inventory.write_text(
        inventory.read_text().replace(
            '("gpu-c02.fleet.example", {"gpus": [0, 1]})',
            '("gpu-c02.fleet.example", {"gpus": [0], "runner_containers_per_gpu": 2, '
            '"ai_model_vram_gb": {"SG161222/RealVisXL_V4.0_Lightning": 14, '
            '"timbrooks/instruct-pix2pix": 14}, '
            '"ai_models_warm": ["text-to-image SG161222/RealVisXL_V4.0_Lightning", '
            '"image-to-image timbrooks/instruct-pix2pix"]})',
        )
    )
    proc = lpfleet(fleet_dir, "validate", "inventory.py")
    assert proc.returncode == 0, proc.stdout
    assert (
        "gpu-c02.fleet.example: ai_models_warm: warning: the warm set puts about 28 GB on GPU 0 "
        "(gpu_memory_gb 24"
        in proc.stdout
    )
    result = plan(fleet_dir)
    c02 = next(n for n in result["nodes"] if n["host"] == "gpu-c02.fleet.example")
    assert max(c02["gpu_load_gb"]) <= 24


def test_ai_models_warm_naming_no_entry_is_an_error(fleet_dir):
    with (fleet_dir / "group_data" / "consumer_24gb.py").open("a") as handle:
        handle.write('\nai_models_warm = ["text-to-image org/not-listed"]\n')
    proc = lpfleet(fleet_dir, "validate", "inventory.py")
    assert proc.returncode == 1
    assert (  # validate names the group once for the three hosts it applies to
        'group consumer_24gb: ai_models_warm: "text-to-image org/not-listed" is no managed entry of ai_models'
        in proc.stdout
    )
    proc = lpfleet(fleet_dir, "plan-warm", "inventory.py")
    assert proc.returncode == 2 and "fix the problems above first" in proc.stderr
