"""The sandbox hub on 127.0.0.1:0: the HF endpoints, gated access, every fault switch, byte counters.

Real HTTP against a real server thread; huggingface_hub (installed, unmodified) is the client where it matters.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lpfleet.sandbox.hub import HubControl, HubServer
from lpfleet.sandbox.hub.models import git_blob_id

TOKEN = "hub-test-token-0123456789"
TINY = "lpfleet-sandbox/tiny-model"
GATED = "meta-llama/Meta-Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def server():
    with HubServer(token=TOKEN) as srv:
        yield srv


@pytest.fixture
def hub(server):
    control = HubControl(server.url)
    control.reset()
    yield server
    control.reset()


def request(url: str, path: str, method: str = "GET", headers: dict | None = None, timeout: float = 10):
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    conn.request(method, path, headers=headers or {})
    response = conn.getresponse()
    return conn, response


def get(url: str, path: str, headers: dict | None = None, timeout: float = 10) -> tuple[int, dict, bytes]:
    conn, response = request(url, path, headers=headers, timeout=timeout)
    try:
        body = response.read()
    finally:
        conn.close()
    return response.status, dict(response.getheaders()), body


def test_revision_tree_paging_and_model_info(hub):
    status, _, body = get(hub.url, f"/api/models/{TINY}/revision/main")
    info = json.loads(body)
    assert status == 200 and info["id"] == TINY and len(info["sha"]) == 40

    HubControl(hub.url).settings(page_size=2)
    entries, path, pages = [], f"/api/models/{TINY}/tree/{info['sha']}?recursive=true&expand=false", 0
    while path:
        status, headers, body = get(hub.url, path)
        assert status == 200
        entries += json.loads(body)
        pages += 1
        link = headers.get("Link")
        path = None
        if link:
            assert link.endswith('>; rel="next"')
            next_url = urlsplit(link[1:link.index(">")])
            path = f"{next_url.path}?{next_url.query}"
    assert pages == 3  # 5 files, 2 per page
    by_path = {e["path"]: e for e in entries}
    assert set(by_path) == {".gitattributes", "README.md", "config.json", "model.safetensors", "tokenizer.json"}
    assert by_path["model.safetensors"]["lfs"]["size"] == 64 * 1024
    assert "lfs" not in by_path["config.json"]


def test_resolve_etags_are_sha256_for_lfs_and_git_blob_otherwise(hub):
    status, headers, body = get(hub.url, f"/{TINY}/resolve/main/model.safetensors")
    assert status == 200 and headers["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'
    assert int(headers["Content-Length"]) == len(body) and len(headers["X-Repo-Commit"]) == 40
    status, headers, body = get(hub.url, f"/{TINY}/resolve/main/config.json")
    assert status == 200 and headers["ETag"] == f'"{git_blob_id(body)}"'


def test_range_gives_206_with_content_range(hub):
    _, _, whole = get(hub.url, f"/{TINY}/resolve/main/model.safetensors")
    status, headers, body = get(hub.url, f"/{TINY}/resolve/main/model.safetensors", {"Range": "bytes=1000-"})
    assert status == 206 and body == whole[1000:]
    assert headers["Content-Range"] == f"bytes 1000-{len(whole) - 1}/{len(whole)}"
    status, _, _ = get(hub.url, f"/{TINY}/resolve/main/model.safetensors", {"Range": f"bytes={len(whole)}-"})
    assert status == 416


def test_ids_are_exact_case(hub):
    status, _, body = get(hub.url, "/api/models/LPFLEET-sandbox/Tiny-Model")
    assert status == 200 and json.loads(body)["id"] == TINY  # canonical id, as huggingface.co answers
    status, headers, _ = get(hub.url, "/LPFLEET-sandbox/Tiny-Model/resolve/main/config.json")
    assert status == 307 and headers["Location"] == f"/{TINY}/resolve/main/config.json"
    status, headers, _ = get(hub.url, "/api/models/nobody/no-such-model/revision/main")
    assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"
    status, headers, _ = get(hub.url, f"/api/models/{TINY}/revision/no-such-branch")
    assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound"


def test_mirror_only_mode_hides_model_info_but_keeps_revision(hub):
    HubControl(hub.url).settings(mirror_only=True)
    assert get(hub.url, f"/api/models/{TINY}")[0] == 404
    assert get(hub.url, f"/api/models/{TINY}/revision/main")[0] == 200


def test_gated_repo_needs_the_token(hub):
    path = f"/{GATED}/resolve/main/config.json"
    status, headers, _ = get(hub.url, path)
    assert status == 401 and headers["X-Error-Code"] == "GatedRepo"
    status, headers, _ = get(hub.url, path, {"Authorization": "Bearer some-other-token"})
    assert status == 403 and headers["X-Error-Code"] == "GatedRepo"
    assert get(hub.url, path, {"Authorization": f"Bearer {TOKEN}"})[0] == 200
    info = json.loads(get(hub.url, f"/api/models/{GATED}")[2])
    assert info["gated"] == "manual"


def test_counters_count_body_bytes_and_reset(hub):
    control = HubControl(hub.url)
    control.reset_counters()
    _, _, body = get(hub.url, f"/{TINY}/resolve/main/model.safetensors")
    get(hub.url, f"/{TINY}/resolve/main/model.safetensors", {"Range": "bytes=100-"})
    counters = control.reset_counters()
    assert counters["bytes_total"] == 2 * len(body) - 100
    assert counters["bytes_by_file"][f"{TINY}/model.safetensors"] == 2 * len(body) - 100
    assert counters["requests"]["get"] == 2
    assert control.counters()["bytes_total"] == 0


def test_new_commit_moves_main_and_keeps_the_old_one(hub):
    control = HubControl(hub.url)
    old = json.loads(get(hub.url, f"/api/models/{TINY}/revision/main")[2])["sha"]
    new = control.bump(TINY)
    assert new != old
    assert json.loads(get(hub.url, f"/api/models/{TINY}/revision/main")[2])["sha"] == new
    assert get(hub.url, f"/{TINY}/resolve/{old}/config.json")[0] == 200


# --- faults, at the HTTP level


def test_fault_error_5xx_then_clears_after_times(hub):
    HubControl(hub.url).add_fault("error", status=503, repo=TINY, times=1)
    assert get(hub.url, f"/{TINY}/resolve/main/config.json")[0] == 503
    assert get(hub.url, f"/{TINY}/resolve/main/config.json")[0] == 200


def test_fault_truncate_sends_less_than_content_length(hub):
    HubControl(hub.url).add_fault("truncate", path="model.safetensors", after_bytes=1000)
    conn, response = request(hub.url, f"/{TINY}/resolve/main/model.safetensors")
    assert int(response.getheader("Content-Length")) == 64 * 1024
    with pytest.raises(http.client.IncompleteRead) as excinfo:
        response.read()
    assert len(excinfo.value.partial) == 1000
    conn.close()


def test_fault_wrong_bytes_keeps_size_changes_content(hub):
    _, headers, good = get(hub.url, f"/{TINY}/resolve/main/model.safetensors")
    HubControl(hub.url).add_fault("wrong-bytes", path="model.safetensors", times=1)
    status, bad_headers, bad = get(hub.url, f"/{TINY}/resolve/main/model.safetensors")
    assert status == 200 and len(bad) == len(good) and bad != good
    assert bad_headers["ETag"] == headers["ETag"]  # the header still promises the right content


def test_fault_stall_sends_nothing_more(hub):
    HubControl(hub.url).add_fault("stall", path="model.safetensors", seconds=5, after_bytes=100, times=1)
    conn, response = request(hub.url, f"/{TINY}/resolve/main/model.safetensors", timeout=1.0)
    assert len(response.read(100)) == 100
    with pytest.raises((socket.timeout, TimeoutError)):
        response.read(1)
    conn.close()


def test_fault_bandwidth_limits_rate_without_serializing_clients(hub):
    size = 64 * 1024
    rate = 128 * 1024  # 0.5 s per download
    HubControl(hub.url).add_fault("bandwidth", rate=rate, shared=False, path="model.safetensors")
    results: list[float] = []

    def fetch() -> None:
        started = time.monotonic()
        status, _, body = get(hub.url, f"/{TINY}/resolve/main/model.safetensors")
        assert status == 200 and len(body) == size
        results.append(time.monotonic() - started)

    started = time.monotonic()
    threads = [threading.Thread(target=fetch) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - started
    assert len(results) == 3 and min(results) >= 0.4  # each one was throttled
    assert wall < 1.2  # three at once took about as long as one, not three times as long


def test_fault_shared_bandwidth_is_one_link_for_everyone(hub):
    rate = 256 * 1024
    HubControl(hub.url).add_fault("bandwidth", rate=rate, path="model.safetensors")
    started = time.monotonic()
    threads = [threading.Thread(target=get, args=(hub.url, f"/{TINY}/resolve/main/model.safetensors"))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.monotonic() - started >= 4 * 64 * 1024 / rate * 0.8


def test_bad_fault_is_refused(hub):
    with pytest.raises(Exception) as excinfo:
        HubControl(hub.url).add_fault("bandwidth")
    assert "400" in str(excinfo.value)


# --- huggingface_hub itself against the hub


def test_snapshot_download_fetches_a_model_and_the_gated_one_only_with_token(hub, tmp_path: Path):
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError

    folder = snapshot_download(TINY, cache_dir=tmp_path, endpoint=hub.url, token=False)
    snapshot = Path(folder)
    assert (snapshot / "model.safetensors").stat().st_size == 64 * 1024
    assert (snapshot / "model.safetensors").is_symlink()
    ref = (tmp_path / "models--lpfleet-sandbox--tiny-model" / "refs" / "main").read_text()
    assert snapshot.name == ref

    with pytest.raises(GatedRepoError):
        snapshot_download(GATED, cache_dir=tmp_path, endpoint=hub.url, token=False)
    gated = Path(snapshot_download(GATED, cache_dir=tmp_path, endpoint=hub.url, token=TOKEN))
    assert (gated / "model-00001-of-00002.safetensors").stat().st_size == 512 * 1024


def test_content_is_generated_on_first_use_only(hub):
    """The benchmark repos (200 MB, 1 GiB) cost nothing until asked for: listing names is free, and a file
    listing of one repo generates that repo alone."""
    repos = hub.hub.repos
    assert "lpfleet-sandbox/bench-weights-1g" in repos
    assert all(not repo.commits for repo in repos.values())
    names = HubControl(hub.url).models()
    assert {m["id"] for m in names} == set(repos) and all("files" not in m for m in names)
    assert all(not repo.commits for repo in repos.values())
    (listed,) = HubControl(hub.url).models(files=True, repo=TINY)
    assert listed["id"] == TINY and {f["path"] for f in listed["files"]} >= {"model.safetensors", "config.json"}
    assert [rid for rid, repo in repos.items() if repo.commits] == [TINY]


def test_benchmark_model_layout():
    """1 GiB in 8 LFS shards plus config and index, as a sharded safetensors checkpoint is laid out."""
    from lpfleet.sandbox.hub.models import MODELS, MiB

    (model,) = [m for m in MODELS if m.repo_id == "lpfleet-sandbox/bench-weights-1g"]
    shards = [f for f in model.files if f.path.endswith(".safetensors")]
    assert [f.path for f in shards] == [f"model-{i:05d}-of-00008.safetensors" for i in range(1, 9)]
    assert all(f.lfs and f.size == 128 * MiB for f in shards)
    assert {"config.json", "model.safetensors.index.json"} <= {f.path for f in model.files}
