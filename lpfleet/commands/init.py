"""`lpfleet init DIR`: write a starter fleet repository that validates at once.

DIR gets inventory.py (one example host), group_data/all.py and one GPU-class group,
templates/aiModels.json.j2, thin deploy.py and verify.py that call lpfleet's steps,
.github/workflows/fleet.yml (validate, lock, plan, rollout, verify) and a README. Works with a
pip-installed lpfleet: nothing refers to lpfleet's own checkout.
Never overwrites a file: exit 1 naming the files already there (`--force` replaces them). Exit 0 written.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path
from typing import Any

#: Where each starter file goes in the new repository (package data name -> path in DIR).
STARTER_FILES: dict[str, str] = {
    "starter/inventory.py": "inventory.py",
    "starter/group_data/all.py": "group_data/all.py",
    "starter/group_data/gpu_24gb.py": "group_data/gpu_24gb.py",
    "starter/deploy.py": "deploy.py",
    "starter/verify.py": "verify.py",
    "starter/README.md": "README.md",
    "starter/gitignore": ".gitignore",
    "starter/github/workflows/fleet.yml": ".github/workflows/fleet.yml",
    "templates/aiModels.json.j2": "templates/aiModels.json.j2",
    "templates/aiModels.compact.json.j2": "templates/aiModels.compact.json.j2",
}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "init",
        help="write a starter fleet repository into DIR",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", metavar="DIR", help="folder to write into (created when missing)")
    parser.add_argument(
        "--force", action="store_true", help="replace starter files that already exist in DIR"
    )
    parser.set_defaults(func=run)


def starter_text(name: str) -> str:
    return resources.files("lpfleet").joinpath(name).read_text(encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    target = Path(args.directory)
    if target.exists() and not target.is_dir():
        print(
            f"lpfleet init: {target} is a file, not a folder (give a new or existing folder)", file=sys.stderr
        )
        return 1
    existing = [dest for dest in STARTER_FILES.values() if (target / dest).exists()]
    if existing and not args.force:
        print(
            f"lpfleet init: {target} already has {', '.join(existing)}; nothing written "
            "(--force replaces them)",
            file=sys.stderr,
        )
        return 1
    for name, dest in STARTER_FILES.items():
        path = target / dest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(starter_text(name), encoding="utf-8")
    print(f"{target}: starter fleet written ({len(STARTER_FILES)} files). Next:")
    print(f"  cd {target}")
    print("  lpfleet validate inventory.py          # checks every host's settings, contacts nothing")
    print(
        "  edit inventory.py (your hosts) and group_data/*.py (models, prices), "
        "then lpfleet lock inventory.py"
    )
    return 0
