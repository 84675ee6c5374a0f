"""aiModels.json decoded the way go-livepeer's Go code decodes it.

encoding/json rules: key names match case-insensitively (exact match first), unknown keys are ignored, the last
of several keys that fold to one field wins, `null` leaves a plain field at its zero value. go-livepeer's types:
prices are `JSONRat` (the raw JSON number; a JSON string fails with "value is not a number"), optimization flags
are `EnvValue` (a JSON bool or string; a number fails). Errors carry Go's wording, which operators see in logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction


class GoJSONError(Exception):
    pass


class _Number(str):
    """A JSON number kept as its source text (Go's json.Number / the raw bytes a JSONRat sees)."""


def _reject_constant(name: str) -> object:
    raise GoJSONError(f"invalid character '{name[0]}' looking for beginning of value")


@dataclass
class AIModelConfig:
    pipeline: str = ""
    model_id: str = ""
    url: str = ""
    token: str = ""
    warm: bool = False
    capacity: int = 0
    optimization_flags: dict[str, str] = field(default_factory=dict)
    gateway: str = ""
    price_per_unit: Fraction | None = None
    pixels_per_unit: Fraction | None = None
    currency: str = ""


_FIELDS = {
    "pipeline": "string",
    "model_id": "string",
    "url": "string",
    "token": "string",
    "warm": "bool",
    "capacity": "int",
    "optimization_flags": "envmap",
    "gateway": "string",
    "price_per_unit": "rat",
    "pixels_per_unit": "rat",
    "currency": "string",
}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _Pairs):
        return "object"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: object, field_name: str, go_type: str) -> GoJSONError:
    kind = _kind(value)
    shown = f"number {value}" if kind == "number" and go_type == "int" else kind
    return GoJSONError(f"json: cannot unmarshal {shown} into Go struct field AIModelConfig.{field_name} of type {go_type}")


def _rat(raw: object) -> Fraction:
    """JSONRat.UnmarshalJSON: big.Rat.SetString of the raw JSON text."""
    if not isinstance(raw, _Number):
        text = "null" if raw is None else json.dumps(raw)
        raise GoJSONError(f"value is not a number: {text}")
    try:
        return Fraction(str(raw))
    except (ValueError, ZeroDivisionError) as exc:
        raise GoJSONError(f"value is not a number: {raw}") from exc


def _envvalue(key: str, raw: object) -> str:
    """EnvValue.UnmarshalJSON: a bool becomes "true"/"false", a string stays; anything else fails."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, str) and not isinstance(raw, _Number):
        return raw
    if raw is None:
        return "false"  # json.Unmarshal("null", &boolVal) succeeds and leaves false (ai/worker/worker.go:21-27)
    raise GoJSONError(f"json: cannot unmarshal {_kind(raw)} into Go value of type string")


def _match_field(key: str) -> str | None:
    if key in _FIELDS:
        return key
    folded = key.casefold()
    for name in _FIELDS:
        if name.casefold() == folded:
            return name
    return None


def _decode_entry(pairs: list[tuple[str, object]]) -> AIModelConfig:
    cfg = AIModelConfig()
    for key, value in pairs:
        name = _match_field(key)
        if name is None:
            continue  # unknown keys are ignored, typos included
        kind = _FIELDS[name]
        if kind == "rat":
            setattr(cfg, name, _rat(value))
            continue
        if value is None:
            continue
        if kind == "string":
            if _kind(value) != "string":
                raise _type_error(value, name, "string")
            setattr(cfg, name, str(value))
        elif kind == "bool":
            if not isinstance(value, bool):
                raise _type_error(value, name, "bool")
            cfg.warm = value
        elif kind == "int":
            # strconv.ParseInt(literal, 10, 64): no fraction, no exponent, within int64
            if (_kind(value) != "number" or not str(value).lstrip("-").isdigit()
                    or not -(2**63) <= int(str(value)) < 2**63):
                raise _type_error(value, name, "int")
            cfg.capacity = int(str(value))
        elif kind == "envmap":
            if not isinstance(value, _Pairs):
                raise _type_error(value, name, "worker.OptimizationFlags")
            flags: dict[str, str] = {}
            for flag_key, flag_value in value:  # type: ignore[union-attr]
                flags[flag_key] = _envvalue(flag_key, flag_value)
            cfg.optimization_flags = flags
    return cfg


class _Pairs(list):
    """A JSON object kept as its (key, value) pairs, in order, duplicates included."""


def decode_ai_models(text: str) -> list[AIModelConfig]:
    """json.Unmarshal(data, &[]core.AIModelConfig) with go-livepeer's field types."""
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_int=_Number,
            parse_float=_Number,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise GoJSONError("unexpected end of JSON input") from exc
        char = text[exc.pos]
        raise GoJSONError(f"invalid character '{char}' {_syntax_context(exc.msg)}") from exc
    if doc is None:
        return []
    if not isinstance(doc, list) or isinstance(doc, _Pairs):
        raise GoJSONError(f"json: cannot unmarshal {_kind(doc)} into Go value of type []core.AIModelConfig")
    entries = []
    for item in doc:
        if item is None:
            entries.append(AIModelConfig())
            continue
        if not isinstance(item, _Pairs):
            raise GoJSONError(f"json: cannot unmarshal {_kind(item)} into Go value of type core.AIModelConfig")
        entries.append(_decode_entry(item))
    return entries


def _syntax_context(msg: str) -> str:
    if "Expecting ',' delimiter" in msg:
        return "after object key:value pair"
    if "Expecting property name" in msg:
        return "looking for beginning of object key string"
    if "Expecting ':'" in msg:
        return "after object key"
    return "looking for beginning of value"
