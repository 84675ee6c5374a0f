"""Secrets: the one type that holds them, the one rule that masks them, the one collector that finds them.

- `Secret`: a pydantic `SecretStr` that pyinfra can also show (`pyinfra ... debug-inventory` prints
  `**********`; pyinfra's JSON encoder calls `to_json`). `hidden(secret)` gives pyinfra's `HiddenValue`
  where an operation argument needs one.
- `env_secret(NAME)`: a secret read from the controller's environment by group data code. An unset variable is
  not silently None: it becomes a `MissingSecret` that validation reports naming the variable, unless the
  group data says the secret is optional (`env_secret(NAME, optional=True)`, then None).
- `mask(text, secrets)`: every message, diff, report and `render --masked` goes through it. It masks the
  values given, JSON "token" values, URL credentials (`user:password@`) and secret-looking query values
  (`?apikey=`, `token=`, `key=`, ...).
- `secret_values(obj)`: every secret a spec (or any pydantic model / container) holds.

Pure: no pyinfra import at module level (spec.py, a pure module, uses this).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "***"
#: What pyinfra's debug-inventory (and every repr) shows for a secret.
SHOWN = "**********"

_TOKEN_VALUE = re.compile(r'("(?i:token)"\s*:\s*)"(?:[^"\\]|\\.)*"')
# scheme://userinfo@host: userinfo is everything up to the last @ before the path
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@\"'<>]+)@")
_SECRET_QUERY_KEY = (
    r"api[_-]?key|apikey|access[_-]?token|auth[_-]?token|token|key|secret|client[_-]?secret|"
    r"password|passwd|pwd|"
    r"sig|signature|auth|credential|credentials|x-amz-signature|x-amz-credential"
)
# separators as written and as JSON writes `&` (Jinja's tojson: \u0026)
_SECRET_QUERY = re.compile(r"(?i)((?:[?&;]|\\u0026)(?:" + _SECRET_QUERY_KEY + r")=)([^&#\s\"'<>\\]+)")


class Secret(SecretStr):
    """A secret value: `**********` in reprs, logs and pyinfra's debug-inventory; revealed only on purpose."""

    def to_json(self) -> str:  # pyinfra_cli.util.json_encode calls this
        return SHOWN

    def reveal(self) -> str:
        return self.get_secret_value()


class MissingSecret:
    """What `env_secret` returns for an unset variable: validation reports it, naming the variable."""

    def __init__(self, variable: str) -> None:
        self.variable = variable

    def message(self) -> str:
        return (
            f"environment variable {self.variable} is not set on the controller: export it before running "
            f'(or write env_secret("{self.variable}", optional=True) if the fleet may run without it)'
        )

    def to_json(self) -> str:
        return f"<unset: {self.variable}>"

    def __repr__(self) -> str:
        return f"MissingSecret({self.variable!r})"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return False


def env_secret(name: str, optional: bool = False) -> Secret | MissingSecret | None:
    """A secret from the controller's environment, for group data (`"token": env_secret("BYOC_TOKEN")`).

    Unset or empty: a `MissingSecret` that validation refuses (naming `name`), or None when `optional`.
    Reads the environment: the only I/O here.
    """
    value = os.environ.get(name)
    if value:
        return Secret(value)
    return None if optional else MissingSecret(name)


def is_secret(value: Any) -> bool:
    """A held secret (ours or any pydantic SecretStr)."""
    return isinstance(value, SecretStr)


def to_secret(value: Any) -> Any:
    """A str or SecretStr as a `Secret`; anything else unchanged (validation reports it)."""
    if isinstance(value, Secret):
        return value
    if isinstance(value, SecretStr):
        return Secret(value.get_secret_value())
    if isinstance(value, str):
        return Secret(value)
    return value


def reveal(value: SecretStr | str | None) -> str | None:
    """The plain value (None stays None): for the few places that must send it (stdin, a 0600 file)."""
    if value is None or isinstance(value, MissingSecret):
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value() or None
    return value or None


def mask(text: str, secrets: Iterable[Any] = (), keys: bool = True) -> str:
    """`text` with secrets replaced by ***: the one masking rule.

    Masks each value in `secrets` (str, SecretStr or HiddenValue; also JSON-escaped), and with `keys` what
    looks secret whatever its value: JSON "token" values, URL credentials (`https://user:pw@host` ->
    `https://***@host`) and secret-looking query values (`?apikey=...`, `&token=...`, `&key=...`).
    """
    if keys:
        text = _TOKEN_VALUE.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
        text = _URL_CREDENTIALS.sub(lambda m: f"{m.group(1)}{MASK}@", text)
        text = _SECRET_QUERY.sub(lambda m: f"{m.group(1)}{MASK}", text)
    plain: set[str] = set()
    for secret in secrets:
        if hasattr(secret, "unmask"):
            secret = secret.unmask()
        value = reveal(secret)
        if value:
            plain.add(value)
    for value in sorted(plain, key=len, reverse=True):
        text = text.replace(value, MASK)
        escaped = json.dumps(value)[1:-1]
        if escaped != value:
            text = text.replace(escaped, MASK)
    return text


def secret_values(obj: Any) -> tuple[str, ...]:
    """Every secret value held anywhere in `obj` (a NodeSpec, a pydantic model, dicts, lists), for `mask`."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            plain = value.get_secret_value()
            if plain and plain not in found:
                found.append(plain)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                walk(item)

    walk(obj)
    return tuple(found)
