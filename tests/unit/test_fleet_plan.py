"""The run's FleetPlan through the real pyinfra CLI: one search path list for the guard, `lpfleet validate` and the
deploy; each host's spec built and aiModels.json rendered once per run.

Each test runs pyinfra in its own process (importing pyinfra_cli monkey-patches gevent into the importing
process), from a folder outside the checkout, on an inventory outside the checkout.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lpfleet.fleet_plan import PACKAGE_ROOT, PROJECT_ROOT, FleetPlan, SearchPaths
from lpfleet.render import render_ai_models
from lpfleet.secrets import Secret
from lpfleet.spec import build_node_spec

BIN = Path(sys.executable).parent

# One line per entry and a fixed key order: not the layout of the checkout's templates.
CUSTOM_TEMPLATE = (
    "[{% for e in entries %}{\"pipeline\": {{ e.pipeline | tojson }}, \"model_id\": {{ e.model_id | tojson }}, "
    "\"url\": {{ e.url | tojson }}, \"price_per_unit\": {{ e.price_per_unit | tojson }}}"
    "{{ \",\" if not loop.last }}\n{% endfor %}]\n"
)

# External entries only: no weights to fetch, so models.lock may be empty.
GROUP_DATA = """
ai_models = [
    {{"pipeline": "llm", "model_id": "acme/llm-0", "url": "http://llm.lan:8000", "price_per_unit": 18}},
    {{"pipeline": "llm", "model_id": "acme/llm-1", "url": "http://llm.lan:8001", "price_per_unit": 18}},
]
ai_models_template = "custom/aiModels.custom.json.j2"
ai_models_path = {path!r}
"""

COUNTING_PYINFRA = """
import atexit, json, os, sys

import lpfleet.render
import lpfleet.spec

counts = {"spec": [], "render": []}
check_node_spec, render_ai_models = lpfleet.spec.check_node_spec, lpfleet.render.render_ai_models


def counted_check(host, *args, **kwargs):
    counts["spec"].append(host)
    return check_node_spec(host, *args, **kwargs)


def counted_render(spec, *args, **kwargs):
    counts["render"].append(spec.host)
    return render_ai_models(spec, *args, **kwargs)


lpfleet.spec.check_node_spec, lpfleet.render.render_ai_models = counted_check, counted_render
atexit.register(lambda: open(os.environ["LPFLEET_TEST_COUNTS"], "w").write(json.dumps(counts)))

from pyinfra_cli.main import main

sys.argv[0] = "pyinfra"
main()
"""


def make_fleet(root: Path, hosts: list[str], out: Path) -> Path:
    """An inventory outside the checkout, its group data, its own template beside it, and an empty lock."""
    fleet = root / "fleet"
    (fleet / "group_data").mkdir(parents=True)
    (fleet / "custom").mkdir()
    (fleet / "inventory.py").write_text(
        f"boxes = {hosts!r}\n\nfrom lpfleet.fleet import guard_inventory  # noqa: E402\n\nguard_inventory(__file__)\n"
    )
    (fleet / "group_data" / "boxes.py").write_text(GROUP_DATA.format(path=str(out)))
    (fleet / "custom" / "aiModels.custom.json.j2").write_text(CUSTOM_TEMPLATE)
    (fleet / "models.lock").write_text("version: 1\nmodels: []\n")
    return fleet


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYINFRA_PROGRESS="off", PYINFRA_FAKE_DELAY="0", PYINFRA_FAKE_DELAY_JITTER="0",
                    **(env or {}))
    return subprocess.run(list(args), cwd=cwd, env=full_env, capture_output=True, text=True, timeout=180)


def test_search_paths_put_the_inventory_folder_before_the_checkout(tmp_path):
    inventory = tmp_path / "fleet" / "inventory.py"
    inventory.parent.mkdir()
    inventory.write_text("")
    paths = SearchPaths.for_inventory(str(inventory), cwd=tmp_path / "elsewhere", group_data_directories=["extra"])
    assert paths.templates == (tmp_path / "elsewhere", tmp_path / "fleet", tmp_path, PROJECT_ROOT, PACKAGE_ROOT)
    assert paths.group_data == (
        tmp_path / "elsewhere" / "group_data", tmp_path / "fleet" / "group_data", Path("extra"),
        PROJECT_ROOT / "group_data",
    )
    assert paths.base == tmp_path / "fleet"  # a relative models_lock is the inventory's


def test_a_node_plan_never_shows_the_tokens_it_holds():
    token = "byoc-token-in-the-rendered-file"
    spec = build_node_spec("gpu-1", [("group g", {"ai_models": [
        {"pipeline": "llm", "model_id": "acme/llm", "url": "http://llm.lan:8000", "token": Secret(token),
         "price_per_unit": 1},
    ]})], ("g",))
    plan = FleetPlan(SearchPaths.for_inventory()).add(spec, render_ai_models(spec, PROJECT_ROOT))
    assert token in plan.ai_models_json  # the real file
    assert token not in repr(plan) and token not in str(plan)


def test_a_template_beside_an_inventory_outside_the_checkout_validates_and_deploys(tmp_path):
    out = tmp_path / "node" / "aiModels.json"
    fleet = make_fleet(tmp_path, ["@local"], out)
    elsewhere = tmp_path / "elsewhere"  # the cwd: neither the checkout nor the inventory's folder
    elsewhere.mkdir()

    validated = run(elsewhere, str(BIN / "lpfleet"), "validate", "--json", str(fleet / "inventory.py"))
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert json.loads(validated.stdout)["ok"]

    (fleet / "deploy_config.py").write_text(textwrap.dedent("""
        from pyinfra import host

        from lpfleet.fleet import node_plan
        from tasks.models_config import write_ai_models_config

        write_ai_models_config(node_plan(host))
    """))
    deployed = run(elsewhere, str(BIN / "pyinfra"), "-y", str(fleet / "inventory.py"), str(fleet / "deploy_config.py"))
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    text = out.read_text()
    assert text == (
        '[{"pipeline": "llm", "model_id": "acme/llm-0", "url": "http://llm.lan:8000", "price_per_unit": 18},\n'
        '{"pipeline": "llm", "model_id": "acme/llm-1", "url": "http://llm.lan:8001", "price_per_unit": 18}\n]\n'
    )  # the custom template's layout, not the checkout's
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


@pytest.mark.parametrize("deploy", ["deploy.py", "verify.py"])
def test_each_spec_build_and_render_happens_once_per_host_per_run(tmp_path, deploy):
    """deploy.py's six steps (and verify.py) on three hosts, planned by pyinfra (`--dry`): the inventory guard
    builds and renders every host once, and no step builds or renders again."""
    hosts = ["@fake/a", "@fake/b", "@fake/c"]
    fleet = make_fleet(tmp_path, hosts, tmp_path / "aiModels.json")
    counts_file = tmp_path / "counts.json"
    result = run(
        tmp_path, sys.executable, "-c", COUNTING_PYINFRA, "-y", "--dry", str(fleet / "inventory.py"),
        str(PROJECT_ROOT / deploy), env={"LPFLEET_TEST_COUNTS": str(counts_file), "LPFLEET_VERIFY_TABLE": "0"},
    )
    output = result.stdout + result.stderr
    for host in hosts:  # every host's deploy code ran to its end
        assert f"[{host}] Ready: {PROJECT_ROOT / deploy}" in output, output[-3000:]
    assert "Starting operation" not in output, output[-3000:]
    counts = json.loads(counts_file.read_text())
    assert sorted(counts["spec"]) == hosts, output[-3000:]
    assert sorted(counts["render"]) == hosts, output[-3000:]


def test_an_inventory_that_loads_another_deploys_with_its_own_data(tmp_path):
    """The guard of an imported inventory validates it, but the run's plan is the inventory pyinfra loads."""
    fleet = make_fleet(tmp_path, ["@local"], tmp_path / "node" / "base.json")
    wanted = tmp_path / "node" / "overridden.json"
    (fleet / "overridden.py").write_text(textwrap.dedent(f"""
        import importlib.util as _u
        _s = _u.spec_from_file_location("_base", {str(fleet / "inventory.py")!r})
        _m = _u.module_from_spec(_s)
        _s.loader.exec_module(_m)
        boxes = [(name, {{"ai_models_path": {str(wanted)!r}}}) for name in _m.boxes]
    """))
    (fleet / "deploy_config.py").write_text(
        "from pyinfra import host\n\nfrom lpfleet.fleet import node_plan\nfrom tasks.models_config import "
        "write_ai_models_config\n\nwrite_ai_models_config(node_plan(host))\n"
    )
    deployed = run(tmp_path, str(BIN / "pyinfra"), "-y", str(fleet / "overridden.py"), str(fleet / "deploy_config.py"))
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    assert wanted.is_file() and not (tmp_path / "node" / "base.json").exists()
