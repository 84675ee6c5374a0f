"""`lpfleet lint`: verdicts on the Livepeer docs' own example entries, the line format, --json, exit codes,
node-context options, invalid JSON, and no token in any output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lpfleet.cli import main

# Entries as the Livepeer docs show them (orchestrator AI setup and model-hosting pages).
DOCS_SDXL = {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "price_per_unit": 4768371, "warm": True}
DOCS_REALVIS = {"pipeline": "text-to-image", "model_id": "SG161222/RealVisXL_V4.0_Lightning", "price_per_unit": 4768371,
                "warm": True}
DOCS_SVD = {"pipeline": "image-to-video", "model_id": "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
            "price_per_unit": 3390842, "warm": True, "optimization_flags": {"SFAST": True, "DEEPCACHE": False}}
DOCS_UPSCALE_STRING_PRICE = {"pipeline": "upscale", "model_id": "stabilityai/stable-diffusion-x4-upscaler",
                             "price_per_unit": "0.5e-2USD", "warm": True}
DOCS_EXTERNAL_PLACEHOLDER = {"pipeline": "text-to-image", "model_id": "stabilityai/sd-turbo",
                             "url": "<CONTAINER_URL>:<PORT>", "token": "<OPTIONAL_BEARER_TOKEN>", "capacity": 1,
                             "price_per_unit": 4768371}
DOCS_GATED_WITH_HF_TOKEN = {"pipeline": "llm", "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct", "warm": True,
                            "price_per_unit": 180000000, "token": "hf_docsExampleToken0123456789"}


def lint(tmp_path: Path, entries, *options: str, capsys, text: str | None = None):
    path = tmp_path / "aiModels.json"
    path.write_text(text if text is not None else json.dumps(entries, indent=2))
    code = main(["lint", str(path), *options])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err, str(path)


def test_docs_sdxl_lightning_entry_passes(tmp_path, capsys):
    code, lines, err, _ = lint(tmp_path, [DOCS_SDXL], "--gpus", "1", "--onchain", "--no-price-feed",
                               "--gpu-memory-gb", "24", capsys=capsys)
    assert (code, lines, err) == (0, [], "")


@pytest.mark.parametrize("entry", [DOCS_REALVIS, DOCS_SVD])
def test_docs_valid_entries_pass(tmp_path, capsys, entry):
    code, lines, _, _ = lint(tmp_path, [entry], "--gpus", "1", "--onchain", capsys=capsys)
    assert (code, lines) == (0, [])


def test_docs_string_price_fails_with_the_fix(tmp_path, capsys):
    code, lines, _, path = lint(tmp_path, [DOCS_UPSCALE_STRING_PRICE], capsys=capsys)
    assert code == 1
    assert lines == [
        f'{path}: entry 0 (upscale stabilityai/stable-diffusion-x4-upscaler): price_per_unit: "0.5e-2USD" is a string: '
        'go-livepeer fails with "value is not a number" although the Livepeer docs show this form; '
        'write "price_per_unit": 0.005, "currency": "USD" (USD prices need a price feed: -priceFeedAddr)'
    ]


def test_docs_external_placeholder_url_fails_and_its_token_is_not_printed(tmp_path, capsys):
    code, lines, err, path = lint(tmp_path, [DOCS_EXTERNAL_PLACEHOLDER], capsys=capsys)
    assert code == 1
    assert lines == [f"{path}: entry 0 (text-to-image stabilityai/sd-turbo): url: must be an http(s) URL with a host "
                     "(go-livepeer polls {url}/health at start), got a value without a scheme"]
    assert "OPTIONAL_BEARER_TOKEN" not in "\n".join(lines) + err


def test_docs_hf_token_entry_is_a_warning_not_an_error(tmp_path, capsys):
    code, lines, err, path = lint(tmp_path, [DOCS_GATED_WITH_HF_TOKEN], capsys=capsys)
    assert code == 0
    assert len(lines) == 1 and lines[0].startswith(
        f"{path}: entry 0 (llm meta-llama/Meta-Llama-3.1-8B-Instruct): token: warning: token is only sent to an external url"
    )
    assert "hf_docsExampleToken" not in "\n".join(lines) + err


def test_a_whole_docs_file_reports_every_finding_in_entry_order(tmp_path, capsys):
    entries = [DOCS_REALVIS, DOCS_SVD, DOCS_UPSCALE_STRING_PRICE, DOCS_SDXL, DOCS_EXTERNAL_PLACEHOLDER]
    code, lines, _, path = lint(tmp_path, entries, "--gpus", "4", "--onchain", capsys=capsys)
    assert code == 1
    assert [line.split(": ")[1] for line in lines] == [
        "entry 2 (upscale stabilityai/stable-diffusion-x4-upscaler)",
        "entry 4 (text-to-image stabilityai/sd-turbo)",
    ]


def test_warm_slots_rule_assumes_one_gpu_and_says_so(tmp_path, capsys):
    two_warm = [DOCS_SDXL, DOCS_REALVIS]
    code, lines, err, _ = lint(tmp_path, two_warm, capsys=capsys)
    assert code == 1 and "warm: 2 warm containers so far but the node has 1 GPU slot(s)" in lines[0]
    assert "assumed 1 GPU slot (give --gpus N" in err and "skipped" not in err
    code, lines, err, _ = lint(tmp_path, two_warm, "--gpus", "2", capsys=capsys)
    assert (code, lines, err) == (0, [], "")
    code, lines, err, _ = lint(tmp_path, [DOCS_SDXL], capsys=capsys)
    assert (code, lines, err) == (0, [], "")  # a clean file: no note at all


def test_skipped_rules_are_listed_only_with_verbose(tmp_path, capsys):
    code, lines, err, _ = lint(tmp_path, [DOCS_SDXL], "-v", capsys=capsys)
    assert code == 0 and "node rules skipped" in err and "--onchain" in err and "assumed 1 GPU slot" in err
    code, lines, err, _ = lint(tmp_path, [DOCS_SDXL], "--gpus", "1", capsys=capsys)
    assert (code, lines, err) == (0, [], "")
    code, lines, _, _ = lint(tmp_path, [DOCS_SDXL, DOCS_REALVIS], "--gpus", "1", "--containers-per-gpu", "2",
                             capsys=capsys)
    assert (code, lines) == (0, [])


@pytest.mark.parametrize("literal,field", [
    ("NaN", "price_per_unit"), ("Infinity", "price_per_unit"), ("-Infinity", "capacity"), ("1e400", "capacity"),
    ("1" + "0" * 400, "pixels_per_unit"),
])
def test_strict_json_refuses_non_numbers_naming_the_field(tmp_path, capsys, literal, field):
    text = ('[{"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "price_per_unit": 1, '
            f'"{field}": {literal}}}]'.replace('"price_per_unit": 1, "price_per_unit"', '"price_per_unit"'))
    code, lines, _, path = lint(tmp_path, None, capsys=capsys, text=text)
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith(
        f"{path}: entry 0 (text-to-image ByteDance/SDXL-Lightning): {field}: "), lines
    assert "go-livepeer cannot read the file" in lines[0]


def test_nan_inside_optimization_flags_is_named(tmp_path, capsys):
    text = '[{"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "optimization_flags": {"X": NaN}}]'
    code, lines, _, _ = lint(tmp_path, None, capsys=capsys, text=text)
    assert code == 1 and any(": optimization_flags.X: NaN is not JSON" in line for line in lines), lines


def test_bom_and_non_utf8_files_get_an_operator_message(tmp_path, capsys):
    for data, expected in ((b"\xef\xbb\xbf[]", "byte order mark"), (b'[{"pipeline": "\xff"}]', "not UTF-8 text")):
        path = tmp_path / "bad.json"
        path.write_bytes(data)
        assert main(["lint", str(path)]) == 1
        out = capsys.readouterr().out
        assert f"{path}: file: " in out and expected in out and "utf-8-sig" not in out


def test_size_limit_and_flag_to_raise_it(tmp_path, capsys):
    path = tmp_path / "big.json"
    path.write_text(json.dumps([DOCS_SDXL]) + " " * (2 * 1024 * 1024))
    assert main(["lint", "--max-size-mb", "1", str(path)]) == 1
    assert "file: larger than 1 MB, not read" in capsys.readouterr().out
    assert main(["lint", "--max-size-mb", "3", str(path)]) == 0


def test_findings_are_capped_per_rule_with_a_count_of_the_rest(tmp_path, capsys):
    code, lines, _, path = lint(tmp_path, [1] * 50, "--max-per-rule", "5", capsys=capsys)
    assert code == 1 and len(lines) == 6
    assert lines[-1] == f"{path}: 45 more not-an-object finding(s) not shown (--max-per-rule raises the limit)"
    assert main(["lint", "--json", "--max-per-rule", "5", path]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["errors"] == 50 and len(result["findings"]) == 5
    assert result["omitted"] == [{"file": path, "rule": "not-an-object", "count": 45}]


def test_entries_past_the_limit_are_not_checked_and_it_says_so(tmp_path, capsys):
    code, lines, _, path = lint(tmp_path, [DOCS_SDXL] * 3, "--max-entries", "2", capsys=capsys)
    assert code == 1 and lines[0] == (f"{path}: -: 3 entries, more than any node serves: checked the first 2 "
                                      "(--max-entries raises it)")


@pytest.mark.parametrize("option", ["--gpus=-1", "--gpus=0", "--max-size-mb=0", "--max-per-rule=x"])
def test_bad_option_values_are_usage_errors(tmp_path, option):
    with pytest.raises(SystemExit) as exc:
        main(["lint", option, str(tmp_path / "a.json")])
    assert exc.value.code == 2


def test_empty_file_says_so(tmp_path, capsys):
    code, lines, _, path = lint(tmp_path, None, capsys=capsys, text="  \n")
    assert code == 1 and lines == [f"{path}: json: the file is empty: write [] for no models, or the entries "
                                   "(go-livepeer cannot read an empty file)"]


def test_onchain_option_enables_the_missing_price_rule(tmp_path, capsys):
    entry = {k: v for k, v in DOCS_SDXL.items() if k != "price_per_unit"}
    assert lint(tmp_path, [entry], capsys=capsys)[0] == 0
    assert lint(tmp_path, [entry], "--offchain", capsys=capsys)[0] == 0
    code, lines, _, _ = lint(tmp_path, [entry], "--onchain", capsys=capsys)
    assert code == 1 and ": price_per_unit: missing on a node that prices on-chain" in lines[0]
    assert lint(tmp_path, [entry], "--onchain", "--price-per-unit-flag", capsys=capsys)[0] == 0


def test_price_feed_option(tmp_path, capsys):
    # go-livepeer's default feed is ETH/USD (starter.go:288): USD passes without the flag, EUR does not
    usd = dict(DOCS_SDXL, price_per_unit=0.005, currency="USD")
    assert lint(tmp_path, [usd], "--onchain", "--no-price-feed", capsys=capsys)[0] == 0
    entry = dict(DOCS_SDXL, price_per_unit=0.005, currency="EUR")
    assert lint(tmp_path, [entry], "--onchain", "--price-feed", capsys=capsys)[0] == 0
    code, lines, _, _ = lint(tmp_path, [entry], "--onchain", "--no-price-feed", capsys=capsys)
    assert code == 1 and ": currency: " in lines[0]


def test_gpu_memory_option_warns_only(tmp_path, capsys):
    code, lines, _, _ = lint(tmp_path, [DOCS_SVD], "--gpu-memory-gb", "12", capsys=capsys)
    assert code == 0 and "model_id: warning: needs about 20 GB of GPU memory" in lines[0]


def test_invalid_json_reports_line_and_column(tmp_path, capsys):
    text = '[\n  {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning",}\n]\n'
    code, lines, _, path = lint(tmp_path, None, capsys=capsys, text=text)
    assert code == 1
    assert lines == [f"{path}: json: invalid JSON at line 2 column 72: Expecting property name enclosed in double "
                     "quotes (go-livepeer cannot read the file)"]


def test_unreadable_file_is_an_error(tmp_path, capsys):
    assert main(["lint", str(tmp_path / "missing.json")]) == 1
    assert "missing.json: file: cannot read: No such file or directory" in capsys.readouterr().out


def test_several_files_and_json_output(tmp_path, capsys):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps([DOCS_SDXL]))
    bad.write_text(json.dumps([DOCS_SDXL, dict(DOCS_EXTERNAL_PLACEHOLDER, url="ftp://x", Token="s3cr3t-tok-value")]))
    code = main(["lint", "--json", "--gpus", "2", str(good), str(bad)])
    out = capsys.readouterr().out
    result = json.loads(out)
    assert code == 1 and result["ok"] is False and result["errors"] == 2
    assert {(f["file"], f["entry"], f["field"], f["rule"]) for f in result["findings"]} == {
        (str(bad), 1, "Token", "miscased-key"),
        (str(bad), 1, "url", "bad-url"),
    }
    assert "s3cr3t-tok-value" not in out and "OPTIONAL_BEARER_TOKEN" not in out
    assert result["skipped_rules"] and not any("GPU slots" in s for s in result["skipped_rules"])


def test_clean_json_output(tmp_path, capsys):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([DOCS_SDXL]))
    assert main(["lint", "--json", str(path)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["findings"] == []


def test_stdin(tmp_path, capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps([DOCS_UPSCALE_STRING_PRICE])))
    assert main(["lint", "-"]) == 1
    assert capsys.readouterr().out.startswith("-: entry 0 (upscale ")


SECRET = "byoc-secret-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    "entry",
    [
        {"pipeline": "llm", "model_id": "x/y", "url": "http://llm:8000", "token": SECRET, "price_per_unit": "1USD"},
        {"pipeline": "llm", "model_id": "x/y", "url": "ftp://llm:8000", "TOKEN": SECRET},
        {"pipeline": "lm", "model_id": "x/y", "url": f"http://u:{SECRET}@llm:8000", "tokn": SECRET},
        {"pipeline": "llm", "model_id": "x/y", "token": SECRET, "warm": "yes"},
    ],
)
def test_lint_never_prints_a_token(tmp_path, capsys, entry):
    for options in ([], ["--json"]):
        code, lines, err, _ = lint(tmp_path, [entry], *options, capsys=capsys)
        assert code == 1
        assert SECRET not in "\n".join(lines) + err


@pytest.mark.parametrize("pipeline,meant", [("speech-to-text", "audio-to-text"), ("TTS", "text-to-speech"),
                                            ("text-2-image", "text-to-image")])
def test_pipeline_suggestions_follow_meaning_not_only_spelling(tmp_path, capsys, pipeline, meant):
    code, lines, _, _ = lint(tmp_path, [dict(DOCS_SDXL, pipeline=pipeline)], capsys=capsys)
    assert code == 1 and f'(did you mean "{meant}"?)' in lines[0]


def test_a_host_port_url_is_told_to_add_the_scheme(tmp_path, capsys):
    entry = dict(DOCS_EXTERNAL_PLACEHOLDER, url="byoc.lan:8000")
    code, lines, _, _ = lint(tmp_path, [entry], capsys=capsys)
    assert code == 1 and 'got a host:port without a scheme: add "http://" in front' in lines[0]
    assert "byoc.lan://" not in lines[0]


def test_nan_overridden_by_a_later_duplicate_key_is_still_an_error():
    # found by tests/unit/test_differential.py: Go's decoder stops at the NaN token (encoding/json scanner,
    # "invalid character 'N' looking for beginning of value") whatever key later overrides the field
    from lpfleet.commands.lint import lint_text
    from lpfleet.rules import NodeContext

    text = '[{"capacity": NaN, "pipeline": "llm", "model_id": "x/y", "capacity": 2}]'
    assert [f.rule for f in lint_text(text, NodeContext()) if f.is_error] == ["not-json-number"]
    nested = '[{"pipeline": "llm", "model_id": "x/y", "optimization_flags": {"A": [NaN]}}]'
    assert "not-json-number" in [f.rule for f in lint_text(nested, NodeContext()) if f.is_error]
