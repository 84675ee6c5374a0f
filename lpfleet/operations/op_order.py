"""Keep pyinfra's per-operation stack reading cheap: give the deploy file a module entry that `inspect` can find.

Why: in CLI mode pyinfra orders each operation by the call stack's line numbers, read with `inspect.stack()` and
`inspect.getframeinfo()` for every frame, twice per operation (pyinfra/api/util.py,
`get_operation_order_from_stack`). For a frame `inspect.getmodule` answers from a file -> module cache, but a deploy
file is `exec()`-ed by pyinfra (pyinfra_cli/util.py `exec_file`), so no module has that file, the lookup misses
and CPython walks the whole of `sys.modules` (~800 modules here) on every call (python/cpython#92041). With ~20
operations per host that was ~4 ms of controller CPU per operation on a no-op converge.

`register_deploy_file(__file__)` at the top of a deploy file adds one empty module whose `__file__` is that file,
so the cache answers. Nothing else changes: the frames, their line numbers (so pyinfra's operation order and
hashes), the source lines `inspect` reads and tracebacks are the same; the module holds no code.
"""

from __future__ import annotations

import os
import sys
import types

MODULE_PREFIX = "lpfleet-deploy-file:"


def register_deploy_file(path: str) -> types.ModuleType:
    """The module entry of deploy file `path` (added to sys.modules once per process)."""
    absolute = os.path.abspath(path)
    name = MODULE_PREFIX + absolute
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name, "placeholder so inspect.getmodule finds this deploy file (op_order)")
        module.__file__ = absolute
        sys.modules[name] = module
    return module
