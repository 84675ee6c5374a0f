"""What a node's models dir holds, in ONE round-trip: the weights step's only check on a complete node.

The fact ships `lpfleet.weights_fetch.scan_models_dir` (stdlib only) to the node and runs it with the node's
python3, for the repos and commits models.lock names. No hashing here: a blob counts as verified when
lpfleet's verification record names it with the same stamp (size, mtime, ctime, inode); anything rewritten
since is hashed again by the fetch step (see `lpfleet.weights`). It also reports the node's python3 version
and whether the weights runtime (lpfleet weights modules, shipped by the controller) is installed, so the step
knows what it must upload.
"""

from __future__ import annotations

import base64
import inspect
import json
from functools import lru_cache
from typing import Any

from lpfleet.facts.remote_python import RemotePythonFact, pack_program, parse_marked_output

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
    from lpfleet.weights_fetch import scan_models_dir

    return pack_program(inspect.getsource(scan_models_dir) + _MAIN)


def encode_params(models_dir: str, wanted: dict[str, list[str]], runtime: str | None) -> str:
    raw = json.dumps({"models_dir": models_dir, "wanted": wanted, "runtime": runtime}, sort_keys=True,
                     separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode("ascii")


class WeightsState(RemotePythonFact[dict[str, Any]]):
    """The scan of a models dir (dict, see lpfleet.weights) plus "python" and "runtime"; {"error": ...} when the
    node could not be scanned (no python3, a crash), which the weights step reports and fails on."""

    def bootstrap(self) -> str:
        return _bootstrap()

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_output(output)


def parse_output(output: list[str]) -> dict[str, Any]:
    return parse_marked_output(
        output,
        MARKER,
        unreadable="unreadable models dir scan",
        no_python3="python3 not found on the node (the weights step needs it)",
        failed="models dir scan failed",
    )
