"""Verification from node snapshots (the dicts the node script prints): every check, healthy and broken."""

from __future__ import annotations

import copy

import pytest

from lpfleet.checks import Cause, exit_code
from lpfleet.spec import AIModelEntry, NodeSpec, VerifySpec, WorkerSpec
from lpfleet.verification import (
    ExpectedRunner,
    WeightsWanted,
    display_url,
    gateway_checks,
    node_params,
    verify_host,
    weights_wanted_from_spec,
)
from lpfleet.verify_snapshot import check_snapshot

T2I = "SG161222/RealVisXL_V4.0_Lightning"
A2T = "openai/whisper-large-v3"
BYOC_TOKEN = "byoc-secret-token-123"
ORCH_SECRET = "orch-secret-value-456"


def make_spec(**over) -> NodeSpec:
    fields = dict(
        host="node-1",
        groups=("sandbox_datacenter",),
        models=(
            AIModelEntry(pipeline="text-to-image", model_id=T2I, warm=True),
            AIModelEntry(pipeline="audio-to-text", model_id=A2T, warm=True),
            AIModelEntry(pipeline="llm", model_id="byoc/llm", url="http://10.0.0.5:9000", token=BYOC_TOKEN),
        ),
        gpus=(0, 1),
        worker=WorkerSpec(orch_secret=ORCH_SECRET),
    )
    fields.update(over)
    return NodeSpec(**fields)


RUNNERS = [
    ExpectedRunner(
        f"text-to-image_{T2I.replace('/', '-').replace('_', '-')}_8000", 8000, "text-to-image", T2I, 0
    ),
    ExpectedRunner(f"audio-to-text_{A2T.replace('/', '-')}_8401", 8401, "audio-to-text", A2T, 1),
]


def container(runner: ExpectedRunner, **over) -> dict:
    c = {
        "id": "abc",
        "name": runner.name,
        "image": "livepeer/ai-runner:latest",
        "status": "running",
        "running": True,
        "restarting": False,
        "exit_code": 0,
        "oom_killed": False,
        "error": "",
        "up_s": 600.0,
        "exited_ago_s": None,
        "restart_count": 0,
        "restart_policy": "on-failure:3",
        "docker_health": "",
        "creator": "ai-worker",
        "creator_id": "orch",
        "port": runner.port,
        "host_ip": "127.0.0.1",
        "pipeline": runner.pipeline,
        "model_id": runner.model_id,
    }
    c.update(over)
    return c


def healthy_snapshot() -> dict:
    return {
        "version": 1,
        "gpus": {
            "present": True,
            "rc": 0,
            "error": "",
            "lines": [
                "0, GPU-aaa, NVIDIA A100-SXM4-80GB, 81920, 1200",
                "1, GPU-bbb, NVIDIA A100-SXM4-80GB, 81920, 900",
            ],
        },
        "docker": {
            "ok": True,
            "error": "",
            "runtimes": ["nvidia", "runc"],
            "default_runtime": "runc",
            "version": "20.10.24",
        },
        "worker": {
            "id": "w1",
            "name": "livepeer_ai_worker",
            "image": "livepeer/go-livepeer:sandbox",
            "status": "running",
            "running": True,
            "restarting": False,
            "exit_code": 0,
            "oom_killed": False,
            "up_s": 900.0,
            "exited_ago_s": None,
            "restart_count": 0,
            "port": None,
        },
        "containers": [container(r) for r in RUNNERS],
        "probes": [
            {
                "url": "http://127.0.0.1:8000/health",
                "status": 200,
                "body": '{"status":"OK"}',
                "error": "",
                "elapsed_s": 0.01,
            },
            {
                "url": "http://127.0.0.1:8401/health",
                "status": 200,
                "body": '{"status":"IDLE"}',
                "error": "",
                "elapsed_s": 0.01,
            },
            {
                "url": "http://10.0.0.5:9000/health",
                "status": 200,
                "body": "ok",
                "error": "",
                "elapsed_s": 0.02,
            },
        ],
        "logs": {},
        "config": {
            "exists": True,
            "sha256": "f" * 64,
            "mode": "0o600",
            "entries": [
                {
                    "pipeline": "text-to-image",
                    "model_id": T2I,
                    "warm": True,
                    "capacity": None,
                    "external": False,
                },
                {
                    "pipeline": "audio-to-text",
                    "model_id": A2T,
                    "warm": True,
                    "capacity": None,
                    "external": False,
                },
                {
                    "pipeline": "llm",
                    "model_id": "byoc/llm",
                    "warm": False,
                    "capacity": None,
                    "external": True,
                },
            ],
        },
        "weights": [
            {
                "id": T2I,
                "repo_dir": True,
                "commit": "c" * 40,
                "snapshot": True,
                "files": 4,
                "bytes": 7_000_000,
                "missing": [],
                "wrong_size": [],
                "expected_commit": "c" * 40,
            },
            {
                "id": A2T,
                "repo_dir": True,
                "commit": "d" * 40,
                "snapshot": True,
                "files": 3,
                "bytes": 5_000,
                "missing": [],
                "wrong_size": [],
                "expected_commit": None,
            },
        ],
    }


SIGNATURES = {
    "CUDA out of memory": ("cuda-oom", "reduce warm count or pick a smaller variant"),
    "Failed to load model": ("model-load-failed", "check model_id"),
    "Error AI worker warming": ("runner-timeout", "check the models dir"),
}


def classify(lines):
    """A small classifier: verification's job is to hand it the right container's lines, not to diagnose."""
    found = []
    for line in lines:
        for signature, (cause, hint) in SIGNATURES.items():
            if signature in line:
                found.append(Cause(cause, line, hint))
    return found


def checks_by_name(result):
    return {c.check: c for c in result.checks}


def verify(snap, spec=None, runners=RUNNERS, **kw):
    return verify_host(spec or make_spec(), snap, runners, classify=classify, **kw)


def test_healthy_node_is_green():
    result = verify(healthy_snapshot())
    assert result.status == "healthy", [
        (c.check, c.state, c.detail) for c in result.checks if c.state != "ok"
    ]
    checks = checks_by_name(result)
    assert checks["gpus"].detail.startswith("2 GPUs: 0: NVIDIA A100-SXM4-80GB 80 GiB")
    assert checks["nvidia runtime"].state == "ok"
    assert checks["warm slots"].detail.startswith("2 warm / 2 slots")
    assert checks[f"runner {RUNNERS[0].name}"].detail.startswith("OK on 127.0.0.1:8000")
    assert checks[f"runner {RUNNERS[1].name}"].detail.startswith("IDLE on 127.0.0.1:8401")
    assert checks["external llm byoc/llm"].detail.startswith("http://10.0.0.5:9000/health: 200")
    assert checks[f"weights {T2I}"].detail == f"complete: 4 files, 7.0 MB, commit {'c' * 12}"
    assert exit_code([result]) == 0


def test_runner_crashing_with_cuda_oom_is_a_restart_loop_with_its_cause():
    snap = healthy_snapshot()
    snap["containers"][0].update(
        status="restarting", running=True, restarting=True, exit_code=1, restart_count=3
    )
    snap["logs"] = {
        RUNNERS[0].name: [
            "Loading pipeline...",
            "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total)",
        ]
    }
    result = verify(snap)
    check = checks_by_name(result)[f"runner {RUNNERS[0].name}"]
    assert check.state == "fail"
    assert "restart loop" in check.detail and "3 restarts" in check.detail
    assert [c.cause for c in check.causes] == ["cuda-oom"]
    assert "Tried to allocate" in check.causes[0].line
    assert checks_by_name(result)[f"runner {RUNNERS[1].name}"].state == "ok"
    assert exit_code([result]) == 1


def test_exited_runner_with_failed_load():
    snap = healthy_snapshot()
    snap["containers"][1].update(
        status="exited", running=False, exit_code=1, restart_count=3, up_s=None, exited_ago_s=30.0
    )
    snap["logs"] = {RUNNERS[1].name: ["ERROR: Failed to load model openai/whisper-large-v3: 404"]}
    check = checks_by_name(verify(snap))[f"runner {RUNNERS[1].name}"]
    assert check.state == "fail" and check.detail.startswith("stopped 30 s ago (exit code 1, 3 restarts")
    assert check.causes[0].cause == "model-load-failed"


def test_running_runner_that_restarted_recently_is_still_looping():
    snap = healthy_snapshot()
    snap["containers"][0].update(restart_count=2, up_s=4.0)
    check = checks_by_name(verify(snap))[f"runner {RUNNERS[0].name}"]
    assert check.state == "fail" and "restart loop: 2 restarts, up only 4 s" in check.detail


def test_runner_that_restarted_long_ago_and_is_ok_warns():
    snap = healthy_snapshot()
    snap["containers"][0].update(restart_count=1, up_s=3600.0)
    check = checks_by_name(verify(snap))[f"runner {RUNNERS[0].name}"]
    assert check.state == "warn" and "restarted 1 time" in check.detail


def test_loading_reported_with_how_long_and_fails_past_go_livepeers_limit():
    snap = healthy_snapshot()
    snap["containers"][0]["up_s"] = 42.0
    snap["probes"][0] = {
        "url": "http://127.0.0.1:8000/health",
        "status": 200,
        "body": '{"status":"LOADING"}',
        "error": "",
        "elapsed_s": 0.01,
    }
    result = verify(snap)
    check = checks_by_name(result)[f"runner {RUNNERS[0].name}"]
    assert check.state == "loading" and check.detail.startswith("LOADING for 42 s")
    assert check.data["loading_s"] == 42.0
    assert result.status == "healthy"  # loading is not a failure yet

    snap["containers"][0]["up_s"] = 200.0
    check = checks_by_name(verify(snap))[f"runner {RUNNERS[0].name}"]
    assert check.state == "fail" and "gives up after 180 s" in check.detail


def test_batch_runner_not_bound_yet_counts_as_loading():
    snap = healthy_snapshot()
    snap["containers"][0]["up_s"] = 10.0
    snap["probes"][0] = {
        "url": "http://127.0.0.1:8000/health",
        "status": None,
        "body": "",
        "error": "connection refused",
        "elapsed_s": 0.0,
    }
    check = checks_by_name(verify(snap))[f"runner {RUNNERS[0].name}"]
    assert check.state == "loading" and "port not bound yet" in check.detail


def test_runner_health_error_and_500():
    snap = healthy_snapshot()
    snap["probes"][0]["body"] = '{"status":"ERROR"}'
    snap["probes"][1].update(status=500, body='{"detail":{"msg":"Failed to retrieve pipeline status."}}')
    checks = checks_by_name(verify(snap))
    assert checks[f"runner {RUNNERS[0].name}"].state == "fail"
    assert "HTTP 200 ERROR" in checks[f"runner {RUNNERS[0].name}"].detail
    assert "HTTP 500" in checks[f"runner {RUNNERS[1].name}"].detail


def test_missing_runner_is_explained_by_the_workers_log():
    snap = healthy_snapshot()
    del snap["containers"][1]
    snap["logs"] = {
        "livepeer_ai_worker": [
            "E1126 Error AI worker warming audio-to-text container: timed out waiting for runner"
        ]
    }
    check = checks_by_name(verify(snap))[f"runner {RUNNERS[1].name}"]
    assert check.state == "fail" and check.detail.startswith("missing: no container")
    assert "the worker did not start it" in check.detail
    assert check.causes[0].cause == "runner-timeout"


def test_stopped_worker():
    snap = healthy_snapshot()
    snap["worker"].update(status="exited", running=False, exit_code=0, up_s=None, exited_ago_s=12.0)
    snap["containers"] = []
    checks = checks_by_name(verify(snap))
    worker = checks["worker livepeer_ai_worker"]
    assert worker.state == "fail" and worker.detail.startswith("stopped 12 s ago (exit code 0")
    assert "the worker is not running" in checks[f"runner {RUNNERS[0].name}"].detail


def test_missing_worker():
    snap = healthy_snapshot()
    snap["worker"] = None
    check = checks_by_name(verify(snap))["worker livepeer_ai_worker"]
    assert check.state == "fail" and "not found" in check.detail


def test_external_url_down_is_found_and_never_shows_credentials():
    spec = make_spec(
        models=(
            AIModelEntry(
                pipeline="llm",
                model_id="byoc/llm",
                url="http://user:pw@10.0.0.5:9000/?key=abc",
                token=BYOC_TOKEN,
            ),
        )
    )
    snap = healthy_snapshot()
    snap["config"]["entries"] = [{"pipeline": "llm", "model_id": "byoc/llm", "warm": False, "external": True}]
    snap["containers"] = []
    snap["probes"] = [
        {
            "url": "http://user:pw@10.0.0.5:9000/?key=abc/health",
            "status": None,
            "body": "",
            "error": "connection refused",
            "elapsed_s": 0.0,
        }
    ]
    result = verify(snap, spec=spec, runners=[])
    check = checks_by_name(result)["external llm byoc/llm"]
    assert check.state == "fail" and "connection refused" in check.detail
    assert check.causes[0].cause == "external-health-failed"
    text = repr(result)
    assert "pw" not in check.detail and "key=abc" not in check.detail and BYOC_TOKEN not in text


def test_warm_count_above_gpu_slots_on_the_node():
    # the group data says two GPUs, the node shows one: two warm runners cannot both get a slot
    snap = healthy_snapshot()
    snap["gpus"]["lines"] = snap["gpus"]["lines"][:1]
    checks = checks_by_name(verify(snap))
    assert (
        checks["gpus"].state == "fail" and "-nvidia 0,1 but nvidia-smi lists only 0" in checks["gpus"].detail
    )
    slots = checks["warm slots"]
    assert slots.state == "fail" and slots.detail.startswith(
        "2 warm containers in the deployed aiModels.json but 1 GPU slot"
    )


def test_warm_count_read_from_the_deployed_file():
    # a hand-edited aiModels.json on the node (capacity 3) is what go-livepeer reads
    snap = healthy_snapshot()
    snap["config"]["entries"][0]["capacity"] = 3
    checks = checks_by_name(verify(snap))
    assert checks["warm slots"].state == "fail" and checks["warm slots"].data == {"warm": 4, "slots": 2}


def test_config_drift_missing_file_and_mode():
    snap = healthy_snapshot()
    snap["config"]["entries"][1]["warm"] = False
    check = checks_by_name(verify(snap))["aiModels.json"]
    assert check.state == "fail"
    assert "missing audio-to-text openai/whisper-large-v3 (warm)" in check.detail
    assert "not in group data audio-to-text openai/whisper-large-v3 (cold)" in check.detail

    snap = healthy_snapshot()
    snap["config"] = {"exists": False}
    assert checks_by_name(verify(snap))["aiModels.json"].state == "fail"

    snap = healthy_snapshot()
    snap["config"]["mode"] = "0o644"
    assert checks_by_name(verify(snap))["aiModels.json"].state == "warn"

    snap = healthy_snapshot()
    snap["config"] = {"exists": True, "error": "not valid JSON: Expecting value: line 1 column 1 (char 0)"}
    check = checks_by_name(verify(snap))["aiModels.json"]
    assert check.state == "fail" and check.causes[0].cause == "invalid-config"


@pytest.mark.parametrize(
    "change, expect",
    [
        ({"repo_dir": False, "commit": None, "snapshot": False}, "absent"),
        ({"commit": None, "snapshot": False}, "refs/main missing"),
        ({"snapshot": False}, "snapshot is missing"),
        ({"missing": ["unet/model.fp16.safetensors"], "files": 3}, "1 missing (unet/model.fp16.safetensors)"),
        ({"wrong_size": [["model_index.json", 10, 5]], "files": 3}, "1 wrong size (model_index.json)"),
        ({"expected_commit": "e" * 40}, "models.lock pins eeeeeeeeeeee"),
        ({"files": 0, "bytes": 0}, "is empty"),
    ],
)
def test_incomplete_weights(change, expect):
    snap = healthy_snapshot()
    snap["weights"][0].update(change)
    check = checks_by_name(verify(snap))[f"weights {T2I}"]
    assert check.state == "fail" and expect in check.detail


def test_missing_weights_node_names_the_cause():
    snap = healthy_snapshot()
    snap["weights"][0].update(repo_dir=False, commit=None, snapshot=False, files=0)
    check = checks_by_name(verify(snap))[f"weights {T2I}"]
    assert check.causes[0].cause == "weights-missing"
    assert "/root/.lpData/models/models--SG161222--RealVisXL_V4.0_Lightning" in check.causes[0].line


def test_docker_down_makes_container_checks_unknown_and_the_host_fail():
    snap = healthy_snapshot()
    snap["docker"] = {"ok": False, "error": "/var/run/docker.sock: [Errno 111] Connection refused"}
    result = verify(snap)
    checks = checks_by_name(result)
    assert checks["docker"].state == "fail"
    assert checks["worker livepeer_ai_worker"].state == "unknown"
    assert checks[f"runner {RUNNERS[0].name}"].state == "unknown"
    assert result.status == "problems" and exit_code([result]) == 1


def test_nvidia_runtime_missing_and_no_driver():
    snap = healthy_snapshot()
    snap["docker"]["runtimes"] = ["runc"]
    snap["gpus"] = {"present": False, "rc": None, "lines": [], "error": "nvidia-smi not found"}
    checks = checks_by_name(verify(snap))
    assert checks["nvidia runtime"].state == "fail"
    assert checks["gpus"].state == "fail" and checks["gpus"].causes[0].cause == "no-gpu"


def test_leftover_and_cold_runners():
    snap = healthy_snapshot()
    spec = make_spec(models=make_spec().models + (AIModelEntry(pipeline="upscale", model_id="org/upscaler"),))
    snap["config"]["entries"].append(
        {"pipeline": "upscale", "model_id": "org/upscaler", "warm": False, "external": False}
    )
    cold = ExpectedRunner("upscale_org-upscaler_8300", 8300, "upscale", "org/upscaler")
    rogue = ExpectedRunner("image-to-image_old-model_8100", 8100, "image-to-image", "old/model")
    snap["containers"] += [container(cold), container(rogue)]
    snap["probes"].append(
        {
            "url": "http://127.0.0.1:8300/health",
            "status": 200,
            "body": '{"status":"OK"}',
            "error": "",
            "elapsed_s": 0.01,
        }
    )
    checks = checks_by_name(verify(snap, spec=spec))
    assert checks["runner upscale_org-upscaler_8300 (cold)"].state == "ok"
    rogue_check = checks["runner image-to-image_old-model_8100"]
    assert rogue_check.state == "warn" and "not in aiModels.json" in rogue_check.detail


def test_secrets_in_logs_are_masked():
    snap = healthy_snapshot()
    snap["worker"].update(status="restarting", restarting=True, restart_count=4)
    snap["logs"] = {
        "livepeer_ai_worker": [
            f"flag orchSecret={ORCH_SECRET} token {BYOC_TOKEN}",
            f"Error AI worker warming: bearer {BYOC_TOKEN} rejected",
        ]
    }
    result = verify(snap, secrets=["hf_live_token_789"])
    text = repr(result) + str([c.to_dict() for c in result.checks])
    assert ORCH_SECRET not in text and BYOC_TOKEN not in text
    worker = checks_by_name(result)["worker livepeer_ai_worker"]
    assert worker.causes and "***" in worker.causes[0].line


def test_node_that_could_not_be_checked():
    result = verify({"error": "python3 not found on the node"})
    assert result.status == "unchecked" and exit_code([result]) == 2
    assert result.checks[0].check == "node" and "python3" in result.checks[0].detail


def test_node_params_carry_no_secret_and_probe_the_right_urls():
    params = node_params(make_spec(), RUNNERS, weights_wanted_from_spec(make_spec()))
    text = str(params)
    assert BYOC_TOKEN not in text and ORCH_SECRET not in text
    assert params["runner_ports"] == [8000, 8401]
    assert params["urls"] == ["http://10.0.0.5:9000/health"]
    assert [w["id"] for w in params["weights"]] == [T2I, A2T]  # no weights for the external entry


def test_weights_from_spec_skip_live_and_external_and_dedupe():
    spec = make_spec(
        models=(
            AIModelEntry(pipeline="text-to-image", model_id=T2I, warm=True),
            AIModelEntry(pipeline="image-to-image", model_id=T2I),
            AIModelEntry(pipeline="live-video-to-video", model_id="streamdiffusion"),
        )
    )
    assert weights_wanted_from_spec(spec) == [WeightsWanted(T2I, "main")]


def test_display_url_drops_credentials():
    assert display_url("https://u:p@example.com:8443/a/b?token=x") == "https://example.com:8443/a/b"


# -- the gateway's /getNetworkCapabilities --------------------------------------------------------------------

ORCH = "0xAbC0000000000000000000000000000000000001"


def gateway_doc(warm_t2i=True, include_a2t=True):
    models_27 = {T2I: {"capacity": 1, "runnerVersion": "0.14.1", "capacityInUse": 0}}
    if warm_t2i:
        models_27[T2I]["warm"] = True
    per_cap = {"27": {"models": models_27}}
    if include_a2t:
        per_cap["31"] = {"models": {A2T: {"warm": True, "capacity": 1}}}
    return {
        "capabilities_names": {"27": "Text to image", "31": "Audio to text", "33": "Llm"},
        "orchestrators": [
            {"address": "0xother", "capabilities": {"constraints": {"PerCapability": {}}}},
            {
                "address": ORCH.lower(),
                "orch_uri": "https://orch:8935",
                "capabilities": {"constraints": {"PerCapability": per_cap}},
            },
        ],
    }


def gw_spec():
    return make_spec(
        models=make_spec().models[:2],
        verify=VerifySpec(gateway_url="http://127.0.0.1:5935", orchestrator_address=ORCH),
    )


def test_gateway_sees_models_warm_as_configured():
    checks = {c.check: c for c in gateway_checks(gw_spec(), gateway_doc())}
    assert checks[f"gateway text-to-image {T2I}"].state == "ok"
    assert checks[f"gateway text-to-image {T2I}"].detail.startswith("warm on http://127.0.0.1:5935")
    assert checks[f"gateway audio-to-text {A2T}"].state == "ok"


def test_gateway_cold_or_missing_model_fails():
    checks = {c.check: c for c in gateway_checks(gw_spec(), gateway_doc(warm_t2i=False, include_a2t=False))}
    assert checks[f"gateway text-to-image {T2I}"].state == "fail"
    assert "configured warm" in checks[f"gateway text-to-image {T2I}"].detail
    assert "not advertised" in checks[f"gateway audio-to-text {A2T}"].detail


def test_gateway_capability_ids_come_from_its_names():
    doc = gateway_doc()
    # the same pipeline under another id: a hard-coded 27 would miss it
    doc["capabilities_names"] = {"99": "Text to image", "31": "Audio to text"}
    doc["orchestrators"][1]["capabilities"]["constraints"]["PerCapability"]["99"] = doc["orchestrators"][1][
        "capabilities"
    ]["constraints"]["PerCapability"].pop("27")
    checks = {c.check: c for c in gateway_checks(gw_spec(), doc)}
    assert checks[f"gateway text-to-image {T2I}"].state == "ok"


def test_gateway_without_the_orchestrator_or_unreachable():
    doc = gateway_doc()
    doc["orchestrators"] = doc["orchestrators"][:1]
    (check,) = gateway_checks(gw_spec(), doc)
    assert check.state == "fail" and "is not among the 1 orchestrators" in check.detail
    (check,) = gateway_checks(gw_spec(), None, error="connection refused")
    assert check.state == "unknown" and "connection refused" in check.detail


def test_gateway_checks_join_the_host_result():
    result = verify(
        healthy_snapshot(),
        spec=gw_spec(),
        runners=RUNNERS,
        gateway=gateway_checks(gw_spec(), gateway_doc(include_a2t=False)),
    )
    snap_spec_checks = checks_by_name(result)
    assert snap_spec_checks[f"gateway audio-to-text {A2T}"].state == "fail"
    assert result.status == "problems"


def test_snapshot_is_not_modified():
    snap = healthy_snapshot()
    before = copy.deepcopy(snap)
    verify(snap)
    assert snap == before


# -- with the real lpfleet.runners and lpfleet.diagnose ------------------------------------------------------


def test_expected_runners_come_from_lpfleet_runners():
    from lpfleet.verification import expected_runners

    found = expected_runners(make_spec())
    assert [(r.name, r.port, r.pipeline, r.model_id) for r in found] == [
        (r.name, r.port, r.pipeline, r.model_id) for r in RUNNERS
    ]


def test_real_diagnosis_of_the_stand_in_oom_and_worker_lines():
    from lpfleet.operations.verify import diagnose_lines

    snap = healthy_snapshot()
    snap["containers"][0].update(status="exited", running=False, exit_code=1, restart_count=3, up_s=None)
    snap["logs"] = {
        RUNNERS[0].name: [
            "2026-11-26 10:00:00,000 INFO Loading StableDiffusionXLPipeline for model_id=SG161222/RealVisXL_V4.0_Lightning",
            "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity "
            "of 23.65 GiB of which 1.06 GiB is free.",
        ]
    }
    check = checks_by_name(verify_host(make_spec(), snap, RUNNERS, classify=diagnose_lines))[
        f"runner {RUNNERS[0].name}"
    ]
    assert check.state == "fail" and [c.cause for c in check.causes] == ["cuda-oom"]
    assert "smaller" in check.causes[0].hint or "warm" in check.causes[0].hint


@pytest.mark.parametrize("error", ["connection reset", "connection closed"])
def test_port_behind_dockers_proxy_not_bound_yet_counts_as_loading(error):
    snap = healthy_snapshot()
    snap["containers"][0]["up_s"] = 1.0
    snap["probes"][0] = {
        "url": "http://127.0.0.1:8000/health",
        "status": None,
        "body": "",
        "error": error,
        "elapsed_s": 0.0,
    }
    check = checks_by_name(verify(snap))[f"runner {RUNNERS[0].name}"]
    assert check.state == "loading", check


def test_a_runner_that_times_out_fails():
    snap = healthy_snapshot()
    snap["probes"][0] = {
        "url": "http://127.0.0.1:8000/health",
        "status": None,
        "body": "",
        "error": "timeout",
        "elapsed_s": 5.0,
    }
    check = checks_by_name(verify(snap))[f"runner {RUNNERS[0].name}"]
    assert check.state == "fail" and "timeout" in check.detail


def test_the_hand_written_snapshot_has_the_node_scripts_shape():
    """healthy_snapshot() stands for the node script's answer: it must pass the same boundary check."""
    snap = healthy_snapshot()
    assert check_snapshot(snap) is snap
    snap["containers"][0]["restarts"] = 1  # a key the node script never writes
    assert check_snapshot(snap)["error"].startswith("unexpected answer from the node script: containers.0.restarts")


LOCKED, MOVED, OLDER = "c" * 40, "f" * 40, "b" * 40


def with_commits(refs, snapshots, records):
    snap = healthy_snapshot()
    snap["weights"][0].update(refs=refs, snapshots=snapshots, records=records, commit=refs.get("main"))
    return snap


def test_runner_that_moved_refs_main_is_unpinned_weights():
    """huggingface_hub 0.23.2 _snapshot_download.py:258-262 writes refs/main = the hub's sha when online."""
    snap = with_commits({"main": MOVED}, [LOCKED, MOVED], [LOCKED])
    check = checks_by_name(verify(snap))[f"weights {T2I}"]
    assert check.state == "fail" and check.detail.startswith("runner fetched unpinned weights: ffffffffffff")
    assert "refs/main -> ffffffffffff" in check.detail
    assert check.causes[0].cause == "unpinned-weights" and "HF_HUB_OFFLINE" in check.causes[0].hint


def test_foreign_snapshot_with_the_ref_back_on_the_lock_still_counts():
    snap = with_commits({"main": LOCKED}, [LOCKED, MOVED], [LOCKED])
    assert checks_by_name(verify(snap))[f"weights {T2I}"].causes[0].cause == "unpinned-weights"


def test_older_locked_snapshot_warns_and_fails_only_for_the_llm():
    snap = with_commits({"main": LOCKED}, [OLDER, LOCKED], [OLDER, LOCKED])
    check = checks_by_name(verify(snap))[f"weights {T2I}"]
    assert check.state == "warn" and "1 older snapshot kept" in check.detail
    llm = make_spec(models=(AIModelEntry(pipeline="llm", model_id=T2I, warm=True),))
    check = checks_by_name(verify(snap, spec=llm))[f"weights {T2I}"]
    assert check.state == "fail" and check.causes[0].cause == "stale-snapshot"  # AR llm.py:326-334


def test_only_the_locked_snapshot_is_green():
    snap = with_commits({"main": LOCKED}, [LOCKED], [LOCKED])
    assert check_snapshot(snap) is snap  # the node script's shape, the repo's commits included
    assert checks_by_name(verify(snap))[f"weights {T2I}"].state == "ok"


def test_a_blob_changed_since_it_was_verified_is_weights_modified():
    snap = healthy_snapshot()
    snap["weights"][0].update(modified=["unet/model.safetensors"])
    check = checks_by_name(verify(snap))[f"weights {T2I}"]
    assert check.state == "fail"
    assert "changed since they were verified (unet/model.safetensors)" in check.detail
    assert check.causes[0].cause == "weights-modified" and "run deploy.py" in check.causes[0].hint
