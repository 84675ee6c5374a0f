"""Go's flag package, as go-livepeer's command line sees it, plus its `-config` file (peterbourgon/ff plain format).

`-name value`, `-name=value`, `--name`; booleans only as `-name` or `-name=bool`; parsing stops at the first
non-flag argument; an unknown flag is fatal (exit 2). The config file holds one `name value` per line (`#`
comments); flags given on the command line win over the file.
"""

from __future__ import annotations

import os
import sys

_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class FlagError(Exception):
    pass


def parse_bool(text: str) -> bool:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(text)


def _convert(name: str, kind: str, raw: str) -> object:
    if kind == "bool":
        try:
            return parse_bool(raw)
        except ValueError:
            raise FlagError(f'invalid boolean value "{raw}" for -{name}: parse error') from None
    if kind == "int":
        try:
            return int(raw, 0)
        except ValueError:
            raise FlagError(f'invalid value "{raw}" for flag -{name}: parse error') from None
    return raw


def parse_args(argv: list[str], spec: dict[str, tuple[str, object]]) -> tuple[dict[str, object], set[str]]:
    """spec: name -> (kind, default). Returns (values, names set explicitly on the command line)."""
    values = {name: default for name, (kind, default) in spec.items()}
    explicit: set[str] = set()
    i = 0
    while i < len(argv):
        arg = argv[i]
        if len(arg) < 2 or arg[0] != "-":
            break
        dashes = 2 if arg.startswith("--") else 1
        if arg == "--":
            break
        name = arg[dashes:]
        if not name or name[0] in "-=":
            raise FlagError(f"bad flag syntax: {arg}")
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        if name not in spec:
            raise FlagError(f"flag provided but not defined: -{name}")
        kind = spec[name][0]
        if kind == "bool":
            values[name] = True if value is None else _convert(name, kind, value)
        else:
            if value is None:
                if i + 1 >= len(argv):
                    raise FlagError(f"flag needs an argument: -{name}")
                i += 1
                value = argv[i]
            values[name] = _convert(name, kind, value)
        explicit.add(name)
        i += 1
    return values, explicit


def apply_env(values: dict[str, object], explicit: set[str], spec: dict[str, tuple[str, object]], prefix: str) -> None:
    """ff.WithEnvVarPrefix: LP_<NAME> for flags not given on the command line."""
    for name, (kind, _default) in spec.items():
        if name in explicit:
            continue
        env_name = f"{prefix}_" + name.upper().replace("-", "_").replace(".", "_")
        if env_name in os.environ:
            values[name] = _convert(name, kind, os.environ[env_name])
            explicit.add(name)


def apply_config_file(path: str, values: dict[str, object], explicit: set[str],
                      spec: dict[str, tuple[str, object]]) -> None:
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise FlagError(f"error opening config file: {exc.strerror}: {path}") from None
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        name = parts[0].lstrip("-")
        raw = parts[1] if len(parts) > 1 else "true"
        if " #" in raw:
            raw = raw.split(" #", 1)[0].rstrip()
        if name not in spec:
            raise FlagError(f"config file flag {name!r} not defined in flag set")
        if name in explicit:
            continue
        values[name] = _convert(name, spec[name][0], raw)
        explicit.add(name)


def fail(message: str, program: str = "livepeer") -> None:
    sys.stderr.write(f"{message}\nUsage of {program}:\n")
    sys.stderr.flush()
    sys.exit(2)
