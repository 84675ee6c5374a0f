"""Building a NodeSpec from data layers: values, precedence, provenance in every error, secrets held."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from lpfleet.secrets import MissingSecret, Secret
from lpfleet.spec import (
    DATA_KEYS,
    NodeSpec,
    SpecError,
    build_node_spec,
    check_node_spec,
    env_secret,
    merge_layers,
    node_context,
    secret_values,
)

SDXL = {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "price_per_unit": 4768371, "warm": True}
ALL = {"livepeer_network": "arbitrum-one-mainnet", "ai_models_dir": "/root/.lpData/models"}


def build(*layers, groups=("consumer_24gb",)) -> NodeSpec:
    return build_node_spec("gpu-1", list(layers), groups)


def problems(*layers) -> list[str]:
    with pytest.raises(SpecError) as exc:
        build(*layers)
    return [p.format() for p in exc.value.problems]


def test_a_valid_host_builds_every_section():
    spec = build(
        ("host data", {"gpus": [0, 1]}),
        ("group consumer_24gb", {"ai_models": [SDXL], "gpu_memory_gb": 24, "docker_install": "docker.io",
                                 "nvidia_toolkit_version": "1.17.8-1", "weights_mode": "fanout",
                                 "worker_image": "livepeer/go-livepeer:v1", "rollout_batch_size": 2,
                                 "gateway_url": "http://gw:5935"}),
        ("group all", ALL),
    )
    assert spec.host == "gpu-1" and spec.groups == ("consumer_24gb",)
    assert spec.gpus == (0, 1) and spec.gpu_slots == 2 and spec.gpu_memory_gb == 24
    assert spec.models[0].model_id == "ByteDance/SDXL-Lightning" and spec.models[0].warm
    assert spec.docker.install == "docker.io" and spec.toolkit.version == "1.17.8-1"
    assert spec.weights.mode == "fanout" and spec.worker.image == "livepeer/go-livepeer:v1"
    assert spec.worker.network == "arbitrum-one-mainnet" and spec.worker.prices_onchain
    assert spec.rollout.batch_size == 2 and spec.verify.gateway_url == "http://gw:5935"
    assert spec.models_dir == "/root/.lpData/models"


def test_every_documented_key_maps_to_a_spec_field():
    sections = {None: NodeSpec, **{name: type(NodeSpec.model_fields[name].default)
                                   for name in ("docker", "toolkit", "weights", "worker", "verify", "rollout",
                                                "placement")}}
    for key, (section, field) in DATA_KEYS.items():
        assert field in sections[section].model_fields, key


def test_precedence_data_over_host_over_groups_over_all():
    layers = [
        ("--data", {"worker_image": "from-data"}),
        ("host data", {"worker_image": "from-host", "worker_container_name": "host-c"}),
        ("group b", {"worker_container_name": "b-c", "service_addr": "b:1"}),
        ("group a", {"service_addr": "a:1", "orch_addr": "a:2"}),
        ("group all", {"orch_addr": "all:2", "ai_models": [SDXL]}),
    ]
    values, sources = merge_layers(layers)
    assert values["worker_image"] == "from-data" and sources["worker_image"] == "--data"
    assert values["worker_container_name"] == "host-c" and sources["worker_container_name"] == "host data"
    assert values["service_addr"] == "b:1" and sources["service_addr"] == "group b"
    assert values["orch_addr"] == "a:2" and sources["ai_models"] == "group all"
    assert build(*layers).worker.image == "from-data"


def test_an_entry_error_names_host_group_entry_and_field():
    bad = {"pipeline": "upscale", "model_id": "stabilityai/stable-diffusion-x4-upscaler", "price_per_unit": "0.5e-2USD"}
    (line,) = problems(("host data", {}), ("group consumer_24gb", {"ai_models": [SDXL, bad]}), ("group all", ALL))
    assert line.startswith(
        "gpu-1 (group consumer_24gb): ai_models: entry 1 (upscale stabilityai/stable-diffusion-x4-upscaler): "
        "price_per_unit: "
    )
    assert '"price_per_unit": 0.005, "currency": "USD"' in line


def test_the_group_named_is_the_one_whose_value_won():
    lines = problems(("host data", {"ai_models": [dict(SDXL, pipeline="txt2img")]}),
                     ("group consumer_24gb", {"ai_models": [SDXL]}))
    assert lines[0].startswith("gpu-1 (host data): ai_models: entry 0 (txt2img ByteDance/SDXL-Lightning): pipeline:")


def test_all_problems_are_reported_at_once():
    lines = problems(("group g", {"ai_models": [dict(SDXL, Warm=True), dict(SDXL, model_id="x")],
                                  "gpus": [0, 0], "docker_instal": "docker.io", "nvidia_cdi": "maybe"}))
    joined = "\n".join(lines)
    for expected in ("docker_instal: unknown lpfleet data key (did you mean \"docker_install\"?)",
                     "gpus: lists a GPU id twice", "nvidia_cdi:", "entry 0", "entry 1"):
        assert expected in joined
    assert len(lines) >= 5


def test_unknown_keys_with_our_prefixes_are_errors_others_are_left_alone():
    assert problems(("group g", {"ai_models": [SDXL], "ai_model_dir": "/x"}))[0] == (
        'gpu-1 (group g): ai_model_dir: unknown lpfleet data key (did you mean "ai_models_dir"?); see docs/group-data.md'
    )
    spec = build(("group g", {"ai_models": [SDXL], "ssh_user": "root", "my_own_thing": 1, "_helper": 2}))
    assert spec.models


def test_an_hf_token_in_group_data_is_refused_without_echoing_it():
    (line,) = problems(("group g", {"ai_models": [SDXL], "hf_token": "hf_verysecret"}))
    assert "hf_token_env" in line and "hf_verysecret" not in line


def test_missing_ai_models_is_a_warning_and_an_empty_list():
    spec, found = check_node_spec("gpu-1", [("group all", ALL)])
    assert spec is not None and spec.models == ()
    assert [(p.severity, p.key) for p in found] == [("warning", "ai_models")]
    assert found[0].format() == "gpu-1: ai_models: warning: not set: the worker gets an empty aiModels.json (no models)"


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("gpus", [], "non-empty list"),
        ("gpus", [0, -1], ">= 0"),
        ("gpus", "all", "non-empty list"),
        ("runner_containers_per_gpu", 0, ">= 1"),
        ("gpu_memory_gb", -24, "positive"),
        ("ai_models_dir", "models", "absolute host path"),
        ("ai_models_path", "~/.lpData/aiModels.json", "absolute host path"),
        ("ai_models_template", "templates/aiModels.json", "*.j2"),
        ("price_per_unit", -1, "negative"),
        ("price_per_unit", "1USD", "must be a number"),
        ("pixels_per_unit", 1.5, "positive whole"),
        ("hf_token_env", "hf_abc def", "NAME of an environment variable"),
        ("hf_endpoint", "hub.lan:8080", "http(s) URL"),
        ("runner_image_overrides", {"batch": {"txt2img": "x"}}, "unknown pipeline"),
        ("runner_image_overrides", {"defaults": "x"}, "unknown part"),
        ("weights_mode", "torrent", "Input should be"),
        ("docker_install", "podman", "Input should be"),
        ("nvidia_key_fingerprint", "F796ECB0", "40-hex-digit fingerprint"),
        ("nvidia_key_fingerprint", "C95B321B61E88C1809C4F759DDCAE044F796ECBZ", "40-hex-digit fingerprint"),
        ("nvidia_toolkit_version", "latest", "exact Debian package version"),
        ("nvidia_toolkit_version", "1.20.0-1; rm -rf /", "exact Debian package version"),
        ("nvidia_repo_url", "nvidia.github.io/libnvidia-container", "http(s) URL"),
        ("nvidia_repo_url", "https://mirror.example/deb/$(ARCH)\nTrusted: yes", "with no spaces, newlines"),
        ("docker_repo_url", "https://mirror.example/linux\rX-Comment:", "with no spaces, newlines"),
        ("docker_key_url", "https://mirror.example/gpg\tx", "with no spaces, newlines"),
        ("hf_endpoint", "https://hub.example\n", "with no spaces, newlines"),
        ("nvidia_toolkit_version", "1.17.8-1\n", "exact Debian package version"),
        ("hf_token_env", "HF_TOKEN\n", "NAME of an environment variable"),
        ("nvidia_key_fingerprint", "C95B321B61E88C1809C4F759DDCAE044F796ECB0\n", "40-hex-digit fingerprint"),
        ("weights_mirror_port", 70000, "less than or equal to 65535"),
        ("weights_min_rate", 10, "greater than or equal to 1000"),
    ],
)
def test_node_level_values_are_checked(key, value, words):
    lines = problems(("group g", {"ai_models": [dict(SDXL, warm=False)], key: value}))
    assert any(line.startswith(f"gpu-1 (group g): {key}") and words in line for line in lines), lines


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("gpus", [0, 1, 2, 3]),
        ("runner_containers_per_gpu", 2),
        ("hf_token_env", "MY_HF_TOKEN"),
        ("runner_image_overrides", {"default": "m/r:1", "batch": {"llm": "m/r:llm"}, "live": {"comfyui": "m/c"}}),
        ("ai_models_template", "templates/aiModels.compact.json.j2"),
        ("price_per_unit", 0),
        ("nvidia_key_fingerprint", "C95B 321B 61E8 8C18 09C4  F759 DDCA E044 F796 ECB0"),
        ("nvidia_toolkit_version", "1.17.8-1"),
        ("weights_lan_address", "10.0.0.12"),
        ("weights_mirror_port", 18790),
    ],
)
def test_good_node_level_values_pass(key, value):
    assert build(("group g", {"ai_models": [SDXL], key: value}))


def test_remote_worker_needs_orchestrator_address_and_secret():
    lines = problems(("group g", {"ai_models": [SDXL], "worker_mode": "worker"}))
    assert any("orch_addr" in line for line in lines) and any("orch_secret" in line for line in lines)
    spec = build(("group g", {"ai_models": [SDXL], "worker_mode": "worker", "orch_addr": "o:8935",
                              "orch_secret": Secret("s3cret")}))
    assert not spec.worker.prices_onchain


def test_slots_rule_uses_the_hosts_gpus():
    two_warm = [SDXL, dict(SDXL, model_id="SG161222/RealVisXL_V4.0_Lightning")]
    (line,) = problems(("group g", {"ai_models": two_warm, "gpus": [0]}))
    assert "entry 1" in line and "warm:" in line and "1 GPU slot" in line
    assert build(("host data", {"gpus": [0, 1]}), ("group g", {"ai_models": two_warm, "gpus": [0]}))
    assert build(("group g", {"ai_models": two_warm, "gpus": [0], "runner_containers_per_gpu": 2}))


def test_price_rules_follow_the_network_mode():
    no_price = [dict(SDXL, price_per_unit=None)]
    no_price[0].pop("price_per_unit")
    assert build(("group g", {"ai_models": no_price}))  # default network offchain: prices ignored
    (line,) = problems(("group g", {"ai_models": no_price, "livepeer_network": "arbitrum-one-mainnet"}))
    assert "price_per_unit" in line and "on-chain" in line
    assert build(("group g", {"ai_models": no_price, "livepeer_network": "arbitrum-one-mainnet", "price_per_unit": 10}))
    # go-livepeer 176aa41 starter.go:1550: `pricePerUnitBase.Sign() == 0` panics, so -pricePerUnit 0 is no fallback
    (line,) = problems(("group g", {"ai_models": no_price, "livepeer_network": "arbitrum-one-mainnet",
                                    "price_per_unit": 0}))
    assert "price_per_unit" in line and "fallback above 0" in line


def test_usd_price_works_with_the_default_feed_other_currencies_need_theirs():
    # starter.go:288 default -priceFeedAddr is ETH/USD; autoconvertedprice.go:69-71 rejects any other currency
    usd = [dict(SDXL, price_per_unit=0.005, currency="USD")]
    assert build(("group g", {"ai_models": usd, "livepeer_network": "arbitrum-one-mainnet"}))
    eur = [dict(SDXL, price_per_unit=0.005, currency="EUR")]
    (line,) = problems(("group g", {"ai_models": eur, "livepeer_network": "arbitrum-one-mainnet"}))
    assert "currency" in line and "price feed does not have EUR" in line
    assert build(("group g", {"ai_models": eur, "livepeer_network": "arbitrum-one-mainnet",
                              "price_feed_addr": "0x0000000000000000000000000000000000000001"}))


def test_live_override_makes_an_unknown_live_app_valid():
    # go-livepeer ai/worker/docker.go:278 checks overrides.Live before its fixed table
    app = [{"pipeline": "live-video-to-video", "model_id": "my-app", "warm": True}]
    (line,) = problems(("group g", {"ai_models": app}))
    assert "no container image found for live pipeline my-app" in line
    assert build(("group g", {"ai_models": app, "runner_image_overrides": {"live": {"my-app": "reg/app:1"}}}))


def test_warnings_do_not_raise_but_are_reported():
    spec, found = check_node_spec("gpu-1", [("group g", {"ai_models": [dict(SDXL, model_id="acme/custom")]})])
    assert spec is not None
    assert [(p.severity, p.finding.rule) for p in found] == [("warning", "unverified-model")]
    assert found[0].format().startswith("gpu-1 (group g): ai_models: entry 0 (text-to-image acme/custom): model_id: warning:")


def test_tokens_and_orch_secret_are_secrets_everywhere():
    token = "byoc-token-0123456789"
    byoc = {"pipeline": "llm", "model_id": "x/y", "url": "http://llm:8000", "token": Secret(token),
            "price_per_unit": 1}
    spec = build(("group g", {"ai_models": [byoc], "orch_secret": SecretStr("orch-s3cret")}))
    assert isinstance(spec.models[0].token, SecretStr)
    assert token not in repr(spec) and token not in str(spec.model_dump()) and "orch-s3cret" not in repr(spec)
    assert spec.models[0].to_json_dict()["token"] == token
    assert spec.models[0].masked_dict()["token"] == "***"
    assert set(secret_values(spec)) == {token, "orch-s3cret"}


def test_a_secret_in_a_bad_value_is_not_echoed():
    lines = problems(("group g", {"ai_models": [SDXL], "orch_secret": 12345, "docker_install": "s3cr3t-value"}))
    assert all("s3cr3t-value" not in line for line in lines)


def test_env_secret(monkeypatch):
    monkeypatch.setenv("LPFLEET_TEST_SECRET", "value-1")
    assert env_secret("LPFLEET_TEST_SECRET").get_secret_value() == "value-1"
    assert "value-1" not in repr(env_secret("LPFLEET_TEST_SECRET"))
    monkeypatch.delenv("LPFLEET_TEST_SECRET")
    assert isinstance(env_secret("LPFLEET_TEST_SECRET"), MissingSecret)
    assert env_secret("LPFLEET_TEST_SECRET", optional=True) is None


def test_an_unset_env_secret_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("LPFLEET_TEST_ORCH", raising=False)
    monkeypatch.delenv("LPFLEET_TEST_BYOC", raising=False)
    byoc = {"pipeline": "llm", "model_id": "x/y", "url": "http://llm:8000", "price_per_unit": 1,
            "token": env_secret("LPFLEET_TEST_BYOC")}
    lines = problems(("group g", {"ai_models": [SDXL, byoc], "worker_mode": "worker", "orch_addr": "o:8935",
                                  "orch_secret": env_secret("LPFLEET_TEST_ORCH")}))
    assert len(lines) == 2, lines
    assert any("orch_secret" in line and "LPFLEET_TEST_ORCH is not set" in line for line in lines)
    assert any("ai_models[1].token" in line and "LPFLEET_TEST_BYOC is not set" in line for line in lines)
    optional = dict(byoc, token=env_secret("LPFLEET_TEST_BYOC", optional=True))
    assert build(("group g", {"ai_models": [SDXL, optional]})).models[1].token is None


@pytest.mark.parametrize("layer", [
    {"orch_secret": "literal-orch"},
    {"ai_models": [{"pipeline": "llm", "model_id": "x/y", "url": "http://llm:8000", "token": "literal-tok"}]},
])
def test_a_literal_secret_is_refused_for_every_secret_key(layer):
    (line,) = problems(("group g", {"ai_models": [SDXL], **layer}))
    assert "literal secret" in line and 'env_secret("VARIABLE")' in line
    assert "literal-orch" not in line and "literal-tok" not in line


@pytest.mark.parametrize("key,meant", [
    ("weight_mode", "weights_mode"), ("workerMode", "worker_mode"), ("AI_MODELS_DIR", "ai_models_dir"),
    ("livepeer_netwrok", "livepeer_network"), ("nvidia_toolkit_verison", "nvidia_toolkit_version"),
])
def test_a_near_miss_key_is_an_error_whatever_its_prefix(key, meant):
    (line,) = problems(("group g", {"ai_models": [SDXL], key: "x"}))
    assert f'{key}: unknown lpfleet data key (did you mean "{meant}"?)' in line


def test_keys_far_from_ours_are_left_to_pyinfra():
    assert build(("group g", {"ai_models": [SDXL], "ssh_user": "root", "_sudo": True, "warm_models": 2}))


@pytest.mark.parametrize("network,ok", [
    ("offchain", True), ("arbitrum-one-mainnet", True), ("arbitrum", False), ("Arbitrum-One-Mainnet", False),
])
def test_livepeer_network_is_one_go_livepeer_knows(network, ok):
    layer = {"ai_models": [dict(SDXL)], "livepeer_network": network, "price_per_unit": 1}
    if ok:
        assert build(("group g", layer))
    else:
        (line,) = problems(("group g", layer))
        assert "livepeer_network: go-livepeer knows offchain" in line and "arbitrum-one-mainnet" in line
    assert build(("group g", dict(layer, worker_extra_flags=["-ethController=0x" + "1" * 40])))


@pytest.mark.parametrize("version", ["1.17.8", "latest", "v1.17.8-1", 1.17])
def test_toolkit_version_needs_the_debian_revision(version):
    (line,) = problems(("group g", {"ai_models": [SDXL], "nvidia_toolkit_version": version}))
    assert "exact Debian package version with its revision" in line


def test_none_token_is_no_token():
    byoc = {"pipeline": "llm", "model_id": "x/y", "url": "http://llm:8000", "token": None, "price_per_unit": 1}
    spec = build(("group g", {"ai_models": [byoc]}))
    assert spec.models[0].token is None and "token" not in spec.models[0].to_json_dict()


def test_node_context_reflects_the_spec():
    spec = build(("group g", {"ai_models": [SDXL], "gpus": [0, 1], "runner_containers_per_gpu": 2,
                              "gpu_memory_gb": 24, "livepeer_network": "arbitrum-one-mainnet"}))
    ctx = node_context(spec)
    assert (ctx.gpu_slots, ctx.prices_onchain, ctx.price_feed, ctx.gpu_memory_gb) == (4, True, False, 24)


def test_null_flag_is_a_warning_and_reaches_the_runner_as_false():
    # go-livepeer ai/worker/worker.go:21-27: EnvValue decodes null as the boolean false -> "false"
    from lpfleet import runners

    spec, found = check_node_spec("gpu-1", [("group g", {"ai_models": [dict(SDXL, optimization_flags={"SFAST": None})]})])
    assert spec is not None and [p.finding.rule for p in found] == ["null-flag"]
    assert "SFAST=false" in runners.runner_env(spec.models[0])
