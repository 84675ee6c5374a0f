"""Everything verification reads from a node, gathered in ONE round-trip.

The fact sends a small stdlib-only Python program (`lpfleet/probe.py` + `verify_node_script.py`,
compressed) and runs it with the node's python3. It answers with one JSON document: GPUs (nvidia-smi),
the Engine API's runtimes, the worker and every runner container (state, restart count, ports, labels),
/health of each runner on the node's 127.0.0.1 and of each external URL, the last log lines of troubled
containers, the deployed aiModels.json without its tokens, and a weights completeness summary.

Why run the probes on the node: go-livepeer publishes runner ports on the node's 127.0.0.1 only, and an
external URL matters as the worker on that node reaches it. One command per node keeps a verify of a fleet
at one round-trip per host, whatever the number of runners.
"""

from __future__ import annotations

import base64
import inspect
import json
import zlib
from functools import lru_cache
from typing import Any

from pyinfra.api import FactBase, QuoteString, StringCommand

from lpfleet import probe
from lpfleet.facts import verify_node_script
from lpfleet.verify_snapshot import NodeSnapshot, check_snapshot

MARKER = verify_node_script.MARKER


@lru_cache(maxsize=1)
def node_program() -> str:
    """probe.py then the node script, as one program (the script's own imports of them stripped)."""
    script = [
        line
        for line in inspect.getsource(verify_node_script).splitlines()
        if not line.startswith(("from __future__ ", "from lpfleet."))
    ]
    return inspect.getsource(probe) + "\n\n" + "\n".join(script) + "\n"


@lru_cache(maxsize=1)
def _bootstrap() -> str:
    packed = base64.b64encode(zlib.compress(node_program().encode("utf-8"), 9)).decode("ascii")
    return f'import base64,zlib;exec(zlib.decompress(base64.b64decode("{packed}")))'


def encode_params(params: dict[str, Any]) -> str:
    """The node script's parameters as one shell-safe argument (no secret is ever part of them)."""
    return base64.b64encode(json.dumps(params, sort_keys=True, separators=(",", ":")).encode("utf-8")).decode(
        "ascii"
    )


class NodeVerification(FactBase):
    """The verify snapshot of a node (a dict; see verify_node_script.gather for its keys).

    Never fails the host: a node without python3, or a script that crashed, gives `{"error": ...}`,
    which verification reports as "could not check".
    """

    def command(self, params: str) -> StringCommand:
        return StringCommand(
            "if",
            "command",
            "-v",
            "python3",
            ">/dev/null",
            "2>&1;",
            "then",
            "python3",
            "-c",
            QuoteString(_bootstrap()),
            QuoteString(params),
            "2>&1;",
            "else",
            "echo",
            "@@no-python3;",
            "fi;",
            "true",
        )

    def default(self) -> dict[str, Any]:
        return {"error": "no answer from the node"}

    def process(self, output: list[str]) -> dict[str, Any]:
        return parse_output(output)


def parse_output(output: list[str]) -> NodeSnapshot:
    """The fact's stdout lines -> the snapshot (its shape checked), or {"error": ...} saying why there is none."""
    other = []
    for line in output:
        if line.startswith(MARKER):
            try:
                data = json.loads(line[len(MARKER) :])
            except ValueError as exc:
                return {"error": f"unreadable answer from the node script: {exc}"}
            if isinstance(data, dict):
                return check_snapshot(data)
            return {"error": "unreadable answer from the node script: not an object"}
        if line.strip() == "@@no-python3":
            return {
                "error": "python3 not found on the node (verification runs a stdlib python3 script there)"
            }
        if line.strip():
            other.append(line.strip())
    last = other[-1] if other else "no output"
    return {"error": f"the node script failed: {last[:300]}"}
