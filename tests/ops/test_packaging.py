"""lpfleet as a real tool: the wheel, installed into a fresh virtualenv outside the checkout, writes a starter
fleet (`lpfleet init`) that validates and that `pyinfra --dry` plans with the installed deploy steps.

The wheel is built from a copy of the working tree (pip's isolated build: it fetches setuptools from the
configured index). The fresh venv gets its dependencies (pyinfra, pydantic, ...) from this venv through a
.pth line, and lpfleet itself only from the wheel: the checkout is never on its path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from lpfleet.fleet import PROJECT_ROOT

IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    ".sandbox",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    "reports",
)


def run(argv: list[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    environment.update(PYINFRA_PROGRESS="off", **env)
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with lpfleet installed from its wheel; returns its bin folder."""
    root = tmp_path_factory.mktemp("packaging")
    source = root / "src"
    shutil.copytree(PROJECT_ROOT, source, ignore=IGNORE, symlinks=True)
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", root / "wheels", source], root, 600
    )
    wheels = list((root / "wheels").glob("lpfleet-*.whl"))
    assert built.returncode == 0 and len(wheels) == 1, built.stdout + built.stderr
    made = run([sys.executable, "-m", "venv", root / "fresh"], root)
    assert made.returncode == 0, made.stderr
    fresh_site = Path(
        run(
            [
                root / "fresh" / "bin" / "python",
                "-c",
                "import sysconfig; print(sysconfig.get_paths()['purelib'])",
            ],
            root,
        ).stdout.strip()
    )
    (fresh_site / "lpfleet_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(
        [
            root / "fresh" / "bin" / "python",
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            wheels[0],
        ],
        root,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return root / "fresh" / "bin"


def test_the_wheel_ships_templates_starter_and_tasks(installed, tmp_path):
    where = run(
        [installed / "python", "-c", "import lpfleet, tasks; print(lpfleet.__file__); print(tasks.__file__)"],
        tmp_path,
    )
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert str(installed.parent) in line and str(PROJECT_ROOT) not in line
    version = run([installed / "lpfleet", "--version"], tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("lpfleet ")


def test_init_validate_and_a_dry_plan_outside_the_checkout(installed, tmp_path):
    lpfleet = installed / "lpfleet"
    made = run([lpfleet, "init", "myfleet"], tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    fleet = tmp_path / "myfleet"
    for name in (
        "inventory.py",
        "group_data/all.py",
        "group_data/gpu_24gb.py",
        "deploy.py",
        "verify.py",
        "templates/aiModels.json.j2",
        ".github/workflows/fleet.yml",
        "README.md",
    ):
        assert (fleet / name).is_file(), name

    validated = run([lpfleet, "validate", "inventory.py"], fleet)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert validated.stdout.strip().endswith("inventory.py: 1 host(s) valid")
    rendered = run([lpfleet, "render", "inventory.py", "gpu-01.example.net"], fleet)
    assert rendered.returncode == 0 and '"model_id": "ByteDance/SDXL-Lightning"' in rendered.stdout

    # a dry plan on this machine (@local: facts only, nothing changes) with the fleet's own group data; no models,
    # so the lock can be written without a hub
    no_models = ["--data", "ai_models=[]"]
    locked = run([lpfleet, "lock", "inventory.py", *no_models], fleet)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    # (pyinfra itself lives in the dependencies this venv borrows: run it as a module)
    plan = run(
        [
            installed / "python",
            "-m",
            "pyinfra",
            "-y",
            "--dry",
            "@local",
            "deploy.py",
            "--data",
            "group=gpu_24gb",
            *no_models,
        ],
        fleet,
        300,
    )
    output = plan.stdout + plan.stderr
    assert plan.returncode == 0, output
    assert (
        "[@local] Ready: deploy.py" in output and "Traceback" not in output and "error" not in output.lower()
    )

    # init refuses to overwrite the fleet it wrote
    again = run([lpfleet, "init", "myfleet"], tmp_path)
    assert again.returncode == 1 and "nothing written" in again.stderr


def test_the_starter_files_are_the_projects_own():
    """The starter's deploy.py/verify.py are the checkout's, and its CI workflow is examples/ci's: one of each."""
    starter = PROJECT_ROOT / "lpfleet" / "starter"
    assert (starter / "deploy.py").read_text() == (PROJECT_ROOT / "deploy.py").read_text()
    assert (starter / "verify.py").read_text() == (PROJECT_ROOT / "verify.py").read_text()
    assert (starter / "github" / "workflows" / "fleet.yml").read_text() == (
        PROJECT_ROOT / "examples" / "ci" / "github-actions.yml"
    ).read_text()
