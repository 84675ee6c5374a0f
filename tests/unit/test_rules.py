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


def test_non_wei_currency_without_a_price_feed_is_an_error():
    f = only([entry(price_per_unit=Decimal("0.005"), currency="USD")], NodeContext(prices_onchain=True, price_feed=False))
    assert f.rule == "currency-needs-feed" and "-priceFeedAddr" in f.message


@pytest.mark.parametrize(
    "context",
    [
        NodeContext(prices_onchain=True, price_feed=True),  # a feed is configured
        NodeContext(prices_onchain=False, price_feed=False),  # off-chain: prices are ignored
        NodeContext(),  # unknown: skipped
    ],
)
def test_non_wei_currency_accepted_when_a_feed_exists_or_prices_are_ignored(context):
    assert not errors([entry(currency="USD")], context)


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
    assert only([entry(optimization_flags={"SFAST": None})]).rule == "bad-type"
    assert only([entry(optimization_flags=["SFAST"])]).rule == "bad-type"


def test_unknown_flag_is_a_warning_with_suggestion():
    found = check_entries([entry(optimization_flags={"SFAT": True})], FULL)
    assert [f.rule for f in found] == ["unknown-flag"]
    assert found[0].severity == "warning" and 'did you mean "SFAST"' in found[0].message


# --- warm / cold / slots ----------------------------------------------------------------------

def test_same_model_warm_and_cold_is_an_error():
    f = only([entry(), entry(pipeline="image-to-image", warm=False)])
    assert f.rule == "warm-and-cold" and f.index == 1 and "entry 0" in f.message


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


def test_invalid_json_reports_line_and_column():
    with pytest.raises(JSONSyntaxError) as exc:
        loads_preserving('[\n  {"pipeline": "llm",}\n]')
    assert exc.value.line == 2 and exc.value.column > 1


def test_format_number():
    assert format_number(Decimal("0.5e-2")) == "0.005"
    assert format_number(4768371) == "4768371"
    assert format_number(Decimal("1e12")) == "1000000000000"
    assert format_number(0.18) == "0.18"
