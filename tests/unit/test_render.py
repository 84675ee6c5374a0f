"""aiModels.json rendering: tojson for every value, parse-back checked, tokens only where they belong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lpfleet.fleet import PROJECT_ROOT
from lpfleet.render import RenderError, render_ai_models
from lpfleet.rules import check_entries, loads_preserving
from lpfleet.secrets import Secret
from lpfleet.secrets import mask as mask_secrets
from lpfleet.spec import build_node_spec, node_context

TOKEN = 'tok"en</script>&\\n-0123456789'
ENTRIES = [
    {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "price_per_unit": 4768371, "warm": True,
     "optimization_flags": {"SFAST": True, "DEEPCACHE": False}},
    {"pipeline": "audio-to-text", "model_id": "openai/whisper-large-v3", "price_per_unit": 0.18,
     "pixels_per_unit": 1000000},
    {"pipeline": "llm", "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct", "url": "http://llm.lan:8000",
     "token": Secret(TOKEN), "capacity": 4, "price_per_unit": 1e12, "gateway": "default"},
    {"pipeline": "live-video-to-video", "model_id": "comfyui", "price_per_unit": 0,
     "optimization_flags": {"MAX_MODEL_LEN": "8192"}},
]


def spec_for(entries=ENTRIES, **data):
    return build_node_spec("gpu-1", [("group g", {"ai_models": entries, "gpus": [0, 1], **data})], ("g",))


def test_rendered_file_is_exactly_the_entries_as_go_livepeer_reads_them():
    text = render_ai_models(spec_for(), PROJECT_ROOT)
    parsed = json.loads(text)
    assert parsed == [
        {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "warm": True, "price_per_unit": 4768371,
         "optimization_flags": {"DEEPCACHE": False, "SFAST": True, "HF_HUB_OFFLINE": "1"}},
        {"pipeline": "audio-to-text", "model_id": "openai/whisper-large-v3", "price_per_unit": 0.18,
         "pixels_per_unit": 1000000},
        {"pipeline": "llm", "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct", "url": "http://llm.lan:8000",
         "token": TOKEN, "capacity": 4, "price_per_unit": 1e12, "gateway": "default"},
        {"pipeline": "live-video-to-video", "model_id": "comfyui", "price_per_unit": 0,
         "optimization_flags": {"MAX_MODEL_LEN": "8192"}},
    ]
    # unset fields are left out (go-livepeer's omitempty), warm false is not written
    assert '"warm": false' not in text and "null" not in text
    # the cold comfyui entry's flags reach no runner (go-livepeer starter.go:1486-1489): a warning, nothing else
    found = check_entries(loads_preserving(text), node_context(spec_for()))
    assert [(f.rule, f.index) for f in found] == [("flags-without-warm", 3)]


def test_warm_managed_runners_are_pinned_offline_unless_told():
    """go-livepeer passes optimization flags to warm containers only (go-livepeer 176aa41
    ai/worker/docker.go:400-407, borrowed cold containers get none: docker.go:240-241); huggingface_hub
    0.23.2 reads HF_HUB_OFFLINE (constants.py:117). Cold, external and live entries are left as written."""
    flags = [e.get("optimization_flags") for e in json.loads(render_ai_models(spec_for(), PROJECT_ROOT))]
    assert flags[0]["HF_HUB_OFFLINE"] == "1" and flags[1] is None and flags[2] is None
    assert "HF_HUB_OFFLINE" not in flags[3]
    off = spec_for(runner_hf_offline=False)
    assert "HF_HUB_OFFLINE" not in off.models[0].optimization_flags
    own = spec_for([{**ENTRIES[0], "optimization_flags": {"HF_HUB_OFFLINE": "0"}}])
    assert own.models[0].optimization_flags == {"HF_HUB_OFFLINE": "0"}  # the operator's own value wins


def test_prices_stay_json_numbers():
    text = render_ai_models(spec_for(), PROJECT_ROOT)
    parsed = loads_preserving(text)
    assert [type(e["price_per_unit"]).__name__ for e in parsed] == ["int", "Decimal", "Decimal", "int"]


def test_a_hostile_token_cannot_break_the_json():
    text = render_ai_models(spec_for(), PROJECT_ROOT)
    assert json.loads(text)[2]["token"] == TOKEN
    assert "</script>" not in text  # tojson escapes it (still the same JSON string)


def test_masked_render_has_no_token():
    text = render_ai_models(spec_for(), PROJECT_ROOT, masked=True)
    assert json.loads(text)[2]["token"] == "***"
    assert 'tok"en' not in text and "0123456789" not in text


def test_compact_template_renders_the_same_content_one_entry_per_line():
    spec = spec_for(ai_models_template="templates/aiModels.compact.json.j2")
    text = render_ai_models(spec, PROJECT_ROOT)
    assert json.loads(text) == json.loads(render_ai_models(spec_for(), PROJECT_ROOT))
    assert len(text.strip().splitlines()) == len(ENTRIES) + 2


def write_template(tmp_path: Path, body: str) -> str:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "custom.json.j2").write_text(body)
    return "templates/custom.json.j2"


def test_a_template_that_changes_the_entries_is_refused(tmp_path):
    name = write_template(tmp_path, "[{% for e in entries %}{{ e | tojson }}{{ ',' if not loop.last }}{% endfor %}, "
                                    '{"pipeline": "upscale", "model_id": "a/b", "price_per_unit": 1}]')
    with pytest.raises(RenderError, match="differs from the spec at entry 4"):
        render_ai_models(spec_for(ai_models_template=name), tmp_path)


def test_a_template_that_breaks_a_rule_is_refused_with_the_rule(tmp_path):
    # a hand-made template quoting the price: the parse-back check catches what go-livepeer would reject
    name = write_template(tmp_path, '[{% for e in entries %}{"pipeline": {{ e.pipeline | tojson }}, '
                                    '"model_id": {{ e.model_id | tojson }}, "price_per_unit": "{{ e.price_per_unit }}"}'
                                    "{{ ',' if not loop.last }}{% endfor %}]")
    with pytest.raises(RenderError) as exc:
        render_ai_models(spec_for(ENTRIES[:1], ai_models_template=name), tmp_path)
    assert "gpu-1: templates/custom.json.j2 output: entry 0 (text-to-image ByteDance/SDXL-Lightning): price_per_unit:" in str(exc.value)


def test_a_template_that_is_not_json_is_refused(tmp_path):
    name = write_template(tmp_path, "[{% for e in entries %}{{ e | tojson }},{% endfor %}]")
    with pytest.raises(RenderError, match="invalid JSON: line 1"):
        render_ai_models(spec_for(ai_models_template=name), tmp_path)


def test_undefined_template_variables_are_errors(tmp_path):
    name = write_template(tmp_path, "{{ nope }}")
    with pytest.raises(RenderError, match="nope"):
        render_ai_models(spec_for(ai_models_template=name), tmp_path)


def test_missing_template_is_named(tmp_path):
    with pytest.raises(RenderError, match="templates/none.json.j2 not found"):
        render_ai_models(spec_for(ai_models_template="templates/none.json.j2"), tmp_path)


def test_template_outside_the_project_is_refused(tmp_path):
    with pytest.raises(RenderError, match="inside the project"):
        render_ai_models(spec_for(ai_models_template="../etc/x.j2"), tmp_path)


def test_mask_secrets_hides_known_values_and_any_token_value():
    old_file = '[{"pipeline": "llm", "token": "old-token-value", "Token" : "other\\"quoted"}]'
    masked = mask_secrets(old_file + " new-secret", ["new-secret"])
    assert "old-token-value" not in masked and "other" not in masked and "new-secret" not in masked
    assert masked.count("***") == 3
    assert json.loads(mask_secrets(old_file))[0]["token"] == "***"
