"""What a node's models dir holds, in ONE round-trip: the weights step's only check on a complete node.

The fact ships `lpfleet.hub.scan_models_dir` (stdlib only) to the node and runs it with the node's python3, for
the repos and commits models.lock names. No hashing here: a blob counts as verified when lpfleet's verification
record names it with the same stamp (size, mtime, ctime, inode); anything rewritten since is hashed again by the
fetch step (see `lpfleet.weights`). It also reports the node's python3 version and whether the weights runtime
(lpfleet + huggingface_hub, shipped by the controller) is installed, so the step knows what it must upload.
"""

from __future__ import annotations

import base64
import inspect
import json
import zlib
from functools import lru_cache
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

MARKER = "@@lpfleet-weights-scan "

_MAIN = '''
import base64 as _b64, json as _j, os as _o, sys as _s
_p = _j.loads(_b64.b64decode(_s.argv[1]))
_r = scan_models_dir(_p["models_dir"], _p["wanted"])
_r["python"] = "%d.%d.%d" % _s.version_info[:3]
_r["runtime"] = _o.path.isfile(_o.path.join(_p["runtime"], ".complete")) if _p.get("runtime") else False
print("@@lpfleet-weights-scan " + _j.dumps(_r, sort_keys=True))
'''


@lru_cache(maxsize=1)
def _bootstrap() -> str:
    from lpfleet.hub import scan_models_dir

    program = inspect.getsource(scan_models_dir) + _MAIN
    packed = base64.b64encode(zlib.compress(program.encode(), 9)).decode("ascii")
    return f'import base64,zlib;exec(zlib.decompress(base64.b64decode("{packed}")))'


def encode_params(models_dir: str, wanted: dict[str, list[str]], runtime: str | None) -> str:
    raw = json.dumps({"models_dir": models_dir, "wanted": wanted, "runtime": runtime}, sort_keys=True,
                     separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode("ascii")


class WeightsState(FactBase):
    """The scan of a models dir (dict, see lpfleet.weights) plus "python" and "runtime"; {"error": ...} when the
    node could not be scanned (no python3, a crash), which the weights step reports and fails on."""

    def command(self, params: str) -> StringCommand:
        return StringCommand(
            "if", "command", "-v", "python3", ">/dev/null", "2>&1;", "then",
            "python3", "-c", QuoteString(_bootstrap()), QuoteString(params), "2>&1;",
            "else", "echo", "@@no-python3;", "fi;", "true",
        )

    def default(self) -> dict[str, Any]:
        return {"error": "no answer from the node"}

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_output(output)


def parse_output(output: list[str]) -> dict[str, Any]:
    other = []
    for line in output:
        if line.startswith(MARKER):
            try:
                data = json.loads(line[len(MARKER):])
            except ValueError as exc:
                return {"error": f"unreadable models dir scan: {exc}"}
            return data if isinstance(data, dict) else {"error": "unreadable models dir scan: not an object"}
        if line.strip() == "@@no-python3":
            return {"error": "python3 not found on the node (the weights step needs it)"}
        if line.strip():
            other.append(line.strip())
    return {"error": f"models dir scan failed: {(other[-1] if other else 'no output')[:300]}"}
