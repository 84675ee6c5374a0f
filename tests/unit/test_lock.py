"""models.lock: YAML round trip, every rejected field named, diffs, selection as huggingface_hub selects."""

from __future__ import annotations

import pytest

from lpfleet.lock import (
    LockedFile,
    LockedModel,
    LockError,
    ModelRequest,
    ModelsLock,
    diff,
    dump,
    exact_patterns,
    load,
    merge_for_write,
    pattern_matches,
    requests_for_entries,
    select_paths,
)

C1 = "a" * 40
C2 = "b" * 40
SHA = "c" * 64
BLOB = "d" * 40


def model(model_id="org/name", commit=C1, include=("*.json",), files=None, revision="main") -> LockedModel:
    files = files or (LockedFile("config.json", 10, git_blob=BLOB), LockedFile("w.safetensors", 100, sha256=SHA))
    return LockedModel(model_id, revision, commit, include, tuple(files), gated=False)


def test_round_trip_keeps_everything():
    lock = merge_for_write([model("b/two"), model("a/one", include=None)])
    text = dump(lock)
    assert text.startswith("# models.lock")
    back = load(text)
    assert back == lock
    assert [m.model_id for m in back.models] == ["a/one", "b/two"]  # sorted: stable diffs
    assert back.models[0].include is None


def test_dump_is_stable():
    lock = merge_for_write([model()])
    assert dump(lock) == dump(load(dump(lock)))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(version=2), "version: expected 1"),
        (lambda d: d["models"][0].update(commit="abc"), "models[0] org/name: commit: expected 40 hex"),
        (lambda d: d["models"][0].update(include="*.json"), "models[0] org/name: include: expected a list"),
        (lambda d: d["models"][0].update(colour="red"), "models[0] org/name: unknown field(s) colour"),
        (lambda d: d["models"][0]["files"][1].update(sha256="xyz"), "files[1] w.safetensors: sha256: expected 64"),
        (lambda d: d["models"][0]["files"][0].update(sha256=SHA), "files[0] config.json: exactly one of"),
        (lambda d: d["models"][0]["files"][0].pop("size"), "files[0]: expected path (string) and size"),
        (lambda d: d["models"].append(dict(d["models"][0])), "models[1] org/name: id/revision: listed twice"),
    ],
)
def test_bad_lock_names_entry_and_field(mutate, message):
    import yaml

    raw = yaml.safe_load(dump(merge_for_write([model()])))
    mutate(raw)
    with pytest.raises(LockError) as excinfo:
        load(yaml.safe_dump(raw), "inv/models.lock")
    assert message in str(excinfo.value)
    assert str(excinfo.value).startswith("inv/models.lock: ")


def test_not_yaml_is_a_clear_error():
    with pytest.raises(LockError, match="not YAML"):
        load("models: [", "x.lock")


def test_diff_reports_added_removed_moved_and_nothing():
    old = merge_for_write([model("a/one"), model("b/two")])
    assert not diff(old, old).changed
    new = merge_for_write([model("a/one", commit=C2), model("c/three")])
    kinds = {(c.model_id, c.kind) for c in diff(old, new).changes}
    assert kinds == {("a/one", "moved"), ("b/two", "removed"), ("c/three", "added")}
    assert {c.kind for c in diff(None, new).changes} == {"added"}
    same_commit = merge_for_write([model("a/one", include=("*",)), model("b/two")])
    assert [c.kind for c in diff(old, same_commit).changes] == ["files"]


def test_selection_matches_huggingface_hub_filtering():
    from huggingface_hub.utils import filter_repo_objects

    paths = ["model_index.json", "unet/diffusion_pytorch_model.fp16.safetensors", "unet/diffusion_pytorch_model.safetensors",
             "tokenizer/merges.txt", "README.md", "sd_xl_base_1.0.safetensors", "text_encoder/config.json"]
    for include in (["*.fp16.safetensors", "*.json", "*.txt"], ["unet/"], ["*unet.safetensors"], None):
        ours = select_paths(paths, include)
        theirs = sorted(filter_repo_objects(paths, allow_patterns=include))
        assert ours == theirs, include
    assert pattern_matches("unet/x.bin", "unet/")


def test_exact_patterns_select_exactly_the_paths():
    paths = ["a[1].json", "b*.bin", "c?.txt", "plain.json"]
    others = ["a1.json", "bX.bin", "cc.txt", "plain.jsonx"]
    patterns = exact_patterns(paths)
    assert select_paths(paths + others, patterns) == sorted(paths)


def test_fleet_requests_include_extras_once():
    entries = [("text-to-image", "ByteDance/SDXL-Lightning"), ("image-to-image", "ByteDance/SDXL-Lightning"),
               ("text-to-image", "stabilityai/stable-diffusion-xl-base-1.0"), ("live-video-to-video", "comfyui"),
               ("upscale", "someone/unknown-model")]
    requests = requests_for_entries(entries, "main")
    # the safety checker repos come once, with the first diffusers entry (ai-runner pipelines/utils/utils.py:159-164)
    assert [r.model_id for r in requests] == [
        "ByteDance/SDXL-Lightning", "stabilityai/stable-diffusion-xl-base-1.0",
        "CompVis/stable-diffusion-safety-checker", "openai/clip-vit-base-patch32", "someone/unknown-model"]
    assert requests[0].include == ("*unet.safetensors",)
    assert requests[4] == ModelRequest("someone/unknown-model", "main", None)  # unknown: every file


def test_unique_bytes_counts_each_blob_once():
    shared = (LockedFile("w.safetensors", 100, sha256=SHA), LockedFile("copy.safetensors", 100, sha256=SHA))
    lock = ModelsLock((model("a/one", files=shared), model("a/one", revision="v2", files=shared)))
    assert lock.unique_bytes == 100
