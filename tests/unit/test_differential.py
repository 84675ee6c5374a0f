"""Differential test: thousands of generated aiModels.json files through `lpfleet lint`'s rules and through the
go-livepeer stand-in's own decoder and startup loop; their verdicts must agree.

The lint side is `lpfleet.commands.lint.lint_text`, what `lpfleet lint FILE` runs for each file. The stand-in side is `lpstandin.gojson.decode_ai_models` (Go's encoding/json with go-livepeer's field types,
core/ai.go:40-111 and ai/worker/worker.go:17-36) followed by `lpstandin.golivepeer.configure_models`
(StartLivepeer's aiModels loop, cmd/livepeer/starter/starter.go:1444-1573 at go-livepeer 176aa41) with a
`DryManager` (GPU slots, images and the live app table of ai/worker/docker.go, no Docker daemon). It runs in
process, so the test is fast.

Agreement means, for every file and node context:
- lint finds no error => go-livepeer starts;
- go-livepeer fails (a decode error, a panic, a warm error that returns from StartLivepeer) => lint finds an error;
- lint finds an error of a rule that mirrors a go-livepeer failure => go-livepeer fails.
The remaining lint errors are lpfleet being stricter on purpose (STRICTER, each one a row in docs/fidelity.md):
for those go-livepeer starts, or fails for a reason lint also reports.
"""

from __future__ import annotations

import io
import json
import random
import sys
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path

import pytest

from lpfleet.commands.lint import lint_text
from lpfleet.rules import NodeContext

STANDIN = Path(__file__).resolve().parents[2] / "lpfleet" / "sandbox" / "images" / "livepeer-standin"

FILES = 3000
SEED = 20260818  # go-livepeer 176aa41's date; any seed works, a fixed one keeps failures reproducible

#: Lint errors that go-livepeer does not fail on (lpfleet is stricter on purpose; docs/fidelity.md says why).
STRICTER_ALWAYS = {
    "unknown-key",  # Go drops unknown keys silently: a typo loses the setting
    "miscased-key",  # Go matches keys case-insensitively: another spelling silently overrides it
    "missing-model-id",  # Go takes "" and the runner fails later
    "bad-model-id",  # Go takes any string; the runner's cache lookup needs org/name
    "model-id-case",  # Go takes it; the runner's case-sensitive lookup misses the weights
    "bad-url",  # Go polls {url}/health and aborts after 2 minutes; lint says so at once
    "bad-capacity",  # Go starts no container for a negative capacity, silently
    "bad-gateway",  # Go lower-cases any string
}
#: Price rules go-livepeer applies on an on-chain node only (starter.go:1513); lint checks them everywhere.
STRICTER_OFFCHAIN = {"negative-price", "bad-pixels"}


@pytest.fixture(scope="module")
def standin():
    sys.path.insert(0, str(STANDIN))
    try:
        from lpstandin import gojson, golivepeer, golog
    finally:
        sys.path.remove(str(STANDIN))
    return gojson, golivepeer, golog


# --- the generator ---------------------------------------------------------------------------------------------

BATCH = [
    ("text-to-image", "ByteDance/SDXL-Lightning"),
    ("text-to-image", "SG161222/RealVisXL_V4.0_Lightning"),
    ("image-to-image", "ByteDance/SDXL-Lightning"),
    ("image-to-video", "stabilityai/stable-video-diffusion-img2vid-xt-1-1"),
    ("upscale", "stabilityai/stable-diffusion-x4-upscaler"),
    ("audio-to-text", "openai/whisper-large-v3"),
    ("llm", "meta-llama/Meta-Llama-3.1-8B-Instruct"),
    ("segment-anything-2", "facebook/sam2-hiera-large"),
    ("image-to-text", "Salesforce/blip-image-captioning-large"),
    ("text-to-speech", "parler-tts/parler-tts-large-v1"),
    ("text-to-image", "acme/private-model"),
]
LIVE = ["streamdiffusion", "comfyui", "scope", "noop", "streamdiffusion-sdxl-v2v", "my-app", "stream-diffusion"]
PRICES = ["0", "4768371", "0.18", "1e12", "12.5e-3"]
CURRENCIES = ["", "wei", "WEI", "eth", "USD", "usd", "EUR", "GBP"]
FLAGS = {"SFAST": ["true", "false"], "DEEPCACHE": ["false"], "BFLOAT16": ["true", "false", "null", '"false"'],
         "TORCH_COMPILE": ["true", "false"], "MAX_MODEL_LEN": ['"8192"', "8192"], "MAX_NUM_SEQS": ['"64"'],
         "BACKEND": ['"transformers"'], "SAFETY_CHECKER_DEVICE": ['"cpu"'], "SFAT": ["true"]}


def _entry(rng: random.Random) -> dict[str, str]:
    """One entry as raw JSON value texts (so literals such as 1.0 or NaN survive), valid in most fields."""
    if rng.random() < 0.12:
        pipeline, model_id = "live-video-to-video", rng.choice(LIVE)
    elif rng.random() < 0.06:
        pipeline, model_id = rng.choice(["llm", "text-to-image"]), rng.choice(["x/y", "ollama:llama3"])
    else:
        pipeline, model_id = rng.choice(BATCH)
    entry = {"pipeline": json.dumps(pipeline), "model_id": json.dumps(model_id)}
    if rng.random() < 0.5:
        entry["warm"] = "true"
    elif rng.random() < 0.2:
        entry["warm"] = "false"
    if rng.random() < 0.7:
        entry["price_per_unit"] = rng.choice(PRICES)
    if rng.random() < 0.2:
        entry["pixels_per_unit"] = rng.choice(["1", "1000000", "2.0"])
    if rng.random() < 0.2:
        entry["currency"] = json.dumps(rng.choice(CURRENCIES))
    if rng.random() < 0.15:
        entry["capacity"] = rng.choice(["0", "1", "2", "3"])
    if rng.random() < 0.2:
        names = rng.sample(sorted(FLAGS), rng.randint(1, 2))
        entry["optimization_flags"] = "{" + ", ".join(f'"{n}": {rng.choice(FLAGS[n])}' for n in names) + "}"
    if rng.random() < 0.08:
        entry["url"] = json.dumps(rng.choice(["http://byoc:8000", "https://flux.lan:8443"]))
        if rng.random() < 0.5:
            entry["token"] = json.dumps("s3cret")
    if rng.random() < 0.08:
        entry["gateway"] = json.dumps(rng.choice(["default", "0x" + "ab" * 20]))
    return entry


def _break(entry: dict[str, str], rng: random.Random) -> None:
    """Apply one mistake the rules know (each one a way go-livepeer fails, or lpfleet is stricter)."""
    mistake = rng.randrange(34)
    if mistake == 0:
        entry["pipeline"] = json.dumps(rng.choice(["text-to-imag", "text_to_image", "llm-chat", ""]))
    elif mistake == 1:
        entry.pop("pipeline")
    elif mistake == 2:
        entry["pipeline"] = rng.choice(["null", "7", "true"])
    elif mistake == 3:
        entry.pop("model_id")
    elif mistake == 4:
        entry["model_id"] = rng.choice(["null", "42", json.dumps("SDXL-Lightning"), json.dumps("a/b/c")])
    elif mistake == 5:
        entry["model_id"] = json.dumps("bytedance/sdxl-lightning")
    elif mistake == 6:
        entry["price_per_unit"] = json.dumps(rng.choice(["0.5e-2USD", "10", "x"]))
    elif mistake == 7:
        entry["price_per_unit"] = rng.choice(["-1", "-0.5"])
    elif mistake == 8:
        entry["price_per_unit"] = rng.choice(["null", "true", "[1]", "{}"])
    elif mistake == 9:
        entry.pop("price_per_unit", None)
    elif mistake == 10:
        entry["pixels_per_unit"] = rng.choice(["1.5", "0", "-3", '"1"', "null"])
    elif mistake == 11:
        entry["capacity"] = rng.choice(["1.0", "1e0", "1.5", '"2"', "-1", "9223372036854775808", "null"])
    elif mistake == 12:
        entry["warm"] = rng.choice(['"true"', "1", "null"])
    elif mistake == 13:
        entry["optimization_flags"] = rng.choice(['{"SFAST": 1}', '{"MAX_MODEL_LEN": 8192}', '{"SFAST": [true]}',
                                                  '["SFAST"]', '"SFAST"', "null", '{"BFLOAT16": null}'])
    elif mistake == 14:
        entry["currency"] = rng.choice(['"EUR"', '"GBP"', "5", "null"])
    elif mistake == 15:
        entry["gateway"] = rng.choice([json.dumps("my-gateway"), json.dumps("Default"), "1"])
    elif mistake == 16:
        entry["url"] = rng.choice([json.dumps("ftp://files/x"), json.dumps("localhost:8000"), json.dumps(""), "3"])
    elif mistake == 17:
        entry["token"] = rng.choice(["5", "true"])
    elif mistake == 18:
        entry[rng.choice(["priceperunit", "modelid", "Warm", "PRICE_PER_UNIT", "extra"])] = rng.choice(
            ["true", "1", json.dumps("x")])
    elif mistake == 19:
        entry["Pipeline"] = json.dumps(rng.choice(["llm", "bogus"]))
    elif mistake == 20:
        entry["pipeline"], entry["model_id"] = json.dumps("live-video-to-video"), json.dumps(
            rng.choice(["my-app", "streamdiffusion-xl", "stream diffusion"]))
        entry["warm"] = "true"
    elif mistake == 21:
        entry["capacity"] = rng.choice(["4", "9"])
        entry["warm"] = "true"
    elif mistake == 22:
        entry["price_per_unit"] = rng.choice(PRICES)
        entry["currency"] = json.dumps(rng.choice(["EUR", "usd", "ETH"]))
    else:
        pass  # most files keep their entries as generated: valid ones and combinations matter as much


def _text(entries: list[dict[str, str]], rng: random.Random) -> str:
    """The file text, sometimes broken as a whole (syntax, NaN, the wrong top-level type)."""
    items = ["{" + ", ".join(f"{json.dumps(k)}: {v}" for k, v in e.items()) + "}" for e in entries]
    if rng.random() < 0.03:
        items.append(rng.choice(["null", '"entry"', "[]", "7"]))
    text = "[" + ",\n ".join(items) + "]"
    roll = rng.random()
    if roll < 0.01:
        return text.replace("]", "", 1) if rng.random() < 0.5 else text[:-1]
    if roll < 0.02:
        return text.replace("[{", '[{"capacity": NaN, ', 1) if "[{" in text else "[NaN]"
    if roll < 0.025:
        return rng.choice(["{}", "null", '"[]"', "7", "[]"])
    return text


@dataclass(frozen=True)
class Node:
    onchain: bool
    fallback_price: str | None  # -pricePerUnit as given, None = not given
    custom_feed: bool
    gpus: tuple[str, ...]  # -nvidia ids, () = no -nvidia (one emulated slot)
    containers_per_gpu: int
    live_overrides: frozenset[str]


def _node(rng: random.Random) -> Node:
    return Node(
        onchain=rng.random() < 0.6,
        fallback_price=rng.choice([None, None, "0", "10", "0.5"]),
        custom_feed=rng.random() < 0.2,
        gpus=tuple(str(g) for g in range(rng.choice([0, 1, 1, 2, 4]))),
        containers_per_gpu=rng.choice([1, 1, 2]),
        live_overrides=frozenset({"my-app"}) if rng.random() < 0.2 else frozenset(),
    )


def corpus() -> list[tuple[str, Node]]:
    rng = random.Random(SEED)
    files = []
    for _ in range(FILES):
        entries = [_entry(rng) for _ in range(rng.choice([1, 1, 2, 2, 3, 4]))]
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            _break(rng.choice(entries), rng)
        files.append((_text(entries, rng), _node(rng)))
    return files


# --- the two verdicts ----------------------------------------------------------------------------------------


def lint_errors(text: str, node: Node) -> list[str]:
    context = NodeContext(
        gpu_slots=max(len(node.gpus), 1) * node.containers_per_gpu,
        prices_onchain=node.onchain,
        fallback_price=node.fallback_price is not None and float(node.fallback_price) > 0,
        price_feed=node.custom_feed,
        live_overrides=node.live_overrides,
    )
    if text.strip() == "null":
        return ["null-document"]  # Go decodes null into a nil slice: no models, no error (lint is stricter)
    return [f.rule for f in lint_text(text, context) if f.is_error]


def standin_failure(text: str, node: Node, standin) -> str | None:
    """Why go-livepeer would not start with this file, or None when it starts."""
    gojson, golivepeer, golog = standin
    try:
        configs = gojson.decode_ai_models(text)
    except gojson.GoJSONError as exc:
        return f"Error parsing -aiModels: {exc}"
    cfg = {
        "network": "arbitrum-one-mainnet" if node.onchain else "offchain",
        "pricePerUnit": node.fallback_price if node.fallback_price is not None else "0",
        "pixelsPerUnit": "1",
        "priceFeedAddr": "0x000000000000000000000000000000000000feed" if node.custom_feed
        else golivepeer.DEFAULT_PRICE_FEED,
    }
    overrides = golivepeer.ImageOverrides(live={app: f"reg/{app}:1" for app in node.live_overrides})
    gpus = golivepeer.gpu_slots(list(node.gpus) or ["emulated-0"], node.containers_per_gpu)
    manager = golivepeer.DryManager(overrides, gpus)
    log = io.StringIO()
    try:
        with redirect_stderr(log):
            golivepeer.configure_models(cfg, configs, manager)
    except golog.GoPanic as exc:
        return f"panic: {exc}"
    except golivepeer.Return:
        return log.getvalue().strip().splitlines()[-1]
    return None


def stricter(rule: str, node: Node) -> bool:
    return rule in STRICTER_ALWAYS or rule == "null-document" or (not node.onchain and rule in STRICTER_OFFCHAIN)


def test_lint_and_the_go_livepeer_standin_agree(standin):
    files = corpus()
    disagreements = []
    tally = {"both start": 0, "both fail": 0, "lint stricter": 0}
    rules_seen: set[str] = set()
    for text, node in files:
        errors = lint_errors(text, node)
        failure = standin_failure(text, node, standin)
        rules_seen.update(errors)
        mirrored = [r for r in errors if not stricter(r, node)]
        if failure is None and not errors:
            tally["both start"] += 1
        elif failure is not None and mirrored:
            tally["both fail"] += 1
        elif failure is not None and errors:
            tally["lint stricter"] += 1  # go-livepeer fails too, for a reason a stricter lint rule names
        elif failure is None and not mirrored:
            tally["lint stricter"] += 1
        else:
            disagreements.append((text, node, errors, failure))
    shown = "\n\n".join(f"{t}\n{n}\nlint: {e}\ngo-livepeer: {f}" for t, n, e, f in disagreements[:5])
    assert not disagreements, f"{len(disagreements)} of {len(files)} files disagree:\n{shown}"
    # the corpus exercises both verdicts and every rule that mirrors a go-livepeer failure
    assert tally["both start"] > FILES // 5 and tally["both fail"] > FILES // 5, tally
    assert {"not-an-object", "bad-type", "missing-pipeline", "unknown-pipeline", "string-price",
            "negative-price", "missing-price", "bad-pixels", "numeric-flag", "currency-needs-feed", "warm-and-cold",
            "warm-beyond-slots", "unknown-live-app", "not-a-list"} <= rules_seen, rules_seen
    assert rules_seen & {"invalid-json", "not-json-number"}, rules_seen
    assert STRICTER_ALWAYS <= rules_seen, STRICTER_ALWAYS - rules_seen


@pytest.mark.parametrize("text,node,rule", [
    # the cases the fidelity review found, each against the stand-in (go-livepeer 176aa41 sources in the rules)
    ('[{"pipeline":"text-to-image","model_id":"a/b","warm":true},{"pipeline":"image-to-image","model_id":"a/b"}]',
     Node(False, None, False, ("0", "1"), 1, frozenset()), None),
    ('[{"pipeline":"llm","model_id":"x/y","url":"http://llm:8000","warm":true},{"pipeline":"llm","model_id":"x/y"}]',
     Node(False, None, False, ("0",), 1, frozenset()), "warm-and-cold"),
    ('[{"pipeline":"llm","model_id":"x/y","price_per_unit":1,"currency":"USD"}]',
     Node(True, None, False, ("0",), 1, frozenset()), None),
    ('[{"pipeline":"llm","model_id":"x/y","price_per_unit":1,"currency":"EUR"}]',
     Node(True, None, False, ("0",), 1, frozenset()), "currency-needs-feed"),
    ('[{"pipeline":"llm","model_id":"x/y"}]', Node(True, "0", False, ("0",), 1, frozenset()), "missing-price"),
    ('[{"pipeline":"llm","model_id":"x/y","capacity":1.0}]', Node(False, None, False, (), 1, frozenset()),
     "bad-type"),
    ('[{"pipeline":"llm","model_id":"x/y","price_per_unit":null}]', Node(False, None, False, (), 1, frozenset()),
     "bad-type"),
    ('[{"pipeline":"llm","model_id":"x/y","optimization_flags":{"BFLOAT16":null}}]',
     Node(False, None, False, (), 1, frozenset()), None),
    ('[{"pipeline":"live-video-to-video","model_id":"scope","warm":true}]',
     Node(False, None, False, ("0",), 1, frozenset()), None),
    ('[{"pipeline":"live-video-to-video","model_id":"my-app","warm":true}]',
     Node(False, None, False, ("0",), 1, frozenset()), "unknown-live-app"),
    ('[{"pipeline":"live-video-to-video","model_id":"my-app"}]',
     Node(False, None, False, ("0",), 1, frozenset()), None),
])
def test_reviewed_cases(standin, text, node, rule):
    errors = lint_errors(text, node)
    failure = standin_failure(text, node, standin)
    if rule is None:
        assert errors == [] and failure is None, (errors, failure)
    else:
        assert rule in errors and failure is not None, (errors, failure)
