"""The fleet loader: pyinfra's own inventory + group data loading, every host checked, and the inventory guard
that stops `pyinfra inventory.py deploy.py` before it connects to anything."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyinfra.api import Inventory

from lpfleet.fleet import PROJECT_ROOT, FleetError, _load_group_file, cli_overrides, host_layers, node_spec

BIN = Path(sys.executable).parent
PYINFRA = str(BIN / "pyinfra")
LPFLEET = str(BIN / "lpfleet")

# The loader (check_fleet / load_fleet) uses pyinfra_cli's make_inventory, and importing pyinfra_cli
# monkey-patches gevent into the importing process: those tests run it in its own process through
# `lpfleet validate --json`, which is the same code path and the command operators use.


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
    """A copy of the example inventory, group data and templates, with the cwd inside it."""
    for name in ("inventory.py", "group_data", "templates"):
        src = PROJECT_ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def replace_in(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def validate(cwd: Path, *args: str) -> tuple[int, dict]:
    proc = subprocess.run([LPFLEET, "validate", "--json", *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def error_lines(result: dict) -> list[str]:
    return [p["line"] for p in result["problems"] if p["severity"] == "error"]


def test_the_example_fleet_is_valid():
    rc, result = validate(PROJECT_ROOT, "inventory.py")
    assert rc == 0 and result["ok"], result
    assert result["hosts"] == [
        "gpu-c01.fleet.example", "gpu-c02.fleet.example", "gpu-c03.fleet.example",
        "gpu-d01.fleet.example", "gpu-d02.fleet.example",
    ]
    assert result["problems"] == []


def test_a_forgotten_export_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("LPFLEET_BYOC_LLM_TOKEN")
    rc, result = validate(PROJECT_ROOT, "inventory.py")
    lines = error_lines(result)
    assert rc == 1 and len(lines) == 3, lines  # the three consumer hosts
    expected = "ai_models[5].token: environment variable LPFLEET_BYOC_LLM_TOKEN is not set"
    assert all(expected in line for line in lines)


def test_a_bad_group_data_file_names_every_host_group_entry_and_field(fleet_dir):
    replace_in(fleet_dir / "group_data" / "consumer_24gb.py", '"price_per_unit": 12882811', '"price_per_unit": "0.5e-2USD"')
    rc, result = validate(fleet_dir, "inventory.py")
    lines = error_lines(result)
    assert rc == 1 and len(lines) == 3  # the three consumer hosts, nothing from the datacenter group
    for host, line in zip(("gpu-c01", "gpu-c02", "gpu-c03"), lines):
        assert line.startswith(
            f"{host}.fleet.example (group consumer_24gb): ai_models: entry 4 (audio-to-text openai/whisper-large-v3): "
            'price_per_unit: "0.5e-2USD" is a string'
        )
    first = result["problems"][0]
    assert (first["host"], first["group"], first["entry"], first["field"], first["rule"]) == (
        "gpu-c01.fleet.example", "group consumer_24gb", 4, "price_per_unit", "string-price")
    assert result["hosts"] == ["gpu-d01.fleet.example", "gpu-d02.fleet.example"]


def test_override_data_is_applied_and_named(fleet_dir):
    rc, result = validate(fleet_dir, "inventory.py", "--data", "runner_containers_per_gpu=0")
    assert rc == 1
    assert "gpu-c01.fleet.example (--data): runner_containers_per_gpu: must be a whole number >= 1" in error_lines(result)


def test_host_data_problem_names_host_data(fleet_dir):
    replace_in(fleet_dir / "inventory.py", '("gpu-c02.fleet.example", {"gpus": [0, 1]})',
               '("gpu-c02.fleet.example", {"gpus": [0, 1], "gpu_memory": 24})')
    rc, result = validate(fleet_dir, "inventory.py")
    assert error_lines(result) == [
        'gpu-c02.fleet.example (host data): gpu_memory: unknown lpfleet data key (did you mean "gpu_memory_gb"?); '
        "see docs/group-data.md"
    ]
    assert len(result["hosts"]) == 4


def test_a_template_problem_is_found_at_load_time(fleet_dir):
    (fleet_dir / "templates" / "aiModels.compact.json.j2").write_text("[{% for e in entries %}{{ e | tojson }},{% endfor %}]")
    rc, result = validate(fleet_dir, "inventory.py")
    lines = error_lines(result)
    assert rc == 1 and len(lines) == 2
    assert all(line.startswith("gpu-d0") and "invalid JSON" in line for line in lines)


def test_an_inventory_that_raises_is_reported(fleet_dir):
    (fleet_dir / "group_data" / "all.py").write_text("import os\nx = os.environ['LPFLEET_SURELY_UNSET']\n")
    rc, result = validate(fleet_dir, "inventory.py")
    assert rc == 1
    assert "cannot load the inventory" in error_lines(result)[0] and "KeyError" in error_lines(result)[0]


def test_validate_prints_one_line_per_problem_with_the_hosts_it_hits(fleet_dir):
    replace_in(fleet_dir / "group_data" / "consumer_24gb.py", '"warm": True,', '"Warm": True,')
    replace_in(fleet_dir / "inventory.py", '"gpu-c03.fleet.example",', '("gpu-c03.fleet.example", {"ai_models_path": "aiModels.json"}),')
    proc = subprocess.run([LPFLEET, "validate"], cwd=fleet_dir, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert len(lines) == 3, lines  # the group's mistake once (not once per host), the host's own, the summary
    assert lines[0].startswith(
        "group consumer_24gb: ai_models: entry 0 (text-to-image SG161222/RealVisXL_V4.0_Lightning): "
        'Warm: mis-cased key (did you mean "warm"?): '
    )
    assert lines[0].endswith("(3 hosts: gpu-c01.fleet.example, gpu-c02.fleet.example, gpu-c03.fleet.example)")
    assert lines[1].startswith("gpu-c03.fleet.example (host data): ai_models_path: must be an absolute host path")
    assert lines[-1] == "inventory.py: 2 problem(s) on 3 host(s); fix them before deploying"


def test_cli_overrides_parse_like_pyinfra():
    data, dirs = cli_overrides(["-y", "inv.py", "deploy.py", "--data", "gpus=[0,1]", "--data=group=consumer_24gb",
                                "--group-data", "/x", "--group-data=/y", "--data", "gpu_memory_gb=24",
                                "--data", "nvidia_cdi=False"])
    assert data == {"gpus": [0, 1], "group": "consumer_24gb", "gpu_memory_gb": 24, "nvidia_cdi": False}
    assert dirs == ["/x", "/y"]


def test_group_file_is_read_as_pyinfra_reads_it(tmp_path):
    path = tmp_path / "g.py"
    path.write_text("import os\nfrom lpfleet.spec import env_secret\ngpus = [0]\n_private = 1\n__dunder = 2\n")
    assert _load_group_file(path) == {"gpus": [0], "_private": 1}
    path.write_text("__all__ = ['gpus']\ngpus = [1]\nother = 2\n")
    assert _load_group_file(path) == {"gpus": [1]}


def _bootstrap_host(override_data, name="root@new-box"):
    """What `pyinfra root@new-box deploy.py --data ...` builds: one host, all.py as the fleet-wide data."""
    all_data = _load_group_file(PROJECT_ROOT / "group_data" / "all.py")
    inventory = Inventory(([name], all_data), override_data=override_data)
    (host,) = list(inventory)
    return host


def test_bootstrap_group_key_applies_that_group_data_file():
    host = _bootstrap_host({"group": "consumer_24gb"})
    spec = node_spec(host)
    assert "consumer_24gb" in spec.groups and spec.gpu_memory_gb == 24
    assert spec.models[0].model_id == "SG161222/RealVisXL_V4.0_Lightning"
    assert spec.worker.network == "arbitrum-one-mainnet"  # all.py applies too
    assert node_spec(host) is spec  # built once per host


def test_bootstrap_group_key_with_a_list_later_wins():
    host = _bootstrap_host({"group": ["consumer_24gb", "datacenter_80gb"]})
    layers, groups, problems = host_layers(host)
    assert not problems
    assert [label for label, _ in layers][:4] == ["--data", "host data", "group datacenter_80gb", "group consumer_24gb"]
    assert node_spec(host).gpu_memory_gb == 80


def test_bootstrap_comma_separated_groups():
    host = _bootstrap_host({"group": "datacenter_80gb,consumer_24gb"})
    assert node_spec(host).gpu_memory_gb == 24


def test_bootstrap_unknown_group_is_an_error_naming_it():
    host = _bootstrap_host({"group": "consumer_12gb"})
    with pytest.raises(FleetError, match=r"root@new-box \(--data\): group: no group data file consumer_12gb.py"):
        node_spec(host)


def test_node_spec_error_names_host_group_entry_field():
    host = _bootstrap_host({"group": "consumer_24gb", "gpus": [0, 0]})
    with pytest.raises(FleetError) as exc:
        node_spec(host)
    assert "root@new-box (--data): gpus: lists a GPU id twice" in str(exc.value)


def run_pyinfra(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYINFRA_PROGRESS="off")
    return subprocess.run([PYINFRA, "-y", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_pyinfra_stops_before_connecting_when_group_data_is_bad(fleet_dir):
    """End to end through the real CLI. The hosts do not resolve: any connection attempt would show."""
    (fleet_dir / "deploy.py").write_text(
        "from pyinfra.operations import server\nserver.shell(name='touch', commands=['touch /tmp/lpfleet-never'])\n"
    )
    replace_in(fleet_dir / "group_data" / "datacenter_80gb.py", '"MAX_MODEL_LEN": "8192"', '"MAX_MODEL_LEN": 8192')
    result = run_pyinfra(fleet_dir, "inventory.py", "deploy.py")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "no host was connected to" in output
    assert (
        "group datacenter_80gb: ai_models: entry 1 (llm meta-llama/Meta-Llama-3.1-8B-Instruct): "
        'optimization_flags.MAX_MODEL_LEN: numbers make go-livepeer fail to parse the whole file; quote it: "MAX_MODEL_LEN": "8192"'
        " (2 hosts: gpu-d01.fleet.example, gpu-d02.fleet.example)"
    ) in output
    assert "Connecting" not in output and "Could not connect" not in output and "Starting operation" not in output


def test_pyinfra_data_override_is_validated_too(fleet_dir):
    (fleet_dir / "deploy.py").write_text("")
    result = run_pyinfra(fleet_dir, "inventory.py", "deploy.py", "--data", "gpus=[0,0]")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "--data: gpus: lists a GPU id twice (5 hosts: gpu-c01.fleet.example, " in output
    assert "Connecting" not in output


def test_pyinfra_with_valid_data_goes_on_to_connect(fleet_dir):
    """The guard lets a valid fleet through: pyinfra then tries (and here fails) to connect."""
    (fleet_dir / "deploy.py").write_text("")
    result = run_pyinfra(fleet_dir, "inventory.py", "deploy.py", "--limit", "gpu-c01.fleet.example")
    output = result.stdout + result.stderr
    assert "no host was connected to" not in output
    assert "Connecting to hosts" in output


def test_debug_inventory_prints_secrets_masked():
    proc = subprocess.run([PYINFRA, "inventory.py", "debug-inventory"], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYINFRA_PROGRESS="off"))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert '"token": "**********"' in output
    assert not any(value in output for value in EXAMPLE_SECRETS.values())


def test_render_masked_hides_url_credentials_and_secret_query_values(fleet_dir):
    replace_in(fleet_dir / "group_data" / "consumer_24gb.py", '"http://llm-pool.lan:8000"',
               '"http://llm:pw-s3cret@llm-pool.lan:8000/v1?apikey=key-s3cret&model=a"')
    proc = subprocess.run([LPFLEET, "render", "inventory.py", "gpu-c01.fleet.example", "--masked"], cwd=fleet_dir,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"url": "http://***@llm-pool.lan:8000/v1?apikey=***\\u0026model=a"' in proc.stdout  # tojson escapes &
    assert '"token": "***"' in proc.stdout
    assert "s3cret" not in proc.stdout and EXAMPLE_SECRETS["LPFLEET_BYOC_LLM_TOKEN"] not in proc.stdout


def test_a_missing_template_names_host_and_key_once(fleet_dir):
    (fleet_dir / "group_data" / "all.py").write_text(
        (fleet_dir / "group_data" / "all.py").read_text() + '\nai_models_template = "templates/nope.j2"\n')
    rc, result = validate(fleet_dir, "inventory.py")
    lines = error_lines(result)
    assert rc == 1 and lines[0].startswith("gpu-c01.fleet.example: ai_models_template: templates/nope.j2 not found")
    assert lines[0].count("gpu-c01.fleet.example") == 1 and lines[0].count("ai_models_template") == 1
