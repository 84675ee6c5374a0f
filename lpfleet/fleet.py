"""The fleet: an inventory plus group data, loaded with pyinfra's own loader, every host's spec built.

Three entry points:
- `load_fleet(inventory)`: every host's validated NodeSpec (and rendered aiModels.json
  checked), or a FleetError carrying every problem of every host. `lpfleet validate` uses it.
- `guard_inventory(__file__)`: called at the end of an inventory file. Under the pyinfra CLI
  it loads the whole fleet (with the command line's `--data`/`--group-data`) before pyinfra
  connects to anything, stops the run with every problem when one host is invalid, and
  hands what it built (specs, rendered files, search paths) to the run's FleetPlan.
- `node_plan(host)`: the NodePlan of one pyinfra Host, for deploy code: built once per run
  (by the guard, else on first use). Applies the group data files named by a `group` data
  key, so `pyinfra root@box deploy.py --data group=consumer_24gb` works without an inventory file.

The pyinfra command line is read from click's context (the CLI's own parse), never from sys.argv.
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

import click
from pyinfra.api import State
from pyinfra.api.exceptions import PyinfraError
from pyinfra.context import ctx_state

from lpfleet.fleet_plan import PROJECT_ROOT, FleetPlan, NodePlan, SearchPaths
from lpfleet.render import RenderError, render_ai_models
from lpfleet.spec import NodeSpec, Problem, check_node_spec, format_problems, merge_layers

if TYPE_CHECKING:
    from pyinfra.api import Host, Inventory

__all__ = [
    "PROJECT_ROOT",
    "FleetCheck",
    "FleetError",
    "check_fleet",
    "fleet_plan",
    "group_data_dirs",
    "guard_inventory",
    "load_fleet",
    "node_plan",
    "node_spec",
    "plan_for_spec",
    "template_roots",
]

_loading = False  # set while we load an inventory ourselves: the inventory's guard call must not recurse
#: The one per-run object: each pyinfra State's FleetPlan.
_plans: weakref.WeakKeyDictionary[Any, FleetPlan] = weakref.WeakKeyDictionary()


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
    plan: FleetPlan | None = None  # every valid host's NodePlan, and the search paths used
    # host -> key -> the layer that supplied it ("group x", "host data")
    sources: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem | str]:
        return [p for p in self.problems if isinstance(p, str) or p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if isinstance(p, Problem) and p.severity == "warning"]


def group_data_dirs(inventory_path: str | None = None, extra: Iterable[str] = ()) -> list[Path]:
    """Where group data files are looked up, as pyinfra does: cwd, the inventory's folder, --group-data."""
    return list(SearchPaths.for_inventory(inventory_path, group_data_directories=extra).group_data)


def template_roots(inventory_path: str | None = None) -> list[Path]:
    """Folders an `ai_models_template` path is relative to, first match wins."""
    return list(SearchPaths.for_inventory(inventory_path).templates)


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


def check_host(
    host: Host, dirs: Sequence[Path] | None = None, sources: dict[str, str] | None = None
) -> tuple[NodeSpec | None, list[Problem]]:
    """The host's spec (None on any error) and its problems; `sources` (when given) gets each key's layer."""
    layers, groups, problems = host_layers(host, dirs)
    if sources is not None:
        sources.update(merge_layers(layers)[1])
    spec, spec_problems = check_node_spec(host.name, layers, groups)
    all_problems = list(problems) + spec_problems
    if any(p.severity == "error" for p in all_problems):
        return None, all_problems
    return spec, all_problems


def _cli_params() -> dict[str, Any] | None:
    """The pyinfra CLI's parsed arguments when this process is running it (click's context), else None."""
    ctx = click.get_current_context(silent=True)
    callback = getattr(ctx.command, "callback", None) if ctx is not None else None
    if ctx is None or getattr(callback, "__module__", "") != "pyinfra_cli.cli":
        return None
    return dict(ctx.params)


def _cli_data(params: Mapping[str, Any]) -> dict[str, Any]:
    """`--data k=v` values as pyinfra's CLI parses them; an item without `=` is a ValueError."""
    items = list(params.get("data") or ())
    for item in items:
        if "=" not in item:
            raise ValueError(f"--data {item}: expected KEY=VALUE")
    pairs = [item.split("=", 1) for item in items]
    return {key: parse_cli_arg(value) for key, value in pairs}


def _run_paths(state: State | Inventory) -> SearchPaths:
    """The search paths of a run nobody guarded: the CLI's inventory and --group-data when under the CLI."""
    params = _cli_params() or {}
    deploy_files = [str(op) for op in params.get("operations") or () if str(op).endswith(".py")]
    executing = getattr(state, "current_exec_filename", None)  # the deploy file pyinfra is executing
    if not deploy_files and executing:
        deploy_files = [str(executing)]
    return SearchPaths.for_inventory(
        params.get("inventory"),
        cwd=getattr(state, "cwd", None),
        group_data_directories=params.get("group_data") or (),
        deploy_file=deploy_files[0] if deploy_files else None,
    )


def fleet_plan(state: State | Inventory) -> FleetPlan:
    """The run's FleetPlan: the one the inventory guard built, else a new one for this run."""
    plan = _plans.get(state)
    if plan is None:
        plan = _plans[state] = FleetPlan(_run_paths(state))
    return plan


def node_plan(host: Host) -> NodePlan:
    """The host's NodePlan for this run (deploy code calls this); spec built and aiModels.json rendered once.

    Raises FleetError (a PyinfraError: the CLI prints it and stops) naming host, group, entry, field.
    """
    # a Host of an Inventory no State runs yet (the pyinfra API, tests): the inventory stands for the run
    plan = fleet_plan(getattr(host, "state", None) or host.inventory)
    found = plan.nodes.get(host.name)
    if found is None:
        spec, problems = check_host(host, plan.paths.group_data)
        if spec is None:
            raise FleetError([p for p in problems if p.severity == "error"])
        try:
            text = render_ai_models(spec, plan.paths.template_root(spec))
        except RenderError as exc:  # the inventory guard reports this before connecting when it runs
            raise FleetError([str(exc)]) from None
        found = plan.add(spec, text)
    return found


def plan_for_spec(spec: NodeSpec, state: State) -> NodePlan:
    """A NodePlan for a spec made outside the inventory (the pyinfra API, tests): rendered with the run's
    search paths and part of the run's FleetPlan (its lock, its fleet-wide values), not stored as the host's."""
    plan = fleet_plan(state)
    try:
        return NodePlan(spec, render_ai_models(spec, plan.paths.template_root(spec)), plan)
    except RenderError as exc:
        raise FleetError([str(exc)]) from None


def node_spec(host: Host) -> NodeSpec:
    """The validated spec of a pyinfra Host: `node_plan(host).spec`."""
    return node_plan(host).spec


def check_fleet(
    inventory_path: str,
    override_data: Mapping[str, Any] | None = None,
    group_data_directories: Sequence[str] = (),
) -> FleetCheck:
    """Load the inventory with pyinfra's loader and check every host: spec, then rendered aiModels.json."""
    global _loading
    # imported here: importing pyinfra_cli monkey-patches gevent into the process (the CLI has done it already)
    from pyinfra_cli.exceptions import UnexpectedExternalError
    from pyinfra_cli.inventory import make_inventory
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
    plan = result.plan = FleetPlan(
        SearchPaths.for_inventory(inventory_path, cwd=os.getcwd(), group_data_directories=group_data_directories)
    )
    if not list(inventory):
        result.load_failed = True
        result.problems.append(
            f"{inventory_path}: the inventory holds no host (list hosts in it as pyinfra does, e.g. "
            'gpu_24gb = ["gpu-01.example.net"])'
        )
        return result
    for host in inventory:
        sources: dict[str, str] = {}
        spec, problems = check_host(host, plan.paths.group_data, sources)
        result.sources[host.name] = sources
        result.problems.extend(problems)
        if spec is None:
            continue
        try:
            text = render_ai_models(spec, plan.paths.template_root(spec))
        except RenderError as exc:
            message = str(exc)
            for prefix in (f"{host.name}: ", "ai_models_template: "):  # the Problem names both already
                message = message.removeprefix(prefix)
            result.problems.append(Problem(host.name, None, "ai_models_template", message))
            continue
        result.problems.extend(_overcommit_warnings(spec))
        plan.add(spec, text)
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


def _overcommit_warnings(spec: NodeSpec) -> list[Problem]:
    """A warning per GPU the warm set puts more on than gpu_memory_gb (go-livepeer's slot order)."""
    from lpfleet.placement import node_from_spec, overcommitted_gpus

    key = "ai_models_warm" if spec.placement.warm is not None else "ai_models"
    return [
        Problem(
            spec.host, None, key,
            f"the warm set puts about {load:g} GB on GPU {spec.gpus[gpu] if gpu < len(spec.gpus) else gpu} "
            f"(gpu_memory_gb {spec.gpu_memory_gb:g}; go-livepeer places warm runners in file order, one per "
            "GPU in turn): expect CUDA out of memory; `lpfleet plan-warm` proposes a warm set that fits",
            severity="warning",
        )
        for gpu, load in overcommitted_gpus(node_from_spec(spec))
    ]


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
    """`--data k=v` and `--group-data DIR` from a command line (lpfleet's), parsed as pyinfra's CLI parses them."""
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


def _same_file(a: str, b: str) -> bool:
    return Path(a).is_file() and Path(b).is_file() and Path(a).resolve() == Path(b).resolve()


def guard_inventory(inventory_file: str) -> None:
    """Stop a pyinfra run before it connects anywhere when any host's data is invalid.

    Call it as the last line of an inventory file: `guard_inventory(__file__)`. Only acts
    under the pyinfra CLI (API users call `load_fleet` themselves); prints every problem to
    stderr and exits 1. A valid fleet's plan (specs, rendered files) becomes the run's FleetPlan.
    """
    params = _cli_params()
    if _loading or params is None:
        return
    try:
        data = _cli_data(params)
    except ValueError as exc:
        sys.stderr.write(f"lpfleet: {exc}; no host was connected to\n")
        raise SystemExit(1) from None
    result = check_fleet(inventory_file, data, list(params.get("group_data") or ()))
    if result.load_failed:
        return  # pyinfra's own loading is about to fail on the same file with its traceback
    if not result.errors:
        if ctx_state.isset():
            # the run's plan: this one when this is the inventory pyinfra loads, else (an inventory that imports
            # this one) a new one with the loaded inventory's search paths; here, while click's context is
            # readable (deploy code runs in greenlets that do not see it)
            running = params.get("inventory")
            if result.plan is not None and running and _same_file(running, inventory_file):
                _plans[ctx_state.get()] = result.plan
            else:
                _plans[ctx_state.get()] = FleetPlan(_run_paths(ctx_state.get()))
        return
    lines = format_problems(result.errors)
    sys.stderr.write(
        f"lpfleet: invalid fleet data in {inventory_file}; no host was connected to:\n"
        + "".join(f"  {line}\n" for line in lines)
    )
    sys.stderr.flush()
    raise SystemExit(1)
