"""A node's repo folders as `lpfleet prune` plans from them, read in one round-trip.

The fact sends `lpfleet/prune_exec.py` (stdlib only, compressed) to the node's python3 and runs its
`scan`: lstat and readlink only, never a hash or a followed link. Only the repo folders the lock names are
read.
"""

from __future__ import annotations

import base64
import inspect
import json
import zlib
from functools import lru_cache
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from lpfleet import prune_exec


@lru_cache(maxsize=1)
def node_program() -> str:
    """prune_exec.py as one `python3 -c` argument: `python3 -c PROGRAM scan|remove [BASE64-JSON]`."""
    source = inspect.getsource(prune_exec).replace('if __name__ == "__main__":', "if True:")
    packed = base64.b64encode(zlib.compress(source.encode("utf-8"), 9)).decode("ascii")
    return f'import base64,zlib;exec(zlib.decompress(base64.b64decode("{packed}")))'


def encode_request(request: dict[str, Any]) -> str:
    """The request (models dir, folder names or paths: never a secret) as one shell-safe argument."""
    return base64.b64encode(json.dumps(request, sort_keys=True).encode("utf-8")).decode("ascii")


class PruneScan(FactBase):
    """{"exists", "repos": {folder: ...}} (see lpfleet.prune), or {"error": ...}."""

    def command(self, request: str) -> StringCommand:
        return StringCommand(
            "python3", "-c", QuoteString(node_program()), "scan", QuoteString(request), "2>&1", ";", "true"
        )

    def default(self) -> dict[str, Any]:
        return {"error": "no answer from the node"}

    def process(self, output: list[str]) -> dict[str, Any]:
        for line in reversed(output):
            if line.startswith("{"):
                try:
                    data = json.loads(line)
                except ValueError:
                    continue
                if isinstance(data, dict) and "repos" in data:
                    return data
        text = " ".join(line.strip() for line in output if line.strip())
        return {"error": f"prune scan failed: {text[-300:] or 'no output'}"}
