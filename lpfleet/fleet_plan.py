"""The plan of one pyinfra run: every host's spec, rendered aiModels.json and models.lock, each made once.

Pure: no pyinfra, no network; it reads the models.lock file when a step first asks for it. `lpfleet.fleet` builds
one `FleetPlan` per pyinfra run (the inventory guard hands over what it already validated and rendered) and
deploy code asks it for a host's `NodePlan`; tasks take that plan and read everything from it. The search paths
here are the only ones: the guard, `lpfleet validate`, `lpfleet render` and the deploy itself look up templates,
group data and a relative `models_lock` in the same folders.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lpfleet.lock import LockedModel, LockError, ModelsLock, load, models_for_node
from lpfleet.spec import NodeSpec

#: The checkout holding deploy.py, templates/ and group_data/ (where the lpfleet package lives).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The installed package: `templates/` ships inside it, so `ai_models_template = "templates/aiModels.json.j2"`
#: resolves in a fleet repository that has no templates of its own (pip-installed lpfleet).
PACKAGE_ROOT = Path(__file__).resolve().parent

T = TypeVar("T")


def _unique(paths: Iterable[Path]) -> tuple[Path, ...]:
    out: list[Path] = []
    for path in paths:
        if path.resolve() not in [o.resolve() for o in out]:
            out.append(path)
    return tuple(out)


@dataclass(frozen=True)
class SearchPaths:
    """Where a run looks things up, first match wins.

    Group data (as pyinfra does): cwd, the inventory's folder, `--group-data` folders, then the checkout.
    Templates (`ai_models_template` is relative to one of them): cwd, the inventory's folder and its parent,
    then the checkout, then the installed package (which ships `templates/`). A relative `models_lock`: the inventory's folder (else the deploy file's, else cwd).
    """

    group_data: tuple[Path, ...]
    templates: tuple[Path, ...]
    base: Path  # what a relative models_lock is relative to

    @classmethod
    def for_inventory(
        cls,
        inventory_path: str | None = None,
        *,
        cwd: str | Path | None = None,
        group_data_directories: Iterable[str | Path] = (),
        deploy_file: str | None = None,
    ) -> SearchPaths:
        here = Path(cwd) if cwd else Path.cwd()
        inventory_dir = (
            Path(inventory_path).resolve().parent if inventory_path and Path(inventory_path).is_file() else None
        )
        group_data = [here / "group_data"]
        templates = [here]
        if inventory_dir is not None:
            group_data.append(inventory_dir / "group_data")
            templates += [inventory_dir, inventory_dir.parent]
        group_data.extend(Path(d) for d in group_data_directories)
        group_data.append(PROJECT_ROOT / "group_data")
        templates += [PROJECT_ROOT, PACKAGE_ROOT]
        if inventory_dir is not None:
            base = inventory_dir
        elif deploy_file and Path(deploy_file).is_file():
            base = Path(deploy_file).resolve().parent
        else:
            base = here
        return cls(_unique(group_data), tuple(templates), base)

    def template_root(self, spec: NodeSpec) -> Path:
        """The first folder holding the spec's template (the checkout when none does: render names it)."""
        for root in self.templates:
            if (root / spec.ai_models_template).is_file():
                return root
        return self.templates[-1]

    def lock_path(self, spec: NodeSpec) -> Path:
        path = Path(spec.weights.lock_file)
        return path if path.is_absolute() else self.base / path


@dataclass(frozen=True)
class NodePlan:
    """One host's part of the run: its validated spec and its aiModels.json, rendered and checked once."""

    spec: NodeSpec
    ai_models_json: str = field(repr=False)  # holds the entries' tokens: only ever written as a secret file
    fleet: FleetPlan = field(repr=False, compare=False)
    #: Node state gathered once and shared by several steps (the container host snapshot), keyed by the asker.
    facts: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ai_models_sha256(self) -> str:
        return hashlib.sha256(self.ai_models_json.encode("utf-8")).hexdigest()

    def lock(self) -> ModelsLock:
        """The run's models.lock for this host; LockError saying what to do when it is missing or unreadable."""
        return self.fleet.lock(self.fleet.paths.lock_path(self.spec))

    def locked_models(self) -> list[LockedModel]:
        """What models.lock pins for this host; LockError when the lock does not cover every model."""
        found, missing = models_for_node(self.lock(), self.spec)
        if missing:
            names = ", ".join(f"{r.model_id} ({r.revision})" for r in missing)
            raise LockError(
                f"{self.spec.host}: models.lock does not cover {names}; run `lpfleet lock` "
                "(the lock must be current before any node is changed)"
            )
        return found


class FleetPlan:
    """Everything one pyinfra run plans, per host and fleet-wide. Built once per run by `lpfleet.fleet`."""

    def __init__(self, paths: SearchPaths) -> None:
        self.paths = paths
        self.nodes: dict[str, NodePlan] = {}
        self._locks: dict[Path, ModelsLock | LockError] = {}
        self._run: dict[str, Any] = {}

    def add(self, spec: NodeSpec, ai_models_json: str) -> NodePlan:
        plan = NodePlan(spec, ai_models_json, self)
        self.nodes[spec.host] = plan
        return plan

    def lock(self, path: Path) -> ModelsLock:
        """models.lock at `path`, read once per run; LockError when missing or unreadable."""
        if path not in self._locks:
            try:
                self._locks[path] = load(path.read_text(), str(path))
            except FileNotFoundError:
                self._locks[path] = LockError(f"{path} not found; run `lpfleet lock` for this inventory first")
            except LockError as exc:
                self._locks[path] = exc
        found = self._locks[path]
        if isinstance(found, LockError):
            raise found
        return found

    def restart_batch_size(self, specs: Sequence[NodeSpec]) -> int:
        """The smallest docker_restart_batch_size of the hosts: pyinfra's `_parallel` is one value per operation."""
        return max(1, min(spec.docker.restart_batch_size for spec in specs)) if specs else 1

    def run_state(self, key: str, make: Callable[[], T]) -> T:
        """A run-wide value a step keeps for the run (verification's results, the restart batch size), made on
        first use."""
        if key not in self._run:
            self._run[key] = make()
        return self._run[key]

    def existing_run_state(self, key: str) -> Any | None:
        return self._run.get(key)
