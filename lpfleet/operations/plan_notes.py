"""What an operation would change, in words, recorded while pyinfra plans a dry run for `lpfleet plan`.

pyinfra's own dry run (`pyinfra --dry`) already decides, per host and operation, whether it would change
anything; it cannot say what. Operations call `note(text, lines)` on their change path, before their first
command: pyinfra runs that part while it plans (to learn whether the operation changes anything), so a dry run
records it without touching the node. Notes go to the JSON-lines file named by LPFLEET_PLAN_NOTES (set by
`lpfleet plan`); without it, `note` does nothing. Each note carries the host and the operation's hash, which
is how `lpfleet plan` joins it with pyinfra's `--json` plan. Notes never hold a secret: callers pass masked
text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from pyinfra import host, state

ENV = "LPFLEET_PLAN_NOTES"


def note(text: str, lines: Sequence[str] = ()) -> None:
    """Record what the current operation would change on the current host (dry-run planning only)."""
    path = os.environ.get(ENV)
    if not path or state.is_executing:
        return
    record = {
        "host": host.name,
        "op_hash": host.current_op_hash,
        "deploy": host.current_deploy_name,
        "text": text,
        "lines": list(lines),
    }
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
