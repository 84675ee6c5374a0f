"""lpfleet against a real community mirror: olah (PyPI `olah`, an HF mirror server) in offline mode, serving a
git-mirrored repo (no LFS) from its `mirrors` folder on 127.0.0.1.

olah offline answers `/api/models/{repo}` with 401 + `X-Error-Code: RepoNotFound` while the revision and tree
endpoints work: `lpfleet lock` and `lpfleet prefetch` must fall back to the revision endpoint, fetch, verify,
and leave a cache huggingface_hub's offline loader reads. No sandbox, no network beyond 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
REPO = "org/tiny"
FILES = {
    "config.json": b'{"model_type": "tiny"}\n',
    "model.bin": bytes(range(256)) * 64,
    "sub/readme.txt": b"a nested file\n",
}


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture(scope="module")
def olah(tmp_path_factory):
    olah_cli = BIN / "olah-cli"
    assert olah_cli.exists(), "olah is not installed in this venv: run `make venv` (it is in the test extra)"
    assert shutil.which("git"), "git is needed to build the mirrored repo"
    root = tmp_path_factory.mktemp("olah")
    repo = root / "mirrors" / "models" / "org" / "tiny"
    for rel, data in FILES.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_bytes(data)
    git = ["git", "-C", str(repo), "-c", "user.email=t@example.invalid", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "weights"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    port = _free_port()
    (root / "olah.toml").write_text(
        f'[basic]\nhost = "127.0.0.1"\nport = {port}\nrepos-path = "{root}/repos"\nmirror-scheme = "http"\n'
        f'mirror-netloc = "127.0.0.1:{port}"\nmirror-lfs-netloc = "127.0.0.1:{port}"\n'
        f'mirrors-path = ["{root}/mirrors"]\n\n[accessibility]\noffline = true\n'
    )
    log = open(root / "olah.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(olah_cli), "-c", str(root / "olah.toml")], cwd=root, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            assert proc.poll() is None, (root / "olah.log").read_text()[-2000:]
            time.sleep(0.2)
    yield url, commit, root
    proc.terminate()
    proc.wait(timeout=20)
    log.close()


def run(
    *args: str, endpoint: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update({"HF_ENDPOINT": endpoint, "HF_HOME": str(Path(cwd or "/tmp") / "hf-home")})
    result = subprocess.run(
        list(args), env=env, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=180
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    return result


def offline_files(models: Path) -> dict[str, bytes]:
    from huggingface_hub import snapshot_download

    snapshot = Path(snapshot_download(REPO, cache_dir=str(models), local_files_only=True))
    return {str(p.relative_to(snapshot)): p.read_bytes() for p in snapshot.rglob("*") if p.is_file()}


def test_olah_offline_refuses_model_info_as_documented(olah):
    import urllib.error
    import urllib.request

    url, commit, _ = olah
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{url}/api/models/{REPO}", timeout=10)
    assert info.value.code == 401 and info.value.headers["X-Error-Code"] == "RepoNotFound"
    with urllib.request.urlopen(f"{url}/api/models/{REPO}/revision/main", timeout=10) as resp:
        assert json.loads(resp.read())["sha"] == commit


def test_prefetch_from_olah_then_offline_load(olah, tmp_path):
    url, commit, _ = olah
    models = tmp_path / "models"
    result = run(
        str(BIN / "lpfleet"),
        "prefetch",
        REPO,
        "--models-dir",
        str(models),
        "--quiet",
        endpoint=url,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (models / "models--org--tiny" / "refs" / "main").read_text() == commit
    assert offline_files(models) == FILES
    again = run(
        str(BIN / "lpfleet"),
        "prefetch",
        REPO,
        "--models-dir",
        str(models),
        "--quiet",
        endpoint=url,
        cwd=tmp_path,
    )
    assert again.returncode == 0 and "already complete" in again.stdout


def test_lock_from_olah_then_the_node_fetches_from_it(olah, tmp_path):
    url, commit, _ = olah
    (tmp_path / "group_data").mkdir()
    (tmp_path / "inventory.py").write_text('gpu = ["node-a"]\n')
    (tmp_path / "group_data" / "all.py").write_text(
        "gpus = [0]\n"
        f"ai_models = [{{'pipeline': 'audio-to-text', 'model_id': '{REPO}', 'price_per_unit': 1}}]\n"
        f"hf_endpoint = {url!r}\n"
    )
    result = run(str(BIN / "lpfleet"), "lock", str(tmp_path / "inventory.py"), endpoint=url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "not checked: model info (HTTP 401" in result.stdout
    from lpfleet.lock import load

    [model] = load((tmp_path / "models.lock").read_text()).models
    assert model.commit == commit and {f.path for f in model.files} == set(FILES)
    for f in model.files:  # a git-mirrored repo without LFS: every file is a git blob
        data = FILES[f.path]
        assert f.git_blob == hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    plan = {"endpoint": url, "token": None, "branch": "main", "models": [model.to_dict()]}
    node = run(
        sys.executable,
        "-m",
        "lpfleet.commands.prefetch",
        "--plan-stdin",
        "--models-dir",
        str(tmp_path / "node-models"),
        endpoint=url,
        cwd=tmp_path,
        stdin=json.dumps(plan),
    )
    assert node.returncode == 0, node.stderr
    assert offline_files(tmp_path / "node-models") == FILES
