"""The live apps' prepare plan: which apps a node prepares, and when a prepared copy is stale.

Upstream: ai-runner v0.14.1 `runner/dl_checkpoints.sh:217-250` (prepare run), `:456` (folders), go-livepeer
176aa41 `ai/worker/docker.go:71-88` (the live app table)."""

from __future__ import annotations

from types import SimpleNamespace

from lpfleet.live_prepare import AppState, live_apps, parse_record, plan_live_prepare, record_document

IMAGE = "livepeer/ai-runner:live-app-streamdiffusion"
ID = "sha256:" + "a" * 64


def entry(model_id: str, pipeline: str = "live-video-to-video", url: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(pipeline=pipeline, model_id=model_id, url=url)


def current(app, image_id: str = ID, dirs: str = "ok") -> AppState:
    return AppState(image_id, record_document(app, image_id), {d: dirs for d in app.prepare.dirs})


def test_live_apps_once_each_managed_only_and_only_those_with_something_to_prepare():
    apps = live_apps([
        entry("streamdiffusion"), entry("streamdiffusion"), entry("noop"), entry("comfyui", url="http://x:1"),
        entry("scope"), entry("stabilityai/sd-turbo", pipeline="text-to-image"), entry("not-in-table"),
    ])
    assert [a.model_id for a in apps] == ["streamdiffusion", "scope"]
    assert apps[0].prepare.image == IMAGE
    assert apps[0].prepare.env == ("HF_HUB_OFFLINE=0", "PREPARE_MODELS=1")  # dl_checkpoints.sh:243-245
    assert apps[1].prepare.image == "daydreamlive/scope-runner"  # docker.go:71-88
    assert apps[0].record_path == ".lpfleet/live/streamdiffusion.json"
    assert apps[0].container_name == "ai-runner-streamdiffusion-prepare"  # dl_checkpoints.sh:241


def test_live_override_names_the_image_to_prepare_with():
    [app] = live_apps([entry("streamdiffusion")], {"streamdiffusion": "registry.lan/sd:1"})
    assert app.prepare.image == "registry.lan/sd:1"


def test_current_record_and_folders_plan_nothing():
    [app] = live_apps([entry("streamdiffusion")])
    assert plan_live_prepare([app], {"streamdiffusion": current(app)}) == []


def test_nothing_on_the_node_plans_a_run_with_every_reason():
    [app] = live_apps([entry("streamdiffusion")])
    [(planned, reasons)] = plan_live_prepare([app], {})
    assert planned is app
    assert "StreamDiffusion--engines is missing" in reasons
    assert any("no record" in r for r in reasons)


def test_empty_folder_plans_a_run():
    [app] = live_apps([entry("streamdiffusion")])
    [(_, reasons)] = plan_live_prepare([app], {"streamdiffusion": current(app, dirs="empty")})
    assert reasons == ["StreamDiffusion--engines is empty"]


def test_changed_image_id_plans_a_run():
    [app] = live_apps([entry("streamdiffusion")])
    state = current(app)
    moved = AppState("sha256:" + "b" * 64, state.record, state.dirs)
    [(_, reasons)] = plan_live_prepare([app], {"streamdiffusion": moved})
    assert reasons == [f"image {IMAGE} changed since the prepare run (aaaaaaaaaaaa -> bbbbbbbbbbbb)"]


def test_other_image_name_or_absent_image_plans_a_run():
    [app] = live_apps([entry("streamdiffusion")], {"streamdiffusion": "registry.lan/sd:2"})
    other = AppState(ID, {**record_document(app, ID), "image": IMAGE}, {"StreamDiffusion--engines": "ok"})
    [(_, reasons)] = plan_live_prepare([app], {"streamdiffusion": other})
    assert "the app now runs registry.lan/sd:2" in reasons[0]
    gone = AppState("", record_document(app, ID), {"StreamDiffusion--engines": "ok"})
    [(_, reasons)] = plan_live_prepare([app], {"streamdiffusion": gone})
    assert reasons == ["image registry.lan/sd:2 is not on the node"]


def test_unreadable_record_is_no_record():
    assert parse_record("{not json") is None
    assert parse_record("[1]") is None
    assert parse_record('{"image_id": "x"}') == {"image_id": "x"}
