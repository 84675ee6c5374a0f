"""go-livepeer's aiModels.json rules, as one pure check shared by the spec, rendering and `lpfleet lint`.

go-livepeer decodes aiModels.json with Go's encoding/json into `[]AIModelConfig`: key names
match case-insensitively, unknown keys are dropped silently, a value of the wrong JSON type
fails the whole file, and several mistakes only show at startup as a panic (unknown
pipeline, missing price, negative price, a model both warm and cold) or as a runner that
never comes up. `check_entries` finds all of them before a node sees the file.

Every rule names its upstream source (go-livepeer 176aa41, ai-runner v0.14.1) in `docs/fidelity.md`; where
lpfleet is stricter than go-livepeer on purpose (unknown and mis-cased keys, id formats, gateway spelling,
negative capacity) the row says why.

Entry numbers are 0-based array indices everywhere (`jq '.[N]' aiModels.json` shows entry N;
group data `ai_models[N]` is the same entry).

Values that may be secret (`token`, and anything under a key we do not know) are never put
into a message.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import urlsplit

from lpfleet import catalog

#: go-livepeer's `AIModelConfig` JSON keys.
ENTRY_KEYS: tuple[str, ...] = (
    "pipeline",
    "model_id",
    "url",
    "token",
    "warm",
    "capacity",
    "optimization_flags",
    "price_per_unit",
    "pixels_per_unit",
    "currency",
    "gateway",
)

#: Optimization flags the ai-runner v0.14.1 reads (each becomes an environment variable of the runner):
#: runner/src/runner/pipelines/{text_to_image,image_to_image,image_to_video,upscale,image_to_text}.py,
#: llm.py:73-79 and audio_to_text.py:70.
KNOWN_OPTIMIZATION_FLAGS: tuple[str, ...] = (
    "SFAST",
    "DEEPCACHE",
    "SFAST_WARMUP",
    "BFLOAT16",
    "TORCH_COMPILE",
    "SAFETY_CHECKER_DEVICE",
    "USE_8BIT",
    "MAX_MODEL_LEN",
    "GPU_MEMORY_UTILIZATION",
    "TENSOR_PARALLEL_SIZE",
    "PIPELINE_PARALLEL_SIZE",
    "MAX_NUM_SEQS",
    "MAX_NUM_BATCHED_TOKENS",
    "BACKEND",
)

#: Flags the runner tests with `if os.environ.get(NAME):` (text_to_image.py:79,148, image_to_text.py:40): any
#: non-empty value turns the option on, and go-livepeer renders JSON false (and null) as the string "false".
TRUTHY_IF_SET_FLAGS: tuple[str, ...] = ("BFLOAT16", "TORCH_COMPILE")

#: Environment variables of the runner's huggingface_hub that are set through optimization flags (lpfleet sets
#: HF_HUB_OFFLINE=1 on warm runners; HF_ENDPOINT points them at a mirror).
HUB_ENVIRONMENT_FLAGS: tuple[str, ...] = ("HF_HUB_OFFLINE", "HF_ENDPOINT")

#: Currencies go-livepeer prices in without a price feed (core/autoconvertedprice.go:48).
FIXED_CURRENCIES = ("", "wei", "eth")

#: The currencies of go-livepeer's default -priceFeedAddr, the Arbitrum ETH/USD feed (starter.go:288); an
#: on-chain node always builds the feed watcher (starter.go:988), so USD needs no flag.
DEFAULT_FEED_CURRENCIES = ("ETH", "USD")

#: Go's int on 64-bit platforms.
_INT64 = (-(2**63), 2**63 - 1)

HF_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
LIVE_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
#: `$` matches before a trailing newline, so ids are checked with fullmatch and for stray whitespace first.
_WHITESPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # an external server may name its model with spaces, not newlines
ETH_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PRICE_STRING = re.compile(r"^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$")

Severity = Literal["error", "warning"]

#: Names people give a pipeline that spelling distance maps to the wrong one ("speech-to-text" is nearest to
#: "image-to-text" by letters, but it is go-livepeer's audio-to-text).
PIPELINE_ALIASES: dict[str, str] = {
    "speech-to-text": "audio-to-text",
    "asr": "audio-to-text",
    "stt": "audio-to-text",
    "transcription": "audio-to-text",
    "whisper": "audio-to-text",
    "tts": "text-to-speech",
    "text-to-audio": "text-to-speech",
    "img2img": "image-to-image",
    "txt2img": "text-to-image",
    "img2vid": "image-to-video",
    "upscaler": "upscale",
    "sam2": "segment-anything-2",
    "image-captioning": "image-to-text",
}


@dataclass(frozen=True)
class Finding:
    """One problem in an aiModels.json entry list.

    `index` is the 0-based entry index (None for a problem of the whole list); `field` the
    key it is about ("-" for the entry as a whole); `rule` a stable id for machines.
    """

    severity: Severity
    rule: str
    message: str
    field: str = "-"
    index: int | None = None
    pipeline: str | None = None
    model_id: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def entry_label(self) -> str:
        """`entry N (pipeline model_id)`, or "" for a list-wide finding."""
        if self.index is None:
            return ""
        return f"entry {self.index} ({self.pipeline or '?'} {self.model_id or '?'})"

    def format(self, prefix: str) -> str:
        """`PREFIX: entry N (pipeline model_id): field: message` (warnings say so after the field)."""
        parts = [prefix]
        label = self.entry_label()
        if label:
            parts.append(label)
        parts.append(self.field)
        message = self.message if self.is_error else f"warning: {self.message}"
        return ": ".join(parts) + ": " + message

    def to_dict(self) -> dict[str, Any]:
        """JSON form: `entry` is the 0-based index (null for a whole-file finding)."""
        out = asdict(self)
        out["entry"] = out.pop("index")
        return out


@dataclass(frozen=True)
class NodeContext:
    """What is known about the node the entries are for; None = unknown (the rule is skipped).

    `gpu_slots`: GPUs x containers per GPU. `prices_onchain`: the node prices jobs (an
    orchestrator not on `-network offchain`). `fallback_price`: `-pricePerUnit` is set to a price
    above 0, so an entry without a price falls back to it (go-livepeer treats 0 as unset,
    starter.go:1550). `price_feed`: `-priceFeedAddr` names a feed of its own (True; its currencies are
    unknown here) or is left at go-livepeer's default ETH/USD feed (False). `live_overrides`: the live
    app ids `-aiRunnerImageOverrides` names an image for.
    """

    gpu_slots: int | None = None
    prices_onchain: bool | None = None
    fallback_price: bool = False
    price_feed: bool | None = None
    gpu_memory_gb: float | None = None
    live_overrides: frozenset[str] = frozenset()

    def skipped_rules(self) -> list[str]:
        """The node-context rules this context cannot decide, worded for an operator."""
        skipped = []
        if self.gpu_slots is None:
            skipped.append("warm containers vs GPU slots (give --gpus N [--containers-per-gpu N])")
        if self.prices_onchain is None:
            skipped.append("missing price on an on-chain node (give --onchain or --offchain)")
        if self.price_feed is None:
            skipped.append("currency the price feed does not carry (give --price-feed or --no-price-feed)")
        if self.gpu_memory_gb is None:
            skipped.append("model VRAM vs GPU memory (give --gpu-memory-gb N)")
        return skipped


@dataclass
class _Entry:
    index: int
    pipeline: str | None = None
    model_id: str | None = None
    findings: list[Finding] = field(default_factory=list)

    def add(self, severity: Severity, rule: str, field_name: str, message: str) -> None:
        self.findings.append(
            Finding(severity, rule, message, field_name, self.index, self.pipeline, self.model_id)
        )


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    """` (did you mean "x"?)` for the closest choice, compared case- and separator-insensitively."""

    def squash(text: str) -> str:
        return text.lower().replace("_", "").replace("-", "")

    by_squashed = {squash(c): c for c in choices}
    if squash(word) in by_squashed:
        return f' (did you mean "{by_squashed[squash(word)]}"?)'
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f' (did you mean "{by_lower[close[0]]}"?)' if close else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _is_string(value: Any) -> bool:
    return isinstance(value, str) or _is_secret(value)


def _is_secret(value: Any) -> bool:
    # pydantic's SecretStr (or a subclass: lpfleet.secrets.Secret), without importing pydantic here
    is_secret_str = any(cls.__name__ == "SecretStr" for cls in type(value).__mro__)
    return is_secret_str and hasattr(value, "get_secret_value")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return "a number"
    if _is_string(value):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


def format_number(value: Decimal | int | float) -> str:
    """A JSON number literal for a price: plain notation, no trailing zeros."""
    dec = Decimal(str(value)) if not isinstance(value, Decimal) else value
    text = format(dec.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _price_fix(text: str) -> str | None:
    """The JSON go-livepeer accepts for a docs-style string price such as "0.5e-2USD"."""
    match = _PRICE_STRING.match(text)
    if not match:
        return None
    try:
        number = Decimal(match.group(1))
    except InvalidOperation:
        return None
    fix = f'"price_per_unit": {format_number(number)}'
    currency = match.group(2)
    if currency:
        fix += f', "currency": "{currency}"'
        if currency.lower() not in FIXED_CURRENCIES:
            fix += f" ({currency} prices need a price feed: -priceFeedAddr)"
    return fix


def _as_decimal(value: Any) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _check_keys(entry: Mapping[str, Any], e: _Entry) -> None:
    lower = {k.lower(): k for k in ENTRY_KEYS}
    for key in entry:
        if not isinstance(key, str):
            e.add("error", "unknown-key", str(key), "keys must be strings")
            continue
        if key in ENTRY_KEYS:
            continue
        if key.lower() in lower:
            e.add(
                "error",
                "miscased-key",
                key,
                f'mis-cased key (did you mean "{lower[key.lower()]}"?): go-livepeer matches keys '
                "case-insensitively, so it reads this one, but another spelling of the same key in the "
                "entry silently overrides it (the last one in the file wins); write it exactly",
            )
            continue
        e.add(
            "error",
            "unknown-key",
            key,
            "unknown key: go-livepeer silently ignores it" + _did_you_mean(key, ENTRY_KEYS),
        )


def _present(entry: Mapping[str, Any], name: str) -> bool:
    """Whether the entry has a key that go-livepeer reads as `name` (a JSON null included)."""
    return any(isinstance(key, str) and key.lower() == name for key in entry)


def _value(entry: Mapping[str, Any], name: str) -> Any:
    """The value go-livepeer would read for `name`: the last key in the entry that matches it case-insensitively.

    Go's decoder sets the field once per matching key, in document order, so the last spelling wins.
    """
    found = None
    for key, value in entry.items():
        if isinstance(key, str) and key.lower() == name:
            found = value
    return found


def _check_identity(entry: Mapping[str, Any], e: _Entry, context: NodeContext) -> None:
    pipeline = _value(entry, "pipeline")
    model_id = _value(entry, "model_id")
    url = _value(entry, "url")
    if pipeline is None:
        e.add("error", "missing-pipeline", "pipeline", "missing: every entry needs a pipeline")
    elif not isinstance(pipeline, str):
        e.add("error", "bad-type", "pipeline", f"must be a string, not {_json_type(pipeline)}")
    elif not catalog.is_pipeline(pipeline):
        alias = PIPELINE_ALIASES.get(pipeline.lower().replace("_", "-"))
        hint = f' (did you mean "{alias}"?)' if alias else _did_you_mean(pipeline, list(catalog.PIPELINES))
        e.add(
            "error",
            "unknown-pipeline",
            "pipeline",
            f'unknown pipeline "{pipeline}": go-livepeer panics at start ("Pipeline is not valid capability"){hint}',
        )

    if model_id is None:
        e.add("error", "missing-model-id", "model_id", "missing: every entry needs a model_id")
        return
    if not isinstance(model_id, str):
        e.add("error", "bad-type", "model_id", f"must be a string, not {_json_type(model_id)}")
        return
    if not model_id.strip():
        e.add("error", "bad-model-id", "model_id", "must not be empty")
        return
    if (_CONTROL if url is not None else _WHITESPACE_OR_CONTROL).search(model_id):
        e.add(
            "error",
            "bad-model-id",
            "model_id",
            f"{json.dumps(model_id)} holds whitespace or a control character (a stray newline or space?): "
            "go-livepeer passes it to the runner verbatim and the model lookup fails; remove it",
        )
        return
    if url is not None:
        return  # an external server names its model as it likes
    if pipeline == catalog.LIVE_PIPELINE:
        apps = ", ".join(catalog.LIVE_APP_IMAGES)
        if not LIVE_APP_ID.fullmatch(model_id):
            e.add(
                "error",
                "bad-model-id",
                "model_id",
                f'live-video-to-video takes a live app name ({apps}); "{model_id}" is not one',
            )
        elif catalog.live_app_image(model_id, dict.fromkeys(context.live_overrides, "")) is None:
            warm = _value(entry, "warm") is True
            hint = _did_you_mean(model_id, list(catalog.LIVE_APP_IMAGES))
            what = (
                "a warm entry aborts go-livepeer's startup"
                if warm
                else "go-livepeer starts, but every job for it fails"
            )
            e.add(
                "error" if warm else "warning",
                "unknown-live-app",
                "model_id",
                f'"{model_id}" is not in go-livepeer\'s live app table ({apps}): "no container image found '
                f'for live pipeline {model_id}", {what}; use one of those or name an image for it in '
                f"runner_image_overrides.live (-aiRunnerImageOverrides){hint}",
            )
        return
    if not HF_MODEL_ID.fullmatch(model_id):
        e.add(
            "error",
            "bad-model-id",
            "model_id",
            f'"{model_id}" is not a HuggingFace id of the form org/name (case-sensitive)',
        )
        return
    canonical = catalog.canonical_model_id(model_id)
    if canonical:
        e.add(
            "error",
            "model-id-case",
            "model_id",
            f'the runner looks up models--{model_id.replace("/", "--")} case-sensitively; '
            f'did you mean "{canonical}"?',
        )


def _check_types(entry: Mapping[str, Any], e: _Entry, context: NodeContext) -> None:
    url = _value(entry, "url")
    if url is not None:
        if not isinstance(url, str):
            e.add("error", "bad-type", "url", f"must be a string, not {_json_type(url)}")
        else:
            parts = urlsplit(url.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                shown = parts.scheme + "://..." if parts.scheme else "a value without a scheme"
                if not parts.netloc and re.match(r"^[A-Za-z0-9.-]+:\d+(/|$)", url.strip()):
                    # urlsplit took the host for a scheme
                    shown = 'a host:port without a scheme: add "http://" in front'
                e.add(
                    "error",
                    "bad-url",
                    "url",
                    f"must be an http(s) URL with a host (go-livepeer polls {{url}}/health at start), got {shown}",
                )

    token = _value(entry, "token")
    if token is not None:
        if not _is_string(token):
            e.add("error", "bad-type", "token", f"must be a string, not {_json_type(token)}")
        elif url is None:
            e.add(
                "warning",
                "token-without-url",
                "token",
                "token is only sent to an external url; go-livepeer never passes it to the runner, "
                "so gated weights must be pre-fetched (the weights step does that)",
            )

    warm = _value(entry, "warm")
    if warm is not None and not isinstance(warm, bool):
        e.add(
            "error",
            "bad-type",
            "warm",
            f"must be true or false, not {_json_type(warm)}: go-livepeer cannot parse the whole file",
        )

    capacity = _value(entry, "capacity")
    if capacity is not None:
        if not _is_number(capacity):
            e.add(
                "error",
                "bad-type",
                "capacity",
                f"must be a whole number, not {_json_type(capacity)}: go-livepeer cannot parse the whole file",
            )
        elif not isinstance(capacity, int) or not _INT64[0] <= capacity <= _INT64[1]:
            # Go decodes an int field with strconv.ParseInt of the literal: 1.0 and 1e0 fail like 1.5 does
            e.add(
                "error",
                "bad-type",
                "capacity",
                f"must be a plain integer literal such as 1 that fits Go's int, not {capacity}: go-livepeer "
                f'fails the whole file ("json: cannot unmarshal number {capacity} into Go struct field '
                'AIModelConfig.capacity of type int")',
            )
        elif capacity < 0:
            e.add("error", "bad-capacity", "capacity", f"must not be negative (got {capacity})")

    flags = _value(entry, "optimization_flags")
    if flags is not None:
        if not isinstance(flags, Mapping):
            e.add("error", "bad-type", "optimization_flags", f"must be an object, not {_json_type(flags)}")
        else:
            for name, value in flags.items():
                where = f"optimization_flags.{name}"
                if name in TRUTHY_IF_SET_FLAGS and (value is None or value is False or (
                        isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"))):
                    shown = "null" if value is None else json.dumps(value)
                    e.add(
                        "warning",
                        "flag-reads-as-on",
                        where,
                        f"{shown} turns {name} ON: go-livepeer passes it as the non-empty string "
                        f'"{value if isinstance(value, str) else "false"}" and the runner checks only that '
                        f"{name} is set; remove the key to leave it off",
                    )
                elif value is None:
                    e.add(
                        "warning",
                        "null-flag",
                        where,
                        'null reaches the runner as the string "false" (go-livepeer decodes it as a JSON '
                        "boolean); write false, or remove the key",
                    )
                if value is None:
                    pass
                elif _is_number(value):
                    e.add(
                        "error",
                        "numeric-flag",
                        where,
                        f'numbers make go-livepeer fail to parse the whole file; quote it: "{name}": '
                        f'"{format_number(value)}"',
                    )
                elif not isinstance(value, (bool, str)):
                    e.add(
                        "error",
                        "bad-type",
                        where,
                        f"must be true, false or a string, not {_json_type(value)}: "
                        "go-livepeer cannot parse the whole file",
                    )
                if name not in KNOWN_OPTIMIZATION_FLAGS and name not in HUB_ENVIRONMENT_FLAGS:
                    e.add(
                        "warning",
                        "unknown-flag",
                        where,
                        "not a flag the ai-runner reads (it becomes an environment variable anyway)"
                        + _did_you_mean(str(name), KNOWN_OPTIMIZATION_FLAGS),
                    )

    _check_pricing(entry, e, context)

    gateway = _value(entry, "gateway")
    if gateway is not None:
        if not isinstance(gateway, str):
            e.add("error", "bad-type", "gateway", f"must be a string, not {_json_type(gateway)}")
        elif gateway != "default" and not ETH_ADDRESS.match(gateway):
            e.add(
                "error",
                "bad-gateway",
                "gateway",
                f'must be "default" or a gateway ETH address (0x + 40 hex digits), got "{gateway}"',
            )


def _check_pricing(entry: Mapping[str, Any], e: _Entry, context: NodeContext) -> None:
    price = _value(entry, "price_per_unit")
    for name in ("price_per_unit", "pixels_per_unit"):
        if _value(entry, name) is None and _present(entry, name):
            # core/ai.go:43-47: JSONRat.UnmarshalJSON runs big.Rat.SetString("null") for a null too
            e.add(
                "error",
                "bad-type",
                name,
                'null is not a number: go-livepeer fails the whole file ("value is not a number: null"); '
                "write a number or remove the key",
            )
    if price is not None:
        if isinstance(price, str):
            fix = _price_fix(price)
            hint = f"; write {fix}" if fix else "; write a JSON number such as 0.005"
            e.add(
                "error",
                "string-price",
                "price_per_unit",
                f'"{price}" is a string: go-livepeer fails with "value is not a number" although the '
                f"Livepeer docs show this form{hint}",
            )
        elif not _is_number(price):
            e.add("error", "bad-type", "price_per_unit", f"must be a JSON number, not {_json_type(price)}")
        elif _as_decimal(price) < 0:
            e.add(
                "error",
                "negative-price",
                "price_per_unit",
                f"must not be negative (got {format_number(price)}): go-livepeer panics at start",
            )
    elif context.prices_onchain and not context.fallback_price and not _present(entry, "price_per_unit"):
        e.add(
            "error",
            "missing-price",
            "price_per_unit",
            "missing on a node that prices on-chain and has no -pricePerUnit fallback above 0: "
            "go-livepeer panics ('pricePerUnit' must be set); set a price (0 is allowed) or run offchain",
        )

    pixels = _value(entry, "pixels_per_unit")
    if pixels is not None:
        if not _is_number(pixels):
            e.add(
                "error",
                "bad-type",
                "pixels_per_unit",
                f"must be a positive whole JSON number, not {_json_type(pixels)}",
            )
        elif _as_decimal(pixels) != _as_decimal(pixels).to_integral_value() or _as_decimal(pixels) <= 0:
            e.add(
                "error",
                "bad-pixels",
                "pixels_per_unit",
                f"must be a positive whole number (got {format_number(pixels)})",
            )

    currency = _value(entry, "currency")
    if currency is not None:
        if not isinstance(currency, str):
            e.add("error", "bad-type", "currency", f"must be a string, not {_json_type(currency)}")
        elif (currency.lower() not in FIXED_CURRENCIES and currency.upper() not in DEFAULT_FEED_CURRENCIES
              and context.price_feed is False):
            if context.prices_onchain is False:
                return  # an off-chain node ignores prices
            if price is None and context.fallback_price:
                return  # the -pricePerUnit currency replaces the entry's (starter.go:1553-1554)
            e.add(
                "error",
                "currency-needs-feed",
                "currency",
                f'go-livepeer\'s default price feed is ETH/USD, so it panics at start ("error converting price: '
                f'price feed does not have {currency.upper()} as a currency (ETH/USD)"); use wei, eth or USD, or '
                f"set price_feed_addr (-priceFeedAddr) to a Chainlink feed that quotes ETH in {currency.upper()}",
            )


def _check_node(entries: list[_Entry], raw: Sequence[Any], context: NodeContext) -> None:
    # go-livepeer keys its model constraints by (capability, model_id) and counts url entries too
    # (starter.go:1491-1506); the same model warm for one pipeline and cold for another is fine.
    warm_by_model: dict[tuple[str, str], int] = {}
    cold_by_model: dict[tuple[str, str], int] = {}
    seen: dict[tuple[str, str], int] = {}
    warm_slots = 0
    for e, entry in zip(entries, raw):
        if not isinstance(entry, Mapping) or e.model_id is None:
            continue
        warm = _value(entry, "warm") is True
        external = _value(entry, "url") is not None
        key = (e.pipeline or "", e.model_id)
        if key in seen:
            e.add("warning", "duplicate", "model_id", f"the same pipeline and model as entry {seen[key]}")
        else:
            seen[key] = e.index
        if e.pipeline is not None:
            other = cold_by_model if warm else warm_by_model
            if key in other:
                e.add(
                    "error",
                    "warm-and-cold",
                    "warm",
                    f"{e.model_id} is {'cold' if warm else 'warm'} for {e.pipeline} in entry {other[key]} and "
                    f"{'warm' if warm else 'cold'} here: go-livepeer panics at start (\"Cannot have same model_id "
                    f'({e.model_id}) as cold and warm in same AI worker"); make both entries warm or both cold',
                )
            (warm_by_model if warm else cold_by_model).setdefault(key, e.index)
        if warm and not external:
            capacity = _value(entry, "capacity")
            # starter.go:1452-1458: capacity containers, 0 means 1, a negative one starts none
            valid = (isinstance(capacity, int) and not isinstance(capacity, bool)
                     and _INT64[0] <= capacity <= _INT64[1])
            count = capacity if valid and capacity != 0 else 1
            if valid and capacity < 0:
                count = 0
            warm_slots += count
            if count and context.gpu_slots is not None and warm_slots > context.gpu_slots:
                e.add(
                    "error",
                    "warm-beyond-slots",
                    "warm",
                    f"{warm_slots} warm containers so far but the node has {context.gpu_slots} GPU slot(s) "
                    "(GPUs x containers per GPU): go-livepeer fails at start and restarts in a loop",
                )
        flags = _value(entry, "optimization_flags")
        if isinstance(flags, Mapping) and flags and not warm:
            # starter.go:1486-1489; cold containers start with no flags at all (ai/worker/docker.go:240-241)
            e.add(
                "warning",
                "flags-without-warm",
                "optimization_flags",
                "go-livepeer passes optimization flags to warm containers only: this cold entry's runner starts "
                "without them; make it warm or drop the flags",
            )
        if not external and context.gpu_memory_gb is not None:
            need = catalog.vram_gb(e.model_id)
            if need is not None and need > context.gpu_memory_gb:
                e.add(
                    "warning",
                    "vram",
                    "model_id",
                    f"needs about {format_number(need)} GB of GPU memory, the GPU has "
                    f"{format_number(context.gpu_memory_gb)} GB: expect CUDA out of memory",
                )
        if not external and e.pipeline and catalog.is_pipeline(e.pipeline) and not catalog.is_verified(e.model_id):
            if not any(f.rule in ("bad-model-id", "model-id-case") for f in e.findings):
                e.add(
                    "warning",
                    "unverified-model",
                    "model_id",
                    "not on Livepeer's verified model list: allowed, but gateways may route no traffic to it",
                )


def check_entries(raw_entries: Any, context: NodeContext | None = None) -> list[Finding]:
    """Every finding for a decoded aiModels.json (a list of entries as JSON-like values).

    Prices keep their literal when parsed with `parse_float=Decimal` (see `loads_preserving`);
    plain floats and ints work too. Node-context rules run only for the facts `context` has.
    """
    context = context or NodeContext()
    if not isinstance(raw_entries, (list, tuple)):
        return [
            Finding(
                "error",
                "not-a-list",
                f"aiModels.json must be a JSON array of entries, not {_json_type(raw_entries)}",
            )
        ]
    entries: list[_Entry] = []
    for index, entry in enumerate(raw_entries):
        e = _Entry(index)
        entries.append(e)
        if not isinstance(entry, Mapping):
            e.add("error", "not-an-object", "-", f"must be a JSON object, not {_json_type(entry)}")
            continue
        pipeline, model_id = _value(entry, "pipeline"), _value(entry, "model_id")
        e.pipeline = pipeline if isinstance(pipeline, str) else None
        e.model_id = model_id if isinstance(model_id, str) else None
        _check_keys(entry, e)
        _check_identity(entry, e, context)
        _check_types(entry, e, context)
    _check_node(entries, raw_entries, context)
    return [f for e in entries for f in e.findings]


def has_errors(findings: Sequence[Finding]) -> bool:
    return any(f.is_error for f in findings)


class JSONSyntaxError(ValueError):
    """Invalid JSON, with the line and column go-livepeer's decoder would stop at."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line} column {column}: {message}")
        self.line = line
        self.column = column


class _NotJSON(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotJSON(name)


def _bare_constant_at(text: str) -> int:
    """The offset of the first NaN / Infinity outside a string (Python's json reads them; JSON has none)."""
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "NI" and (text.startswith("NaN", i) or text.startswith("Infinity", i)):
            return i
    return 0


def loads_preserving(text: str) -> Any:
    """Parse JSON keeping every non-integer number as its exact Decimal (0.18 stays 0.18).

    Raises JSONSyntaxError with line and column on invalid JSON, NaN and Infinity included: Go's
    decoder, like the JSON grammar, has no such literals ("invalid character 'N' looking for
    beginning of value").
    """
    try:
        return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise JSONSyntaxError(exc.msg, exc.lineno, exc.colno) from None
    except _NotJSON as exc:
        at = _bare_constant_at(text)
        line = text.count("\n", 0, at) + 1
        column = at - (text.rfind("\n", 0, at) + 1) + 1
        raise JSONSyntaxError(f"{exc} is not JSON (write a number)", line, column) from None
