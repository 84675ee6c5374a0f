"""A hostile hub, mirror or peer (tests/hostile_hub.py on 127.0.0.1) against `lpfleet prefetch`, the node's
`--plan-stdin` mode and `lock_model`. Every attack ends non-zero with a one-line message and no traceback,
nothing outside the models dir changes, and no byte is accepted that does not match the lock.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lpfleet.hub import HubError, ensure_model, lock_model
from lpfleet.lock import ModelRequest
from lpfleet.weights_fetch import FetchLimits
from tests.hostile_hub import COMMIT, REPO, WEIGHTS, HostileHub, git_blob, listing, sha256

LPFLEET = Path(sys.executable).parent / "lpfleet"
FOLDER = "models--evil--model"
FAST = FetchLimits(min_rate=1e9, deadline_floor=3.0, read_timeout=1.0, resumes=2)


@pytest.fixture
def hub():
    with HostileHub() as server:
        yield server


@pytest.fixture
def world(tmp_path):
    """A models dir and, beside it, things an attacker would like to change."""
    outside = tmp_path / "outside"
    (outside / "data").mkdir(parents=True)
    (outside / "data" / "important.txt").write_text("precious\n")
    (outside / "private").mkdir(mode=0o700)
    (outside / "private").chmod(0o700)
    (outside / "cron.d").mkdir()
    return tmp_path / "models", outside


def tree_state(root: Path) -> dict:
    out = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
        content = os.readlink(path) if kind == "link" else path.read_bytes() if kind == "file" else None
        out[str(path.relative_to(root))] = (kind, stat.S_IMODE(st.st_mode), content)
    return out


def assert_only_verified_bytes(models: Path) -> None:
    """Every blob in the models dir hashes to its own name; nothing else lies around in it."""
    for blob in models.glob("*/blobs/*"):
        data = blob.read_bytes()
        assert blob.name in (sha256(data), git_blob(data)), f"unverified bytes accepted: {blob}"
    for entry in models.iterdir() if models.exists() else ():
        assert entry.name in (FOLDER, ".lpfleet"), entry
    staging = list((models / ".lpfleet").glob("staging-*")) if (models / ".lpfleet").exists() else []
    assert not staging, staging


def assert_not_complete(models: Path) -> None:
    assert not (models / FOLDER / "refs" / "main").exists()


def run_cli(
    *args: str, endpoint: str, stdin: str | None = None, env_extra: dict | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": endpoint, **(env_extra or {})})
    result = subprocess.run(
        [str(LPFLEET), *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def prefetch(hub_url: str, models: Path, *extra: str, **kw) -> subprocess.CompletedProcess:
    return run_cli(
        "prefetch",
        REPO,
        "--models-dir",
        str(models),
        "--quiet",
        "--deadline-floor",
        "3",
        "--min-rate",
        "1e9",
        "--attempts",
        "1",
        *extra,
        endpoint=hub_url,
        env_extra={"HF_HUB_DOWNLOAD_TIMEOUT": "1"},
        **kw,
    )


def node_plan(
    hub_url: str, models: Path, model_dicts: list[dict], token: str | None = None, **plan_extra
) -> tuple[subprocess.CompletedProcess, dict]:
    plan = {
        "endpoint": hub_url,
        "token": token,
        "branch": "main",
        "models": model_dicts,
        "deadline_floor": 3,
        "min_rate": 1e9,
        "read_timeout": 1,
        "attempts": 2,
        **plan_extra,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    result = subprocess.run(
        [sys.executable, "-m", "lpfleet.commands.prefetch", "--plan-stdin", "--models-dir", str(models)],
        input=json.dumps(plan),
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("@@lpfleet-weights "))  # always printed
    return result, json.loads(line.split(" ", 1)[1])


def honest_lock(hub: HostileHub):
    return lock_model(ModelRequest(REPO, "main", None), hub.url, None)


# --- listings: paths, commits and hashes from the hub never become paths unchecked (H1)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda entries, out: entries[0].update(path=f"{out}/data"),
        lambda entries, out: entries[0].update(path="../../../outside/data"),
        lambda entries, out: entries[0].update(path="sub/../../x"),
        lambda entries, out: entries[0].update(path="a//b"),
        lambda entries, out: entries[0].update(path="a\\..\\b"),
        lambda entries, out: entries[0].update(path="nul\0byte"),
        lambda entries, out: entries[0].update(path="line\nbreak"),
        lambda entries, out: entries[1]["lfs"].update(oid=f"{out}/data"),
        lambda entries, out: entries[1]["lfs"].update(oid="../../../../outside/cron.d/x" + "0" * 30),
        lambda entries, out: entries[0].update(oid="g" * 40),
        lambda entries, out: entries[1]["lfs"].update(size=-5),
        lambda entries, out: entries[1]["lfs"].update(size=10**18),
    ],
    ids=[
        "absolute",
        "dotdot",
        "inner-dotdot",
        "empty-segment",
        "backslash",
        "nul",
        "newline",
        "oid-absolute",
        "oid-traversal",
        "blob-not-hex",
        "negative-size",
        "huge-size",
    ],
)
def test_hostile_listing_is_refused_before_anything_is_written(hub, world, mutate):
    models, outside = world
    entries = listing()
    mutate(entries, outside)
    hub.behaviour.listing = entries
    before = tree_state(outside)
    result = prefetch(hub.url, models)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "lpfleet prefetch: evil/model: " in result.stderr
    assert "unusable file" in result.stderr or "not found" not in result.stderr
    assert tree_state(outside) == before
    assert not models.exists() or not list(models.glob("*/blobs/*"))


@pytest.mark.parametrize(
    "commit", ["/tmp/" + "x" * 35, "../../../../" + "a" * 28, "G" * 40, "a" * 39, "a" * 40 + "\n"]
)
def test_hostile_commit_is_refused(hub, world, commit):
    models, outside = world
    hub.behaviour.commit = commit
    before = tree_state(outside)
    result = prefetch(hub.url, models)
    assert result.returncode == 1
    assert "not 40 hex digits" in result.stderr
    assert tree_state(outside) == before and not models.exists()


def test_hostile_lock_in_a_node_plan_is_refused_and_reported(hub, world):
    """A poisoned models.lock (or plan) reaching a node: refused per model, the report line still printed."""
    models, outside = world
    good = honest_lock(hub).to_dict()
    bad = json.loads(json.dumps(good))
    bad["files"][0]["path"] = f"{outside}/data"
    bad_id = json.loads(json.dumps(good))
    bad_id["id"] = "evil/../../x"
    before = tree_state(outside)
    result, report = node_plan(hub.url, models, [bad, bad_id, good])
    assert result.returncode == 1
    assert len(report["errors"]) == 2 and "is absolute" in report["errors"][0]
    assert report["models"][0]["id"] == REPO  # the good one still ran
    assert tree_state(outside) == before
    assert_only_verified_bytes(models)


# --- bytes: the server's ETag, length, redirects never choose a path or get accepted unverified (H2, H3, M2)


@pytest.mark.parametrize("etag", ["../../../../outside/cron.d/planted", "/etc/cron.d/planted", "x" * 64])
def test_etag_never_names_a_file(hub, world, etag):
    models, outside = world
    model = honest_lock(hub)
    hub.behaviour.faults = {
        "model.safetensors": {"kind": "etag", "etag": etag.replace("outside", str(outside))},
        "config.json": {"kind": "etag", "etag": etag.replace("outside", str(outside))},
    }
    before = tree_state(outside)
    result, report = node_plan(hub.url, models, [model.to_dict()])
    assert result.returncode == 0, result.stderr  # the bytes are right: the blob is named by the lock's hash
    assert tree_state(outside) == before
    assert_only_verified_bytes(models)
    assert (models / FOLDER / "blobs" / sha256(WEIGHTS)).is_file()
    assert not list(models.rglob("*planted*"))


def test_wrong_bytes_forever_are_never_accepted(hub, world):
    models, outside = world
    model = honest_lock(hub)
    hub.behaviour.faults = {"model.safetensors": {"kind": "wrong"}}
    result, report = node_plan(hub.url, models, [model.to_dict()])
    assert result.returncode == 1 and "does not match" in report["errors"][0]
    assert "refs/main not written" in report["errors"][0]
    assert_not_complete(models)
    assert_only_verified_bytes(models)


def test_truncation_forever_fails_clearly(hub, world):
    models, _ = world
    model = honest_lock(hub)
    hub.behaviour.faults = {"model.safetensors": {"kind": "truncate", "after": 5000}}
    result = prefetch(hub.url, models)
    assert result.returncode == 1 and "still not verified" in result.stderr
    assert_not_complete(models)
    assert_only_verified_bytes(models)
    assert model.commit == COMMIT


@pytest.mark.parametrize("kind", ["endless", "long-length"])
def test_a_body_longer_than_the_lock_is_cut(hub, world, kind):
    models, _ = world
    hub.behaviour.faults = {"model.safetensors": {"kind": kind}}
    result = prefetch(hub.url, models, timeout=60)
    assert result.returncode == 1
    assert "longer than the locked size" in result.stderr or "announces" in result.stderr
    used = sum(p.stat().st_size for p in models.rglob("*") if p.is_file() and not p.is_symlink())
    assert used < 2 * len(WEIGHTS) + 10_000  # cut at the locked size, not a disk filled
    assert_not_complete(models)
    assert_only_verified_bytes(models)


def test_a_drip_feeding_server_meets_the_deadline(hub, world):
    import time

    models, _ = world
    hub.behaviour.faults = {"model.safetensors": {"kind": "drip", "every": 0.1}}
    started = time.monotonic()
    result = prefetch(hub.url, models, timeout=90)
    assert time.monotonic() - started < 60
    assert result.returncode == 1 and "deadline" in result.stderr
    assert_not_complete(models)
    assert_only_verified_bytes(models)


def test_resume_answered_with_other_bytes_is_never_accepted_many_times(hub, tmp_path):
    """Cut half-way, then the resume is answered 200 with a whole other body: the hash restarts with the
    file, so the tampered body is refused, every time (the old in-place race accepted it about half the
    time)."""
    model = honest_lock(hub)
    for attempt in range(25):
        hub.behaviour.faults = {"model.safetensors": {"kind": "swap-prefix"}}
        hub.behaviour.gets.clear()
        models = tmp_path / f"m{attempt}"
        with pytest.raises(HubError, match="still not verified"):
            ensure_model(models, model, endpoint=hub.url, token=None, attempts=1, limits=FAST, progress=False)
        assert_not_complete(models)
        assert_only_verified_bytes(models)


def test_resume_answered_with_the_whole_right_file_restarts_and_passes(hub, tmp_path):
    model = honest_lock(hub)
    hub.behaviour.faults = {"model.safetensors": {"kind": "swap-prefix", "tamper": False}}
    result = ensure_model(
        tmp_path / "m", model, endpoint=hub.url, token=None, attempts=1, limits=FAST, progress=False
    )
    assert result.fetched_files == 2
    assert (tmp_path / "m" / FOLDER / "blobs" / sha256(WEIGHTS)).read_bytes() == WEIGHTS


def test_a_wrong_prefix_with_a_right_tail_is_refused_then_fetched_whole(hub, tmp_path):
    model = honest_lock(hub)
    hub.behaviour.faults = {"model.safetensors": {"kind": "bad-prefix-good-tail"}}
    with pytest.raises(HubError, match="does not match"):
        ensure_model(
            tmp_path / "a", model, endpoint=hub.url, token=None, attempts=1, limits=FAST, progress=False
        )
    assert_only_verified_bytes(tmp_path / "a")
    result = ensure_model(
        tmp_path / "a", model, endpoint=hub.url, token=None, attempts=2, limits=FAST, progress=False
    )
    assert result.fetched_files >= 1 and (tmp_path / "a" / FOLDER / "refs" / "main").read_text() == COMMIT


def test_one_connection_serves_every_file_of_an_origin(hub, tmp_path):
    model = honest_lock(hub)
    hub.behaviour.connections = 0
    result = ensure_model(
        tmp_path / "m", model, endpoint=hub.url, token=None, max_workers=1, limits=FAST, progress=False
    )
    assert result.fetched_files == 2 and hub.behaviour.connections == 1
    assert_only_verified_bytes(tmp_path / "m")


def test_an_idle_connection_the_server_closed_is_replaced_not_counted_as_a_cut(hub, tmp_path):
    model = honest_lock(hub)
    hub.behaviour.faults = {"model.safetensors": {"kind": "quiet-close"}}  # fetched first (largest)
    hub.behaviour.connections = 0
    no_resumes = FetchLimits(min_rate=1e9, deadline_floor=3.0, read_timeout=1.0, resumes=0)
    result = ensure_model(
        tmp_path / "m",
        model,
        endpoint=hub.url,
        token=None,
        max_workers=1,
        attempts=1,
        limits=no_resumes,
        progress=False,
    )
    assert result.fetched_files == 2 and hub.behaviour.gets == {"model.safetensors": 1, "config.json": 1}
    assert hub.behaviour.connections == 2
    assert_only_verified_bytes(tmp_path / "m")


def _second_origin():
    try:
        probe = socket.socket()
        probe.bind(("127.0.0.2", 0))
        probe.close()
        return "127.0.0.2"
    except OSError:  # no 127.0.0.2 here: "localhost" is another origin than 127.0.0.1 all the same
        return "localhost"


def test_cross_origin_redirect_gets_no_token_and_its_bytes_are_verified(hub, world):
    models, outside = world
    model = honest_lock(hub)
    with HostileHub(host=_second_origin(), redirect_only="yes") as cdn:
        cdn_url = cdn.url
        hub.behaviour.faults = {"model.safetensors": {"kind": "redirect", "to": cdn_url}}
        result, report = node_plan(hub.url, models, [model.to_dict()], token="hf_secret_token_123456")
        assert result.returncode == 0, result.stderr
        assert cdn.behaviour.log and all(auth is None for _, _, auth, _ in cdn.behaviour.log)
        assert any(auth == "Bearer hf_secret_token_123456" for _, _, auth, _ in hub.behaviour.log)
        assert_only_verified_bytes(models)
        # the CDN turns hostile: its bytes are refused like anyone's
        cdn.behaviour.faults = {"model.safetensors": {"kind": "wrong"}}
        other = tmp = models.parent / "models2"
        result, report = node_plan(hub.url, other, [model.to_dict()])
        assert result.returncode == 1 and "does not match" in report["errors"][0]
        assert_only_verified_bytes(tmp)


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://x"])
def test_redirect_to_another_scheme_is_refused(hub, world, target):
    models, outside = world
    model = honest_lock(hub)
    hub.behaviour.faults = {"model.safetensors": {"kind": "redirect", "to": target}}
    result, report = node_plan(hub.url, models, [model.to_dict()])
    assert result.returncode == 1 and "non-http(s)" in report["errors"][0]
    assert_not_complete(models)


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_hub_down_is_one_line_everywhere(hub, world):
    models, _ = world
    down = f"http://127.0.0.1:{_closed_port()}"
    result = prefetch(down, models)
    assert result.returncode == 1 and "cannot reach http://127.0.0.1:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    model = honest_lock(hub)
    result, report = node_plan(down, models, [model.to_dict()])
    assert result.returncode == 1 and "ConnectionRefusedError" in report["errors"][0], report
    assert_not_complete(models)


def test_symlinks_planted_in_the_models_dir_are_not_followed(hub, world):
    """A runner container (it mounts the models dir read-write) plants links: lpfleet neither chmods their
    targets nor writes through a symlinked folder."""
    models, outside = world
    model = honest_lock(hub)
    assert node_plan(hub.url, models, [model.to_dict()])[0].returncode == 0
    snapshot = models / FOLDER / "snapshots" / COMMIT
    (snapshot / "planted").symlink_to(outside / "private")
    (models / FOLDER / "refs" / "main").unlink()  # so the run does its final steps again
    before = tree_state(outside)
    result, _ = node_plan(hub.url, models, [model.to_dict()])
    assert result.returncode == 0, result.stderr
    assert tree_state(outside) == before  # still 0700
    # blobs/ swapped for a link to a folder outside: refused, nothing written there
    blobs = models / FOLDER / "blobs"
    for blob in blobs.iterdir():
        blob.unlink()
    blobs.rmdir()
    blobs.symlink_to(outside / "cron.d")
    result, report = node_plan(hub.url, models, [model.to_dict()])
    assert result.returncode == 1 and "is a symlink" in report["errors"][0]
    assert tree_state(outside) == before


def test_olah_offline_answers_fall_back_to_the_revision_endpoint(hub, world):
    """olah in offline mode answers /api/models/{repo} with 401 + X-Error-Code: RepoNotFound; the revision and
    tree endpoints work. lock and prefetch must still work, saying what could not be checked."""
    models, _ = world
    hub.behaviour.info_refused = True
    model = lock_model(ModelRequest(REPO, "main", None), hub.url, None)
    assert model.commit == COMMIT and any("model info" in note for note in model.unchecked)
    result = prefetch(hub.url, models)
    assert result.returncode == 0, result.stderr
    assert (models / FOLDER / "refs" / "main").read_text() == COMMIT
    assert_only_verified_bytes(models)
    result = run_cli("prefetch", "evil/other", "--models-dir", str(models), "--quiet", endpoint=hub.url)
    assert result.returncode == 1 and "evil/other: not found on" in result.stderr


def test_verify_sees_a_blob_rewritten_in_place_without_hashing(hub, tmp_path):
    """Same size, other bytes: the verify node script compares stamps with the verification record."""
    from lpfleet.facts.verify_node_script import gather_weights

    models = tmp_path / "m"
    model = honest_lock(hub)
    ensure_model(models, model, endpoint=hub.url, token=None, progress=False, limits=FAST)
    wanted = [
        {"id": REPO, "branch": "main", "commit": COMMIT, "files": [[f.path, f.size] for f in model.files]}
    ]
    assert gather_weights(str(models), wanted)[0]["modified"] == []
    blob = models / FOLDER / "blobs" / sha256(WEIGHTS)
    data = bytearray(blob.read_bytes())
    data[10] ^= 0x01
    blob.write_bytes(bytes(data))
    entry = gather_weights(str(models), wanted)[0]
    assert entry["modified"] == ["model.safetensors"] and entry["wrong_size"] == []
