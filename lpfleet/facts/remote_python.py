"""The shared base of the facts that ship a stdlib Python program to the node and read one marked JSON line back.

Why one program instead of many small facts: a converged fleet then costs one round-trip per host and step.
The program travels compressed in the command itself (`python3 -c 'exec(zlib...)' PARAMS`), its parameters as one
base64 argument (never a secret). The node answers with one line `MARKER{json}`; anything else - no python3, a
crash, an unreadable line - becomes `{"error": ...}` saying why, so the step reports it instead of raising.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, TypeVar

from pyinfra.api import FactBase, QuoteString, StringCommand

T = TypeVar("T")

NO_PYTHON3 = "@@no-python3"


def pack_program(source: str) -> str:
    """A Python program as one `python3 -c` argument: itself compressed, decompressed and exec'd on the node."""
    packed = base64.b64encode(zlib.compress(source.encode("utf-8"), 9)).decode("ascii")
    return f'import base64,zlib;exec(zlib.decompress(base64.b64decode("{packed}")))'


def python_command(bootstrap: str, params: str) -> StringCommand:
    """Run `bootstrap` with the node's python3 and `params`; without python3, print NO_PYTHON3. Never fails."""
    return StringCommand(
        "if", "command", "-v", "python3", ">/dev/null", "2>&1;", "then",
        "python3", "-c", QuoteString(bootstrap), QuoteString(params), "2>&1;",
        "else", "echo", NO_PYTHON3 + ";", "fi;", "true",
    )


def parse_marked_output(output: list[str], marker: str, *, unreadable: str, no_python3: str,
                        failed: str) -> dict[str, Any]:
    """The JSON object after `marker`, or `{"error": ...}`: `unreadable: why`, `no_python3`, `failed: last line`."""
    other = []
    for line in output:
        if line.startswith(marker):
            try:
                data = json.loads(line[len(marker):])
            except ValueError as exc:
                return {"error": f"{unreadable}: {exc}"}
            return data if isinstance(data, dict) else {"error": f"{unreadable}: not an object"}
        if line.strip() == NO_PYTHON3:
            return {"error": no_python3}
        if line.strip():
            other.append(line.strip())
    return {"error": f"{failed}: {(other[-1] if other else 'no output')[:300]}"}


class RemotePythonFact(FactBase[T]):
    """A fact whose command runs `bootstrap()` (see pack_program) on the node with one parameter argument."""

    def bootstrap(self) -> str:
        raise NotImplementedError

    def command(self, params: str) -> StringCommand:
        return python_command(self.bootstrap(), params)

    @staticmethod
    def default() -> Any:
        return {"error": "no answer from the node"}
