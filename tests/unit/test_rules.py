"""go-livepeer's aiModels.json rules: every rule with a case it rejects and a case it accepts."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from lpfleet.rules import (
    ENTRY_KEYS,
    Finding,
    JSONSyntaxError,
    NodeContext,
    check_entries,
    format_number,
    has_errors,
    loads_preserving,
)

SDXL = {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "price_per_unit": 4768371, "warm": True}
FULL = NodeContext(gpu_slots=4, prices_onchain=True, price_feed=False, gpu_memory_gb=80)


def entry(**changes):
    out = dict(SDXL)
    for key, value in changes.items():
        if value is ...:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def rules(entries, context=FULL, severity=None):
    return [f.rule for f in check_entries(entries, context) if severity is None or f.severity == severity]


def errors(entries, context=FULL):
    return [f for f in check_entries(entries, context) if f.is_error]


def only(entries, context=FULL) -> Finding:
    found = errors(entries, context)
    assert len(found) == 1, [f.format("x") for f in found]
    return found[0]


def test_the_docs_sdxl_lightning_entry_passes_clean():
    assert check_entries([SDXL], FULL) == []
    assert check_entries(loads_preserving(json.dumps([SDXL])), FULL) == []


# --- pipeline ---------------------------------------------------------------------------------

def test_unknown_pipeline_is_an_error_with_a_suggestion():
    f = only([entry(pipeline="text-2-image")])
    assert f.rule == "unknown-pipeline" and f.field == "pipeline"
    assert 'did you mean "text-to-image"' in f.message
    assert "Pipeline is not valid capability" in f.message


def test_every_known_pipeline_is_accepted():
    from lpfleet.catalog import PIPELINES

    for pipeline in PIPELINES:
        model = "comfyui" if pipeline == "live-video-to-video" else "acme/model"
        assert not errors([{"pipeline": pipeline, "model_id": model, "price_per_unit": 1}]), pipeline


def test_missing_pipeline_and_model_id():
    assert set(rules([{"price_per_unit": 1}], severity="error")) == {"missing-pipeline", "missing-model-id"}


@pytest.mark.parametrize("model_id", ["ByteDance/SDXL-Lightning\n", " ByteDance/SDXL-Lightning", "ByteDance/SDXL\tLightning"])
def test_a_model_id_with_a_stray_newline_or_space_is_an_error(model_id):
    # `$` in a regex matches before a trailing newline: the id must be checked whole
    found = only([entry(model_id=model_id)])
    assert (found.rule, found.field) == ("bad-model-id", "model_id")
    assert "whitespace or a control character" in found.message


def test_an_external_entry_may_name_its_model_with_spaces_but_not_newlines():
    external = {"pipeline": "llm", "model_id": "My Model", "url": "http://llm.lan:8000", "price_per_unit": 1}
    assert not errors([external])
    assert only([{**external, "model_id": "My Model\n"}]).rule == "bad-model-id"


# --- keys -------------------------------------------------------------------------------------

def test_miscased_key_is_an_error_naming_the_right_spelling():
    f = only([entry(warm=..., Warm=True)])
    assert f.rule == "miscased-key" and f.field == "Warm"
    assert 'did you mean "warm"' in f.message


def test_unknown_key_is_an_error_with_did_you_mean():
    f = only([entry(price_per_unit=..., priceperunit=5)], NodeContext())
    assert f.rule == "unknown-key" and f.field == "priceperunit"
    assert 'did you mean "price_per_unit"' in f.message and "silently ignores" in f.message


def test_unknown_key_without_a_close_match_has_no_suggestion():
    f = only([entry(colour="blue")])
    assert f.rule == "unknown-key" and "did you mean" not in f.message


def test_every_go_livepeer_key_is_known():
    assert set(ENTRY_KEYS) == {
        "pipeline", "model_id", "url", "token", "warm", "capacity", "optimization_flags",
        "price_per_unit", "pixels_per_unit", "currency", "gateway",
    }


def test_miscased_price_still_counts_as_a_price_as_go_does():
    # go-livepeer reads "Price_Per_Unit" as the price: no missing-price error on top of the key error
    found = rules([entry(price_per_unit=..., Price_Per_Unit=1)])
    assert found == ["miscased-key"]


# --- prices -----------------------------------------------------------------------------------

def test_docs_string_price_fails_with_the_fix():
    f = only([entry(price_per_unit="0.5e-2USD")], NodeContext())
    assert f.rule == "string-price" and f.field == "price_per_unit"
    assert '"price_per_unit": 0.005, "currency": "USD"' in f.message
    assert "value is not a number" in f.message


def test_string_price_without_currency_gets_a_number_fix():
    f = only([entry(price_per_unit="4768371")], NodeContext())
    assert f.message.endswith('write "price_per_unit": 4768371')


def test_unparseable_string_price_still_fails():
    f = only([entry(price_per_unit="cheap")], NodeContext())
    assert f.rule == "string-price" and "JSON number" in f.message


def test_numeric_prices_pass_in_every_json_form():
    for text in ("4768371", "0.18", "1e12", "0", "0.5e-2"):
        entries = loads_preserving(f'[{{"pipeline":"text-to-image","model_id":"ByteDance/SDXL-Lightning","price_per_unit":{text}}}]')
        assert not errors(entries), text


def test_negative_price_is_an_error():
    f = only([entry(price_per_unit=-1)])
    assert f.rule == "negative-price" and "panics" in f.message
    assert not errors([entry(price_per_unit=0)])


def test_bool_price_is_a_type_error():
    assert only([entry(price_per_unit=True)]).rule == "bad-type"


def test_missing_price_on_chain_is_an_error():
    f = only([entry(price_per_unit=...)], NodeContext(prices_onchain=True))
    assert f.rule == "missing-price" and "'pricePerUnit' must be set" in f.message


def test_missing_price_off_chain_is_fine():
    assert not errors([entry(price_per_unit=...)], NodeContext(prices_onchain=False))


def test_missing_price_with_a_fallback_flag_is_fine():
    assert not errors([entry(price_per_unit=...)], NodeContext(prices_onchain=True, fallback_price=True))


def test_missing_price_without_context_is_skipped():
    assert not errors([entry(price_per_unit=...)], NodeContext())
    assert any("missing price" in s for s in NodeContext().skipped_rules())


@pytest.mark.parametrize("value", [1.5, 0, -3, "1"])
def test_bad_pixels_per_unit(value):
    f = only([entry(pixels_per_unit=value)])
    assert f.field == "pixels_per_unit" and f.rule in ("bad-pixels", "bad-type")


@pytest.mark.parametrize("value", [1, 1000000, Decimal("2.0")])
def test_good_pixels_per_unit(value):
    assert not errors([entry(pixels_per_unit=value)])


def test_usd_works_with_go_livepeers_default_feed():
    # go-livepeer 176aa41 starter.go:288 defaults -priceFeedAddr to the Arbitrum ETH/USD feed and starter.go:988
    # always builds the watcher on-chain; flags.go:110's help ("a corresponding price feed must be configured")
    # is docs, the code wins.
    for currency in ("USD", "usd"):
        assert not errors([entry(price_per_unit=Decimal("0.005"), currency=currency)],
                          NodeContext(prices_onchain=True, price_feed=False))


def test_a_currency_the_default_feed_lacks_is_an_error():
    # core/autoconvertedprice.go:69-71 "price feed does not have %v as a currency (%v/%v)", starter.go:1568 panic
    f = only([entry(price_per_unit=Decimal("0.005"), currency="EUR")], NodeContext(prices_onchain=True, price_feed=False))
    assert f.rule == "currency-needs-feed" and "price feed does not have EUR as a currency (ETH/USD)" in f.message
    assert "-priceFeedAddr" in f.message


@pytest.mark.parametrize(
    "context",
    [
        NodeContext(prices_onchain=True, price_feed=True),  # a feed of its own: its pair is not known here
        NodeContext(prices_onchain=False, price_feed=False),  # off-chain: prices are ignored
        NodeContext(),  # unknown: skipped
    ],
)
def test_other_currency_accepted_when_a_feed_exists_or_prices_are_ignored(context):
    assert not errors([entry(currency="EUR")], context)


def test_entry_currency_is_replaced_by_the_fallback_price():
    # starter.go:1553-1554: an entry without a price takes -pricePerUnit and its currency
    assert not errors([entry(price_per_unit=..., currency="EUR")],
                      NodeContext(prices_onchain=True, price_feed=False, fallback_price=True))


def test_null_price_fails_the_whole_file():
    # core/ai.go:43-47: JSONRat.UnmarshalJSON is called for null too: SetString("null") -> "value is not a number"
    for name in ("price_per_unit", "pixels_per_unit"):
        f = only([entry(**{name: None})], NodeContext(prices_onchain=False))
        assert f.rule == "bad-type" and f.field == name and "value is not a number: null" in f.message


@pytest.mark.parametrize("currency", ["wei", "WEI", "eth", ""])
def test_fixed_currencies_need_no_feed(currency):
    assert not errors([entry(currency=currency)], NodeContext(prices_onchain=True, price_feed=False))


# --- optimization flags -----------------------------------------------------------------------

def test_numeric_optimization_flag_breaks_the_whole_file():
    f = only([entry(optimization_flags={"MAX_MODEL_LEN": 8192})])
    assert f.rule == "numeric-flag" and f.field == "optimization_flags.MAX_MODEL_LEN"
    assert '"MAX_MODEL_LEN": "8192"' in f.message


def test_string_and_bool_flags_pass():
    assert not errors([entry(optimization_flags={"MAX_MODEL_LEN": "8192", "SFAST": True, "DEEPCACHE": False})])


def test_flag_of_another_type_is_an_error():
    assert only([entry(optimization_flags={"SFAST": ["x"]})]).rule == "bad-type"
    assert only([entry(optimization_flags=["SFAST"])]).rule == "bad-type"


def test_null_flag_becomes_false():
    # go-livepeer ai/worker/worker.go:21-27: json.Unmarshal("null", &bool) succeeds and leaves false -> "false"
    found = check_entries([entry(optimization_flags={"SFAST": None})], FULL)
    assert [(f.rule, f.severity) for f in found] == [("null-flag", "warning")]
    assert '"false"' in found[0].message


@pytest.mark.parametrize("value", [False, "false", "0", None])
@pytest.mark.parametrize("flag", ["BFLOAT16", "TORCH_COMPILE"])
def test_false_turns_bfloat16_and_torch_compile_on(flag, value):
    # ai-runner v0.14.1 runner/src/runner/pipelines/text_to_image.py:79 `if os.environ.get("BFLOAT16"):`,
    # :148 `if os.environ.get("TORCH_COMPILE"):`, image_to_text.py:40; go-livepeer renders false as "false"
    found = check_entries([entry(optimization_flags={flag: value})], FULL)
    assert [(f.rule, f.severity) for f in found] == [("flag-reads-as-on", "warning")]
    assert f"turns {flag} ON" in found[0].message
    assert check_entries([entry(optimization_flags={flag: True})], FULL) == []


@pytest.mark.parametrize("flag", ["MAX_NUM_SEQS", "MAX_NUM_BATCHED_TOKENS", "BACKEND"])
def test_runner_flags_lint_knows(flag):
    # ai-runner v0.14.1 pipelines/llm.py:74-75 (MAX_NUM_BATCHED_TOKENS, MAX_NUM_SEQS), audio_to_text.py:70 (BACKEND)
    assert check_entries([entry(optimization_flags={flag: "1"})], FULL) == []


def test_unknown_flag_is_a_warning_with_suggestion():
    found = check_entries([entry(optimization_flags={"SFAT": True})], FULL)
    assert [f.rule for f in found] == ["unknown-flag"]
    assert found[0].severity == "warning" and 'did you mean "SFAST"' in found[0].message


# --- warm / cold / slots ----------------------------------------------------------------------

def test_same_model_warm_and_cold_is_an_error():
    # go-livepeer 176aa41 starter.go:1499-1506: keyed by (capability, model_id)
    f = only([entry(), entry(warm=False)])
    assert f.rule == "warm-and-cold" and f.index == 1 and "entry 0" in f.message
    assert "Cannot have same model_id (ByteDance/SDXL-Lightning) as cold and warm" in f.message


def test_warm_for_one_pipeline_and_cold_for_another_is_fine():
    # starter.go:1499: capabilityConstraints[pipelineCap].Models[ModelID] - another capability, another map
    assert "warm-and-cold" not in rules([entry(), entry(pipeline="image-to-image", warm=False)])


def test_external_warm_and_managed_cold_panics():
    # starter.go:1491-1506 runs for url entries too (the url entry registers with its own warm flag)
    byoc = {"pipeline": "llm", "model_id": "x/y", "url": "http://llm:8000", "warm": True, "price_per_unit": 1}
    cold = {"pipeline": "llm", "model_id": "x/y", "price_per_unit": 1}
    assert only([byoc, cold]).rule == "warm-and-cold"


def test_same_model_warm_twice_is_no_warm_cold_error():
    assert "warm-and-cold" not in rules([entry(), entry(pipeline="image-to-image")])


def test_warm_containers_beyond_gpu_slots():
    two_warm = [entry(), entry(model_id="SG161222/RealVisXL_V4.0_Lightning")]
    f = only(two_warm, NodeContext(gpu_slots=1))
    assert f.rule == "warm-beyond-slots" and f.index == 1 and "1 GPU slot" in f.message
    assert not errors(two_warm, NodeContext(gpu_slots=2))
    assert not errors(two_warm, NodeContext())  # unknown slots: skipped


def test_capacity_counts_warm_containers():
    assert only([entry(capacity=3)], NodeContext(gpu_slots=2)).rule == "warm-beyond-slots"
    assert not errors([entry(capacity=2)], NodeContext(gpu_slots=2))


def test_external_entries_take_no_gpu_slot():
    byoc = {"pipeline": "llm", "model_id": "x/y", "url": "http://llm:8000", "warm": True, "capacity": 8, "price_per_unit": 1}
    assert not errors([byoc], NodeContext(gpu_slots=1))


def test_warm_must_be_a_boolean():
    f = only([entry(warm="true")])
    assert f.rule == "bad-type" and "cannot parse the whole file" in f.message


def test_capacity_must_be_whole_and_not_negative():
    assert only([entry(capacity=1.5)]).rule == "bad-type"
    assert only([entry(capacity=-1)]).rule == "bad-capacity"
    assert only([entry(capacity="2")]).rule == "bad-type"
    assert only([entry(capacity=2**63)]).rule == "bad-type"


@pytest.mark.parametrize("literal", ["1.0", "1e0", "1E0", "10e-1"])
def test_capacity_as_a_float_literal_fails_the_whole_file(literal):
    # core/ai.go:81 `Capacity int`: encoding/json parses an int field with strconv.ParseInt of the literal
    text = '[{"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "capacity": %s}]' % literal
    f = only(loads_preserving(text), NodeContext())
    assert f.rule == "bad-type" and "cannot unmarshal number" in f.message


# --- identity ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model_id", ["SDXL-Lightning", "ByteDance/", "/x", "a/b/c", "org name/x", ""])
def test_malformed_model_id(model_id):
    assert only([entry(model_id=model_id)]).field == "model_id"


def test_model_id_case_differs_from_the_catalog():
    f = only([entry(model_id="bytedance/sdxl-lightning")])
    assert f.rule == "model-id-case" and 'did you mean "ByteDance/SDXL-Lightning"' in f.message


def test_live_pipeline_takes_an_app_name():
    live = {"pipeline": "live-video-to-video", "model_id": "streamdiffusion", "price_per_unit": 0}
    assert not errors([live])
    assert only([dict(live, model_id="stream diffusion")]).rule == "bad-model-id"


@pytest.mark.parametrize("app", ["scope", "streamdiffusion-sd15-v2v", "streamdiffusion-sdxl-v2v", "noop"])
def test_live_apps_in_go_livepeers_table_pass(app):
    # go-livepeer 176aa41 ai/worker/docker.go:71-88 livePipelineToImage
    assert not errors([{"pipeline": "live-video-to-video", "model_id": app, "warm": True, "price_per_unit": 0}])


def test_unknown_live_app_fails_warm_and_warns_cold():
    # docker.go:283 "no container image found for live pipeline %s"; a warm entry's error aborts startup
    # (starter.go:1476-1478), a cold one only fails its jobs
    warm = {"pipeline": "live-video-to-video", "model_id": "my-app", "warm": True, "price_per_unit": 0}
    f = only([warm])
    assert f.rule == "unknown-live-app" and "no container image found for live pipeline my-app" in f.message
    cold = dict(warm, warm=False)
    assert [(f.rule, f.severity) for f in check_entries([cold], FULL) if f.rule == "unknown-live-app"] == [
        ("unknown-live-app", "warning")]
    assert not errors([warm], NodeContext(live_overrides=frozenset({"my-app"})))


def test_external_entry_may_name_its_model_freely():
    byoc = {"pipeline": "llm", "model_id": "llama3.1:8b", "url": "http://ollama:11434", "price_per_unit": 1}
    assert not errors([byoc])


@pytest.mark.parametrize("url", ["ftp://files/x", "localhost:8000", "http://", "file:///etc/passwd", "//host:1"])
def test_non_http_url_is_an_error(url):
    f = only([{"pipeline": "llm", "model_id": "x/y", "url": url, "price_per_unit": 1}])
    assert f.rule == "bad-url" and f.field == "url"


@pytest.mark.parametrize("url", ["http://llm:8000", "https://flux.lan:8443/v1", "http://10.0.0.5"])
def test_http_urls_pass(url):
    assert not errors([{"pipeline": "llm", "model_id": "x/y", "url": url, "price_per_unit": 1}])


def test_gateway_is_default_or_an_address():
    assert not errors([entry(gateway="default")])
    assert not errors([entry(gateway="0x" + "ab" * 20)])
    assert only([entry(gateway="my-gateway")]).rule == "bad-gateway"


# --- warnings ---------------------------------------------------------------------------------

def test_unverified_model_is_a_warning_only():
    found = check_entries([entry(model_id="acme/private-model")], FULL)
    assert [(f.rule, f.severity) for f in found] == [("unverified-model", "warning")]


def test_vram_estimate_above_gpu_memory_warns():
    found = check_entries([entry(model_id="meta-llama/Meta-Llama-3.1-8B-Instruct", pipeline="llm")],
                          NodeContext(gpu_memory_gb=12))
    assert [(f.rule, f.severity) for f in found] == [("vram", "warning")]
    assert not check_entries([entry(model_id="meta-llama/Meta-Llama-3.1-8B-Instruct", pipeline="llm")],
                             NodeContext(gpu_memory_gb=80))


def test_token_without_url_warns():
    found = check_entries([entry(token="hf_abcdef0123456789")], FULL)
    assert [(f.rule, f.severity) for f in found] == [("token-without-url", "warning")]
    assert not has_errors(found)


# --- shape ------------------------------------------------------------------------------------

def test_the_file_must_be_a_list_of_objects():
    assert rules({"pipeline": "llm"}) == ["not-a-list"]
    assert rules(["text-to-image"]) == ["not-an-object"]


def test_findings_carry_index_pipeline_and_model_for_the_line_format():
    f = only([SDXL, entry(model_id="SG161222/RealVisXL_V4.0_Lightning", warm=False, price_per_unit="1USD")],
             NodeContext())
    assert f.format("aiModels.json") == (
        'aiModels.json: entry 1 (text-to-image SG161222/RealVisXL_V4.0_Lightning): price_per_unit: '
        + f.message
    )
    warning = Finding("warning", "x", "careful", "model_id", 0, "llm", "a/b")
    assert warning.format("f") == "f: entry 0 (llm a/b): model_id: warning: careful"


def test_every_error_in_a_file_is_reported_not_just_the_first():
    found = errors([entry(pipeline="nope"), entry(model_id="SG161222/RealVisXL_V4.0_Lightning", price_per_unit=-1),
                    entry(model_id="openai/whisper-large-v3", Warm=False, warm=...)])
    assert [f.index for f in found] == [0, 1, 2]


SECRET = "hf_SuperSecretToken_1234567890"


@pytest.mark.parametrize(
    "bad",
    [
        {"token": SECRET},  # token without url (warning)
        {"Token": SECRET},  # mis-cased
        {"tokn": SECRET},  # unknown key holding a secret
        {"token": 12345, "url": "http://x:1"},  # wrong type
        {"url": f"https://user:{SECRET}@host/", "token": SECRET},
        {"url": f"ftp://{SECRET}@host/", "token": SECRET},
    ],
)
def test_no_message_ever_carries_a_token(bad):
    found = check_entries([dict(SDXL, **bad)], FULL)
    dumped = json.dumps([f.to_dict() for f in found]) + "\n".join(f.format("f") for f in found)
    assert SECRET not in dumped


# --- parsing ----------------------------------------------------------------------------------

def test_loads_preserving_keeps_the_literal_value():
    parsed = loads_preserving('[{"price_per_unit": 0.18, "n": 7, "e": 1e12}]')
    assert parsed[0]["price_per_unit"] == Decimal("0.18")
    assert parsed[0]["n"] == 7 and isinstance(parsed[0]["n"], int)
    assert parsed[0]["e"] == Decimal("1e12")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(literal):
    # Go's encoding/json (and RFC 8259) has no such literals; Python's json reads them unless told not to
    with pytest.raises(JSONSyntaxError) as info:
        loads_preserving('[{"price_per_unit": "NaN", "capacity":\n %s}]' % literal)
    assert info.value.line == 2 and info.value.column == (2 if literal.startswith("-") else 2) + (
        1 if literal.startswith("-") else 0)


def test_invalid_json_reports_line_and_column():
    with pytest.raises(JSONSyntaxError) as exc:
        loads_preserving('[\n  {"pipeline": "llm",}\n]')
    assert exc.value.line == 2 and exc.value.column > 1


def test_format_number():
    assert format_number(Decimal("0.5e-2")) == "0.005"
    assert format_number(4768371) == "4768371"
    assert format_number(Decimal("1e12")) == "1000000000000"
    assert format_number(0.18) == "0.18"


def test_flags_on_a_cold_entry_warn():
    # go-livepeer 176aa41 starter.go:1486-1489 warns; ai/worker/docker.go:240-241 starts cold containers without flags
    found = check_entries([entry(warm=False, optimization_flags={"SFAST": True})], FULL)
    assert [(f.rule, f.severity) for f in found] == [("flags-without-warm", "warning")]
    assert check_entries([entry(optimization_flags={"SFAST": True})], FULL) == []
