"""verify's check of live apps' prepared weights: folders non-empty, prepared by the image the app runs
(ai-runner v0.14.1 `runner/dl_checkpoints.sh:217-250`; engines are built on the node, so no hash binds them)."""

from __future__ import annotations

from lpfleet.live_prepare import live_apps, record_document
from lpfleet.spec import AIModelEntry
from lpfleet.verification import node_params, weights_wanted_from_spec
from lpfleet.verify_snapshot import check_snapshot
from tests.unit.test_verification import RUNNERS, checks_by_name, healthy_snapshot, make_spec, verify

ID = "sha256:" + "e" * 64
LIVE = AIModelEntry(pipeline="live-video-to-video", model_id="streamdiffusion")


def live_spec():
    base = make_spec()
    return make_spec(models=(*base.models, LIVE))


def live_item(**over) -> dict:
    [app] = live_apps([LIVE])
    item = {"app": "streamdiffusion", "image_id": ID, "record": record_document(app, ID),
            "dirs": {"StreamDiffusion--engines": "ok"}}
    item.update(over)
    return item


def test_node_params_ask_for_the_live_apps_folders_and_record():
    params = node_params(live_spec(), RUNNERS, weights_wanted_from_spec(live_spec()))
    assert params["live"] == [{"app": "streamdiffusion", "image": "livepeer/ai-runner:live-app-streamdiffusion",
                               "record": ".lpfleet/live/streamdiffusion.json",
                               "dirs": ["StreamDiffusion--engines"]}]


def test_prepared_live_app_is_ok():
    snap = {**healthy_snapshot(), "live": [live_item()]}
    assert check_snapshot(snap) == snap
    check = checks_by_name(verify(snap, spec=live_spec()))["live weights streamdiffusion"]
    assert check.state == "ok"


def test_unprepared_live_app_fails_with_weights_missing_and_the_fix():
    snap = {**healthy_snapshot(), "live": [live_item(record=None, dirs={"StreamDiffusion--engines": "empty"})]}
    check = checks_by_name(verify(snap, spec=live_spec()))["live weights streamdiffusion"]
    assert check.state == "fail"
    assert check.causes[0].cause == "weights-missing"
    assert "StreamDiffusion--engines is empty" in check.causes[0].line
    assert "PREPARE_MODELS=1" in check.causes[0].hint


def test_image_changed_since_prepare_fails():
    snap = {**healthy_snapshot(), "live": [live_item(image_id="sha256:" + "f" * 64)]}
    check = checks_by_name(verify(snap, spec=live_spec()))["live weights streamdiffusion"]
    assert check.state == "fail" and "changed since the prepare run" in check.detail


def test_no_live_app_no_live_check():
    assert not any(c.check.startswith("live weights") for c in verify(healthy_snapshot()).checks)
