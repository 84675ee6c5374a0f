"""register_deploy_file: inspect finds a deploy file's module from its cache; frames and lines are unchanged."""

from __future__ import annotations

import inspect
import sys

from lpfleet.operations.op_order import MODULE_PREFIX, register_deploy_file


def _run_as_deploy_file(path: str) -> tuple[object, inspect.Traceback]:
    """Exec code compiled with `path` as its filename (as pyinfra's exec_file does); return what inspect says of
    the frame that code runs in."""
    seen: dict[str, object] = {}

    def capture():
        frame = sys._getframe(1)
        seen["module"] = inspect.getmodule(frame, inspect.getsourcefile(frame))
        seen["info"] = inspect.getframeinfo(frame)

    code = compile("x = 1\ncapture()\n", path, "exec")
    exec(code, {"capture": capture, "__file__": path})
    return seen["module"], seen["info"]  # type: ignore[return-value]


def test_a_registered_deploy_file_resolves_from_inspects_cache(tmp_path):
    path = tmp_path / "deploy.py"
    path.write_text("x = 1\ncapture()\n")
    before_module, before = _run_as_deploy_file(str(path))
    assert before_module is None  # what made every lookup walk sys.modules

    module = register_deploy_file(str(path))
    try:
        assert register_deploy_file(str(path)) is module  # once per process
        assert sys.modules[MODULE_PREFIX + str(path)] is module
        after_module, after = _run_as_deploy_file(str(path))
        assert after_module is module
        assert inspect.getabsfile(module) in inspect.modulesbyfile  # answered from the cache from now on
        # what pyinfra reads for the operation order is the same
        assert (after.filename, after.lineno, after.code_context) == (before.filename, before.lineno,
                                                                      before.code_context)
        assert after.lineno == 2 and after.code_context == ["capture()\n"]
    finally:
        sys.modules.pop(MODULE_PREFIX + str(path), None)
