"""`lpfleet lock` and `lpfleet prefetch` failures: one line naming the thing and the fix, never a traceback;
lock writes only a complete lock, atomically, and never over a file it cannot parse.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lpfleet.lock import load
from tests.hostile_hub import COMMIT, REPO, HostileHub

LPFLEET = Path(sys.executable).parent / "lpfleet"


def run(
    *args: str, cwd: Path | None = None, env_extra: dict | None = None, user: str | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "LPFLEET_TEST_HUB"))}
    env.update(env_extra or {})
    argv = [str(LPFLEET), *args]
    if user == "nobody":
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def inventory(tmp_path: Path, hub_url: str, models: tuple[str, ...] = (REPO,)) -> Path:
    (tmp_path / "group_data").mkdir(parents=True, exist_ok=True)
    (tmp_path / "inventory.py").write_text('gpu = ["node-a", "node-b"]\n')
    entries = ", ".join(
        f'{{"pipeline": "audio-to-text", "model_id": "{m}", "price_per_unit": 1}}' for m in models
    )
    (tmp_path / "group_data" / "all.py").write_text(
        f"gpus = [0]\nai_models = [{entries}]\nhf_endpoint = {hub_url!r}\n"
    )
    return tmp_path / "inventory.py"


def closed_port_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hub():
    with HostileHub() as server:
        yield server


def test_lock_writes_a_complete_lock_then_is_up_to_date(hub, tmp_path):
    inv = inventory(tmp_path, hub.url)
    first = run("lock", str(inv))
    assert first.returncode == 0, first.stderr
    lock = load((tmp_path / "models.lock").read_text())
    assert [m.model_id for m in lock.models] == [REPO] and lock.models[0].commit == COMMIT
    again = run("lock", str(inv))
    assert again.returncode == 0 and "up to date" in again.stdout
    assert not list(tmp_path.glob(".models.lock*"))  # no temp file left


def test_lock_names_every_model_it_cannot_resolve_and_writes_nothing(hub, tmp_path):
    inv = inventory(tmp_path, hub.url)
    assert run("lock", str(inv)).returncode == 0
    before = (tmp_path / "models.lock").read_bytes()
    inventory(tmp_path, hub.url, (REPO, "evil/missing-one", "evil/missing-two"))
    result = run("lock", str(inv))
    assert result.returncode == 1
    assert "2 of 3 model(s) cannot be locked" in result.stderr
    assert "evil/missing-one: not found" in result.stderr and "evil/missing-two: not found" in result.stderr
    assert "[hosts: node-a, node-b]" in result.stderr
    assert (tmp_path / "models.lock").read_bytes() == before


def test_lock_shows_what_it_removes(hub, tmp_path):
    inv = inventory(tmp_path, hub.url)
    assert run("lock", str(inv)).returncode == 0
    (tmp_path / "group_data" / "all.py").write_text(
        f"gpus = [0]\nai_models = []\nhf_endpoint = {hub.url!r}\n"
    )
    result = run("lock", str(inv))
    assert result.returncode == 0, result.stderr
    assert f"removed  {REPO} (main)" in result.stdout
    assert load((tmp_path / "models.lock").read_text()).models == ()


@pytest.mark.parametrize(
    "endpoint, message",
    [
        (None, "cannot reach http://127.0.0.1:"),
        ("not a url", "contains a space"),
        ("ftp://mirror.example/hf", "expected an http:// or https:// URL"),
        ("http://", "no host name"),
    ],
)
def test_lock_without_a_usable_endpoint_is_one_line_per_model(tmp_path, endpoint, message):
    inv = inventory(tmp_path, endpoint or closed_port_url())
    result = run("lock", str(inv))
    if endpoint in ("not a url", "ftp://mirror.example/hf", "http://"):
        # group data validation may refuse it first (that is fine too): either way a message, not a traceback
        assert result.returncode == 1 and (message in result.stderr or "hf_endpoint" in result.stderr)
    else:
        assert result.returncode == 1 and message in result.stderr
    assert not (tmp_path / "models.lock").exists()


def test_lock_leaves_an_unparsable_lock_alone(hub, tmp_path):
    inv = inventory(tmp_path, hub.url)
    (tmp_path / "models.lock").write_text("version: 1\nmodels: [ {id: broken\n")
    result = run("lock", str(inv))
    assert result.returncode == 1 and "left untouched" in result.stderr
    assert (tmp_path / "models.lock").read_text() == "version: 1\nmodels: [ {id: broken\n"


def test_lock_into_a_folder_it_cannot_write(hub, tmp_path):
    inv = inventory(tmp_path, hub.url)
    (tmp_path / "group_data" / "all.py").write_text(
        "gpus = [0]\n"
        f"ai_models = [{{'pipeline': 'audio-to-text', 'model_id': '{REPO}', 'price_per_unit': 1}}]\n"
        f"hf_endpoint = {hub.url!r}\nmodels_lock = '/proc/lpfleet-cannot/models.lock'\n"
    )
    result = run("lock", str(inv))
    assert result.returncode == 1 and "cannot write /proc/lpfleet-cannot/models.lock" in result.stderr


@pytest.mark.parametrize("model_id", ["noslash", "a/b/c", "../etc", "org/--x", "org/name\n", "org/name-"])
def test_prefetch_refuses_a_malformed_model_id(tmp_path, model_id):
    result = run(
        "prefetch", model_id, "--models-dir", str(tmp_path / "m"), env_extra={"HF_ENDPOINT": "http://x"}
    )
    assert result.returncode == 2 and "not a model id" in result.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "endpoint", ["not a url", "ftp://x", "http://", "http://host:99999", "http://h/?q=1"]
)
def test_prefetch_refuses_a_bad_hf_endpoint(tmp_path, endpoint):
    result = run("prefetch", REPO, "--models-dir", str(tmp_path / "m"), env_extra={"HF_ENDPOINT": endpoint})
    assert result.returncode == 2 and "HF_ENDPOINT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_prefetch_with_no_network(tmp_path):
    result = run(
        "prefetch",
        REPO,
        "--models-dir",
        str(tmp_path / "m"),
        "--attempts",
        "1",
        env_extra={"HF_ENDPOINT": closed_port_url()},
    )
    assert result.returncode == 1 and "cannot reach" in result.stderr


def test_prefetch_into_a_file(tmp_path):
    (tmp_path / "m").write_text("a file")
    result = run("prefetch", REPO, "--models-dir", str(tmp_path / "m"), env_extra={"HF_ENDPOINT": "http://x"})
    assert result.returncode == 2 and "exists and is not a directory" in result.stderr


def _read_only(models: Path) -> tuple[str | None, callable]:
    """Make `models` unwritable for the command: as root run it as nobody; otherwise drop write bits."""
    if os.geteuid() == 0:
        for path in [models, *models.rglob("*")]:
            if not path.is_symlink():
                path.chmod(path.stat().st_mode & ~0o222)
        return "nobody", lambda: None
    for path in [models, *models.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)
    return None, lambda: None


@pytest.fixture
def open_tmp():
    """A temp folder every user can reach (pytest's own are 0700 to root)."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="lpfleet-ro-"))
    path.chmod(0o755)
    yield path
    for sub in [path, *path.rglob("*")]:
        if sub.is_dir() and not sub.is_symlink():
            sub.chmod(0o755)
    shutil.rmtree(path)


def test_a_complete_read_only_models_dir_verifies_without_writing(hub, open_tmp):
    models = open_tmp / "m"
    env = {"HF_ENDPOINT": hub.url}
    assert run("prefetch", REPO, "--models-dir", str(models), "--quiet", env_extra=env).returncode == 0
    user, _ = _read_only(models)
    hub.behaviour.log.clear()
    again = run("prefetch", REPO, "--models-dir", str(models), "--quiet", env_extra=env, user=user)
    assert again.returncode == 0, again.stderr
    assert "already complete" in again.stdout and hub.behaviour.log == []
    # without its verification records (a copied dir): hashed, passes, says it could not record
    records = models / ".lpfleet" / "verified"
    for path in [records, *records.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    for record in records.rglob("*.json"):
        record.unlink()
    user, _ = _read_only(models)
    third = run("prefetch", REPO, "--models-dir", str(models), "--quiet", env_extra=env, user=user)
    assert third.returncode == 0, third.stderr
    assert "read-only" in third.stdout
    # a file missing in a read-only dir: a clear error, not a traceback
    blob = next((models / "models--evil--model" / "blobs").iterdir())
    blob.parent.chmod(0o755)
    blob.unlink()
    user, _ = _read_only(models)
    fourth = run("prefetch", REPO, "--models-dir", str(models), "--quiet", env_extra=env, user=user)
    assert fourth.returncode == 1 and "cannot write to" in fourth.stderr
