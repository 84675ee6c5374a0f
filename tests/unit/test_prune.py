"""`lpfleet prune`: the pure plan (what goes, what stays, what is never touched), the stdlib executor on a
real cache layout in a temp dir (no symlink followed, nothing outside the models dir), and the command."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from lpfleet import prune_exec
from lpfleet.cli import main
from lpfleet.lock import LockedFile, LockedModel, ModelsLock, dump
from lpfleet.prune import plan_prune, plan_repo, repo_drift, scan_request

OLD, NEW, RUNNER = "1" * 40, "2" * 40, "3" * 40
FOLDER = "models--Org--Model"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_blob(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


CONFIG_OLD, CONFIG_NEW = b'{"v": 1}', b'{"v": 2}'
WEIGHTS_OLD, WEIGHTS_SHARED = b"old-weights" * 100, b"shared-weights" * 50


def locked(commit=NEW, model_id="Org/Model") -> LockedModel:
    config = CONFIG_NEW if commit == NEW else CONFIG_OLD
    return LockedModel(
        model_id,
        "main",
        commit,
        None,
        (
            LockedFile("config.json", len(config), git_blob=git_blob(config)),
            LockedFile("unet/w.safetensors", len(WEIGHTS_SHARED), sha256=sha(WEIGHTS_SHARED)),
        ),
    )


def repo_scan(ref=NEW, extra_snapshots=(), records=(NEW,)):
    snaps = {
        NEW: {
            "kind": "dir",
            "links": {"config.json": git_blob(CONFIG_NEW), "unet/w.safetensors": sha(WEIGHTS_SHARED)},
            "bytes": 0,
        },
    }
    blobs = {git_blob(CONFIG_NEW): len(CONFIG_NEW), sha(WEIGHTS_SHARED): len(WEIGHTS_SHARED)}
    for commit in extra_snapshots:
        snaps[commit] = {
            "kind": "dir",
            "links": {
                "config.json": git_blob(CONFIG_OLD),
                "unet/w.safetensors": sha(WEIGHTS_SHARED),
                "old.safetensors": sha(WEIGHTS_OLD),
            },
            "bytes": 0,
        }
        blobs[git_blob(CONFIG_OLD)] = len(CONFIG_OLD)
        blobs[sha(WEIGHTS_OLD)] = len(WEIGHTS_OLD)
    return {
        "kind": "dir",
        "refs": {"main": ref} if ref else {},
        "snapshots": snaps,
        "blobs": blobs,
        "trees": {f"{c}.json": 100 for c in snaps},
        "no_exist": [],
        "records": {c: 50 for c in records},
    }


# --- the plan (pure)


def test_complete_repo_has_nothing_to_remove():
    plan = plan_prune([locked()], {"repos": {FOLDER: repo_scan()}})
    assert plan.empty and plan.bytes == 0
    assert plan.lines() == [f"{FOLDER}: nothing to remove"]


def test_old_snapshot_and_its_own_blobs_go_shared_blobs_stay():
    plan = plan_prune([locked()], {"repos": {FOLDER: repo_scan(extra_snapshots=(OLD,), records=(OLD, NEW))}})
    paths = {r.path: r.kind for r in plan.removals}
    assert paths == {
        f"{FOLDER}/snapshots/{OLD}": "snapshot",
        f"{FOLDER}/blobs/{git_blob(CONFIG_OLD)}": "blob",
        f"{FOLDER}/blobs/{sha(WEIGHTS_OLD)}": "blob",
        f"{FOLDER}/trees/{OLD}.json": "tree",
        f".lpfleet/verified/{FOLDER}/{OLD}.json": "record",
    }
    assert plan.bytes == len(CONFIG_OLD) + len(WEIGHTS_OLD) + 100 + 50
    assert f"blobs/{sha(WEIGHTS_SHARED)}" not in " ".join(paths)  # the locked snapshot still links to it
    assert plan.repos[0].commits_removed == [OLD]
    assert "1 snapshot" in plan.lines()[0] and "2 blobs" in plan.lines()[0]


def test_ref_on_an_unlocked_commit_leaves_the_repo_alone():
    plan = plan_prune([locked()], {"repos": {FOLDER: repo_scan(ref=RUNNER, extra_snapshots=(RUNNER,))}})
    assert plan.empty
    assert "refs/main names 333333333333, not the locked commit" in plan.repos[0].skipped


def test_other_refs_naming_removed_commits_go_the_read_ref_stays():
    scan = repo_scan(extra_snapshots=(OLD,))
    scan["refs"]["pr/1"] = OLD
    kinds = {r.path: r.kind for r in plan_repo(FOLDER, [locked()], scan).removals}
    assert kinds[f"{FOLDER}/refs/pr/1"] == "ref" and f"{FOLDER}/refs/main" not in kinds


def test_temp_and_lock_files_and_unlinked_locked_blobs_stay():
    scan = repo_scan()
    scan["snapshots"][NEW]["links"].pop("unet/w.safetensors")  # fetched, not linked yet
    scan["blobs"]["abc.1234abcd.incomplete"] = 5
    assert plan_repo(FOLDER, [locked()], scan).removals == ()


def test_two_locked_commits_of_one_repo_are_both_kept():
    plan = plan_prune([locked(NEW), locked(OLD)], {"repos": {FOLDER: repo_scan(extra_snapshots=(OLD,))}})
    assert plan.empty and plan.repos[0].keep == (OLD, NEW)


def test_only_folders_of_locked_models_are_scanned_or_planned():
    assert scan_request([locked(), locked(model_id="B/c"), locked(OLD)]) == ["models--B--c", FOLDER]
    plan = plan_prune([locked()], {"repos": {FOLDER: repo_scan(), "models--Other--Repo": repo_scan(ref=OLD)}})
    assert [r.folder for r in plan.repos] == [FOLDER]


def test_symlinked_repo_folder_is_never_followed():
    plan = plan_prune([locked()], {"repos": {FOLDER: {"kind": "symlink"}}})
    assert plan.empty and "symlink" in plan.repos[0].skipped


def test_drift_tells_foreign_commits_from_old_verified_ones():
    scan = repo_scan(ref=RUNNER, extra_snapshots=(OLD, RUNNER), records=(OLD, NEW))
    drift = repo_drift(FOLDER, NEW, scan)
    assert drift.ref == RUNNER and drift.foreign == (RUNNER,) and drift.stale == (OLD,)
    assert repo_drift(FOLDER, NEW, repo_scan()).foreign == ()


# --- the executor on a real cache layout


def write_snapshot(root, commit, files):
    repo = root / FOLDER
    for rel, data in files.items():
        etag = sha(data) if rel.endswith(".safetensors") else git_blob(data)
        (repo / "blobs").mkdir(parents=True, exist_ok=True)
        (repo / "blobs" / etag).write_bytes(data)
        link = repo / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        depth = rel.count("/") + 2
        if not link.is_symlink():
            link.symlink_to("/".join([".."] * depth + ["blobs", etag]))


@pytest.fixture
def cache(tmp_path):
    root = tmp_path / "models"
    write_snapshot(
        root,
        OLD,
        {"config.json": CONFIG_OLD, "unet/w.safetensors": WEIGHTS_SHARED, "old.safetensors": WEIGHTS_OLD},
    )
    write_snapshot(root, NEW, {"config.json": CONFIG_NEW, "unet/w.safetensors": WEIGHTS_SHARED})
    (root / FOLDER / "refs").mkdir()
    (root / FOLDER / "refs" / "main").write_text(NEW)
    records = root / ".lpfleet" / "verified" / FOLDER
    records.mkdir(parents=True)
    (records / f"{OLD}.json").write_text("{}")
    (records / f"{NEW}.json").write_text("{}")
    other = root / "models--Not--Locked" / "snapshots" / OLD
    other.mkdir(parents=True)
    (other / "w.safetensors").write_bytes(b"x")
    return root


def test_scan_then_remove_keeps_the_locked_snapshot_loadable(cache):
    scan = prune_exec.scan(str(cache), scan_request([locked()]))
    assert set(scan["repos"]) == {FOLDER}
    assert scan["repos"][FOLDER]["snapshots"][NEW]["links"]["unet/w.safetensors"] == sha(WEIGHTS_SHARED)
    plan = plan_prune([locked()], scan)
    result = prune_exec.remove(str(cache), [r.path for r in plan.removals])
    assert result["refused"] == [] and result["failed"] == []
    assert sorted(os.listdir(cache / FOLDER / "snapshots")) == [NEW]
    assert (cache / FOLDER / "snapshots" / NEW / "unet" / "w.safetensors").read_bytes() == WEIGHTS_SHARED
    assert sorted(os.listdir(cache / FOLDER / "blobs")) == sorted([git_blob(CONFIG_NEW), sha(WEIGHTS_SHARED)])
    assert os.listdir(cache / ".lpfleet" / "verified" / FOLDER) == [f"{NEW}.json"]
    assert (cache / "models--Not--Locked" / "snapshots" / OLD / "w.safetensors").exists()  # never touched
    assert plan_prune([locked()], prune_exec.scan(str(cache), [FOLDER])).empty  # a second run: nothing


def test_remove_refuses_paths_outside_or_through_symlinks(cache, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    (cache / FOLDER / "escape").symlink_to(outside)  # a folder link inside a repo
    (cache / "models--Evil--Link").symlink_to(outside)  # a repo folder that is a link
    result = prune_exec.remove(
        str(cache),
        [
            f"{FOLDER}/escape/precious",
            "models--Evil--Link/precious",
            f"{FOLDER}/../../outside/precious",
            "/etc/passwd",
            "notarepo/x/y",
            ".lpfleet/other/x",
            f"{FOLDER}/snapshots",
            f"{FOLDER}/snapshots/{OLD}",
        ],
    )
    assert result["removed"] == [f"{FOLDER}/snapshots/{OLD}"]  # a real folder inside a repo: allowed
    assert len(result["refused"]) == 7  # a repo's top-level folders are never removed whole
    assert (outside / "precious").read_text() == "keep me"


def test_a_blob_that_is_a_symlink_is_unlinked_not_followed(cache, tmp_path):
    target = tmp_path / "target"
    target.write_text("keep me")
    (cache / FOLDER / "blobs" / "deadbeef").symlink_to(target)
    scan = prune_exec.scan(str(cache), [FOLDER])
    assert "deadbeef" not in scan["repos"][FOLDER]["blobs"]  # not a regular file: not even planned
    result = prune_exec.remove(str(cache), [f"{FOLDER}/blobs/deadbeef"])
    assert result["removed"] == [f"{FOLDER}/blobs/deadbeef"] and target.read_text() == "keep me"


def test_snapshot_link_out_of_the_cache_is_not_taken_for_a_blob(cache, tmp_path):
    link = cache / FOLDER / "snapshots" / OLD / "evil.safetensors"
    link.symlink_to(tmp_path / "elsewhere")
    snap = prune_exec.scan(str(cache), [FOLDER])["repos"][FOLDER]["snapshots"][OLD]
    assert snap["links"]["evil.safetensors"] is None


# --- the command


def test_command_dry_run_then_apply(cache, tmp_path, capsys):
    lock_file = tmp_path / "models.lock"
    lock_file.write_text(dump(ModelsLock((locked(),))))
    args = ["prune", "--models-dir", str(cache), "--lock", str(lock_file)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "would free" in out and "--apply" in out and f"snapshots/{OLD}" not in out
    assert (cache / FOLDER / "snapshots" / OLD).exists()  # dry run: nothing removed
    assert main([*args, "--apply", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["applied"] and doc["bytes"] == len(CONFIG_OLD) + len(WEIGHTS_OLD) + 2
    assert not (cache / FOLDER / "snapshots" / OLD).exists()
    assert main(args) == 0 and "nothing to remove" in capsys.readouterr().out


def test_command_bad_input_is_one_line(tmp_path, capsys):
    assert main(["prune", "--models-dir", str(tmp_path), "--lock", str(tmp_path / "none.lock")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err


def test_the_programs_sent_to_nodes_scan_and_remove_like_the_local_command(cache):
    """What the weights step runs on a node (python3 -c ...) is prune_exec itself: same scan, same removal."""
    import subprocess
    import sys

    from lpfleet.facts.prune import MARKER, PruneScan, encode_request, node_program

    request = encode_request({"models_dir": str(cache), "folders": [FOLDER]})
    program = PruneScan().bootstrap()  # the fact's command runs `python3 -c PROGRAM REQUEST`
    out = subprocess.run([sys.executable, "-c", program, request], capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if x.startswith(MARKER))
    assert json.loads(line[len(MARKER):]) == prune_exec.scan(str(cache), [FOLDER])
    paths = [r.path for r in plan_prune([locked()], prune_exec.scan(str(cache), [FOLDER])).removals]
    removal = encode_request({"models_dir": str(cache), "paths": paths})
    subprocess.run([sys.executable, "-c", node_program(), "remove", removal], check=True, capture_output=True)
    assert sorted(os.listdir(cache / FOLDER / "snapshots")) == [NEW]
    bad = encode_request({"models_dir": str(cache), "paths": ["../outside"]})
    refused = subprocess.run(
        [sys.executable, "-c", node_program(), "remove", bad], capture_output=True, text=True
    )
    assert refused.returncode == 1 and "not removed" in refused.stderr
