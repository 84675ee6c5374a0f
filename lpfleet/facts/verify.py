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
from functools import lru_cache
from typing import Any

from lpfleet import probe
from lpfleet.facts import verify_node_script
from lpfleet.facts.remote_python import RemotePythonFact, pack_program, parse_marked_output
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
    return pack_program(node_program())


def encode_params(params: dict[str, Any]) -> str:
    """The node script's parameters as one shell-safe argument (no secret is ever part of them)."""
    return base64.b64encode(json.dumps(params, sort_keys=True, separators=(",", ":")).encode("utf-8")).decode(
        "ascii"
    )


class NodeVerification(RemotePythonFact[NodeSnapshot]):
    """The verify snapshot of a node (lpfleet.verify_snapshot.NodeSnapshot; verify_node_script.gather writes it).

    Never fails the host: a node without python3, or a script that crashed, gives `{"error": ...}`,
    which verification reports as "could not check".
    """

    def bootstrap(self) -> str:
        return _bootstrap()

    def process(self, output: list[str]) -> NodeSnapshot:
        return parse_output(output)


def parse_output(output: list[str]) -> NodeSnapshot:
    """The fact's stdout lines -> the snapshot (its shape checked), or {"error": ...} saying why there is none."""
    data = parse_marked_output(
        output,
        MARKER,
        unreadable="unreadable answer from the node script",
        no_python3="python3 not found on the node (verification runs a stdlib python3 script there)",
        failed="the node script failed",
    )
    return check_snapshot(data)
