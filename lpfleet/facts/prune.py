"""A node's repo folders as `lpfleet prune` plans from them, read in one round-trip.

The fact sends `lpfleet/prune_exec.py` (stdlib only, compressed) to the node's python3 and runs its
`scan`: lstat and readlink only, never a hash or a followed link. Only the repo folders the lock names are
read. The removal (`lpfleet.operations.prune`) sends the same file and runs its `remove`.
"""

from __future__ import annotations

import base64
import inspect
import json
from functools import lru_cache
from typing import Any

from lpfleet import prune_exec
from lpfleet.facts.remote_python import RemotePythonFact, pack_program, parse_marked_output

MARKER = "@@lpfleet-prune-scan "


@lru_cache(maxsize=1)
def node_program() -> str:
    """prune_exec.py as one `python3 -c` argument: `python3 -c PROGRAM scan|remove BASE64-JSON`."""
    return pack_program(inspect.getsource(prune_exec).replace('if __name__ == "__main__":', "if True:"))


@lru_cache(maxsize=1)
def _scan_bootstrap() -> str:
    """prune_exec.py, then its scan of the request in argv[1], printed after MARKER."""
    source = inspect.getsource(prune_exec).replace('if __name__ == "__main__":', "if False:")
    source += (
        "\n_request = json.loads(base64.b64decode(sys.argv[1]).decode('utf-8'))\n"
        "_found = scan(_request['models_dir'], _request.get('folders') or [])\n"
        f"sys.stdout.write({MARKER!r} + json.dumps(_found, sort_keys=True) + '\\n')\n"
    )
    return pack_program(source)


def encode_request(request: dict[str, Any]) -> str:
    """The request (models dir, folder names or paths: never a secret) as one shell-safe argument."""
    return base64.b64encode(json.dumps(request, sort_keys=True).encode("utf-8")).decode("ascii")


class PruneScan(RemotePythonFact[dict[str, Any]]):
    """{"exists", "repos": {folder: ...}} (see lpfleet.prune), or {"error": ...}; never fails the host."""

    def bootstrap(self) -> str:
        return _scan_bootstrap()

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_marked_output(
            output,
            MARKER,
            unreadable="unreadable answer from the prune scan",
            no_python3="python3 not found on the node (the prune scan runs a stdlib python3 script there)",
            failed="the prune scan failed",
        )
