"""The fleet: an inventory plus group data, loaded with pyinfra's own loader, every host's spec built.

Three entry points:
- `load_fleet(inventory)`: every host's validated NodeSpec (and rendered aiModels.json
  checked), or a FleetError carrying every problem of every host. `lpfleet validate` uses it.
- `guard_inventory(__file__)`: called at the end of an inventory file. Under the pyinfra CLI
  it loads the whole fleet (with the command line's `--data`/`--group-data`) before pyinfra
  connects to anything, and stops the run with every problem when one host is invalid.
- `node_spec(host)`: the spec of one pyinfra Host, for deploy code. Applies the group data
  files named by a `group` data key, so `pyinfra root@box deploy.py --data group=consumer_24gb`
  works without an inventory file.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import sys
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyinfra.api.exceptions import PyinfraError

from lpfleet.render import RenderError, render_ai_models
from lpfleet.spec import NodeSpec, Problem, check_node_spec, format_problems, merge_layers

if TYPE_CHECKING:
    from pyinfra.api import Host, Inventory

#: The checkout holding deploy.py, templates/ and group_data/ (where the lpfleet package lives).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: The installed package: `templates/` ships inside it, so `ai_models_template = "templates/aiModels.json.j2"`
#: resolves in a fleet repository that has no templates of its own (pip-installed lpfleet).
PACKAGE_ROOT = Path(__file__).resolve().parent

_loading = False  # set while we load an inventory ourselves: the inventory's guard call must not recurse
_specs: weakref.WeakKeyDictionary[Any, NodeSpec] = weakref.WeakKeyDictionary()


class FleetError(PyinfraError):
    """One or more hosts have invalid data; `problems` holds every one, `str()` one per line."""

    def __init__(self, problems: Sequence[Problem | str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(format_problems(self.problems)))


@dataclass
class FleetCheck:
    """Every host's spec (for the valid ones) and every problem found, warnings included."""

    specs: dict[str, NodeSpec] = field(default_factory=dict)
    problems: list[Problem | str] = field(default_factory=list)
    load_failed: bool = False  # the inventory or a group data file raised

    @property
    def errors(self) -> list[Problem | str]:
        return [p for p in self.problems if isinstance(p, str) or p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if isinstance(p, Problem) and p.severity == "warning"]


def group_data_dirs(inventory_path: str | None = None, extra: Iterable[str] = ()) -> list[Path]:
    """Where group data files are looked up, as pyinfra does: cwd, the inventory's folder, --group-data."""
    dirs = [Path.cwd() / "group_data"]
    if inventory_path and Path(inventory_path).exists():
        dirs.append(Path(inventory_path).resolve().parent / "group_data")
    dirs.extend(Path(d) for d in extra)
    dirs.append(PROJECT_ROOT / "group_data")
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def template_roots(inventory_path: str | None = None) -> list[Path]:
    """Folders an `ai_models_template` path is relative to, first match wins."""
    roots = [Path.cwd()]
    if inventory_path and Path(inventory_path).exists():
        parent = Path(inventory_path).resolve().parent
        roots += [parent, parent.parent]
    roots.append(PROJECT_ROOT)
    roots.append(PACKAGE_ROOT)
    return roots


def template_root_for(spec: NodeSpec, roots: Sequence[Path]) -> Path:
    for root in roots:
        if (root / spec.ai_models_template).is_file():
            return root
    return roots[-1]


def _imported_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names if alias.name != "*")
    return names


def _load_group_file(path: Path) -> dict[str, Any]:
    """A group data file's data exactly as pyinfra 3.10's CLI reads it (`__all__`, else every
    top-level name but imported ones and dunders).

    Re-implemented rather than imported: importing pyinfra_cli monkey-patches gevent into
    whatever process imports it (deploy code run through the API, test sessions).
    """
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    attrs: dict[str, Any] = {"__file__": str(path)}
    exec(compile(tree, str(path), "exec"), attrs)  # noqa: S102 - group data files are Python by design
    keys = set(attrs["__all__"]) if "__all__" in attrs else set(attrs) - _imported_names(tree)
    return {k: v for k, v in attrs.items() if k in keys and not k.startswith("__")}


def _named_groups(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()]
    if isinstance(value, (list, tuple)):
        return [str(g) for g in value]
    return [str(value)]


def host_layers(
    host: Host, dirs: Sequence[Path] | None = None
) -> tuple[list[tuple[str, Mapping[str, Any]]], list[str], list[Problem]]:
    """The host's data layers, highest precedence first, labelled with where they come from.

    Order as pyinfra's HostData: --data overrides, host data, groups (later wins), all.
    Groups named by a `group` data key (bootstrap) rank just below host data.
    """
    inventory: Inventory = host.inventory
    override = dict(inventory.get_override_data() or {})
    host_data = dict(inventory.get_host_data(host.name) or {})
    groups: list[str] = []
    for g in reversed(list(host.groups)):
        if g not in groups:
            groups.append(g)  # highest precedence first
    group_layers = [(f"group {g}", inventory.get_group_data(g)) for g in groups]
    all_layer = ("group all", inventory.get_data() or {})

    problems: list[Problem] = []
    named_layers: list[tuple[str, Mapping[str, Any]]] = []
    pre, sources = merge_layers([("--data", override), ("host data", host_data), *group_layers, all_layer])
    dirs = list(dirs) if dirs is not None else group_data_dirs()
    for name in reversed(_named_groups(pre.get("group"))):  # the last named group wins, like --data order
        if name in groups or name == "all":
            continue
        path = next((d / f"{name}.py" for d in dirs if (d / f"{name}.py").is_file()), None)
        if path is None:
            where = ", ".join(str(d) for d in dirs)
            problems.append(Problem(host.name, sources.get("group"), "group", f"no group data file {name}.py in {where}"))
            continue
        named_layers.append((f"group {name}", _load_group_file(path)))
        groups.insert(0, name)
    layers = [("--data", override), ("host data", host_data), *named_layers, *group_layers, all_layer]
    ordered_groups = [g for g in reversed(groups)]
    return layers, ordered_groups, problems


def check_host(host: Host, dirs: Sequence[Path] | None = None) -> tuple[NodeSpec | None, list[Problem]]:
    layers, groups, problems = host_layers(host, dirs)
    spec, spec_problems = check_node_spec(host.name, layers, groups)
    all_problems = list(problems) + spec_problems
    if any(p.severity == "error" for p in all_problems):
        return None, all_problems
    return spec, all_problems


def node_spec(host: Host) -> NodeSpec:
    """The validated spec of a pyinfra Host (deploy code calls this); built once per Host object.

    Raises FleetError (a PyinfraError: the CLI prints it and stops) naming host, group, entry, field.
    """
    spec = _specs.get(host)
    if spec is None:
        state = getattr(host, "state", None)
        cwd = getattr(state, "cwd", None)
        dirs = group_data_dirs(None) if not cwd else _dedupe([Path(cwd) / "group_data", *group_data_dirs(None)])
        spec, problems = check_host(host, dirs)
        if spec is None:
            raise FleetError([p for p in problems if p.severity == "error"])
        _specs[host] = spec
    return spec


def _dedupe(dirs: Sequence[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        if d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def check_fleet(
    inventory_path: str,
    override_data: Mapping[str, Any] | None = None,
    group_data_directories: Sequence[str] = (),
) -> FleetCheck:
    """Load the inventory with pyinfra's loader and check every host: spec, then rendered aiModels.json."""
    global _loading
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    from pyinfra_cli.exceptions import UnexpectedExternalError
    from pyinfra_cli.util import PYTHON_CODES

    result = FleetCheck()
    problem = inventory_file_problem(inventory_path)
    if problem:
        result.load_failed = True
        result.problems.append(problem)
        return result
    # pyinfra caches compiled inventory/group data code by file name for the life of the process:
    # drop it so an edited file (or another folder's file of the same relative name) is read afresh
    PYTHON_CODES.clear()
    previous, _loading = _loading, True
    try:
        # the CLI's loader records the file it executes on the current State: lend it one outside the CLI
        with contextlib.nullcontext() if ctx_state.isset() else ctx_state.use(State()):
            inventory = make_inventory(
                inventory_path,
                override_data=dict(override_data or {}),
                cwd=os.getcwd(),
                group_data_directories=list(group_data_directories) or None,
            )
    except UnexpectedExternalError as exc:
        result.load_failed = True
        result.problems.append(
            f"{inventory_path}: cannot load the inventory: {exc.filename} raised "
            f"{exc.exception.__class__.__name__}: {exc.exception}"
        )
        return result
    except Exception as exc:  # noqa: BLE001 - report it like the rest, one line
        result.load_failed = True
        result.problems.append(f"{inventory_path}: cannot load the inventory: {exc.__class__.__name__}: {exc}")
        return result
    finally:
        _loading = previous
    dirs = group_data_dirs(inventory_path, group_data_directories)
    roots = template_roots(inventory_path)
    if not list(inventory):
        result.load_failed = True
        result.problems.append(
            f"{inventory_path}: the inventory holds no host (list hosts in it as pyinfra does, e.g. "
            'gpu_24gb = ["gpu-01.example.net"])'
        )
        return result
    for host in inventory:
        spec, problems = check_host(host, dirs)
        result.problems.extend(problems)
        if spec is None:
            continue
        try:
            render_ai_models(spec, template_root_for(spec, roots))
        except RenderError as exc:
            message = str(exc)
            for prefix in (f"{host.name}: ", "ai_models_template: "):  # the Problem names both already
                message = message[len(prefix):] if message.startswith(prefix) else message
            result.problems.append(Problem(host.name, None, "ai_models_template", message))
            continue
        result.specs[host.name] = spec
    return result


def inventory_file_problem(inventory_path: str) -> str | None:
    """Why `inventory_path` cannot be an inventory file (missing, a folder), or None.

    Every command that takes an inventory checks this first: a typo in the path must not read as
    "0 hosts, all valid" (or let `lpfleet lock` write an empty lock).
    """
    path = Path(inventory_path)
    if path.is_dir():
        return f"{inventory_path}: is a folder, not an inventory file (give the path of your inventory.py)"
    if not path.is_file():
        return (
            f"{inventory_path}: no such inventory file (give the path of your inventory.py; "
            "lpfleet init DIR writes a starter fleet)"
        )
    return None


def load_fleet(
    inventory_path: str,
    override_data: Mapping[str, Any] | None = None,
    group_data_directories: Sequence[str] = (),
) -> dict[str, NodeSpec]:
    """Every host's validated spec by host name; FleetError with every problem of every host."""
    result = check_fleet(inventory_path, override_data, group_data_directories)
    if result.errors:
        raise FleetError(result.errors)
    return result.specs


def _running_pyinfra_cli() -> bool:
    return Path(sys.argv[0]).name in ("pyinfra", "pyinfra.exe") and "pyinfra_cli.main" in sys.modules


def parse_cli_arg(value: str) -> Any:
    """A `--data` value as pyinfra 3.10's CLI parses it: true/false, int, JSON, else the string."""
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return json.loads(value)
    except ValueError:
        return value


def cli_overrides(argv: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """`--data k=v` and `--group-data DIR` from a pyinfra command line, parsed as the CLI parses them."""
    data: dict[str, Any] = {}
    dirs: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        for flag, sink in (("--data", "data"), ("--group-data", "dirs")):
            value = None
            if arg == flag and i + 1 < len(args):
                value = args[i + 1]
                i += 1
            elif arg.startswith(flag + "="):
                value = arg[len(flag) + 1 :]
            if value is None:
                continue
            if sink == "data" and "=" in value:
                key, raw = value.split("=", 1)
                data[key] = parse_cli_arg(raw)
            elif sink == "data":
                raise ValueError(f"--data {value}: expected KEY=VALUE")
            elif sink == "dirs":
                dirs.append(value)
        i += 1
    return data, dirs


def guard_inventory(inventory_file: str) -> None:
    """Stop a pyinfra run before it connects anywhere when any host's data is invalid.

    Call it as the last line of an inventory file: `guard_inventory(__file__)`. Only acts
    under the pyinfra CLI (API users call `load_fleet` themselves); prints every problem to
    stderr and exits 1.
    """
    if _loading or not _running_pyinfra_cli():
        return
    try:
        data, dirs = cli_overrides(sys.argv[1:])
    except ValueError as exc:
        sys.stderr.write(f"lpfleet: {exc}; no host was connected to\n")
        raise SystemExit(1) from None
    result = check_fleet(inventory_file, data, dirs)
    if not result.errors or result.load_failed:
        return  # valid; or pyinfra's own loading is about to fail on the same file with its traceback
    lines = format_problems(result.errors)
    sys.stderr.write(
        f"lpfleet: invalid fleet data in {inventory_file}; no host was connected to:\n"
        + "".join(f"  {line}\n" for line in lines)
    )
    sys.stderr.flush()
    raise SystemExit(1)
