"""The fan-out chain on 127.0.0.1: a node's mirror forwards a file while its own fetch is still receiving it
(lpfleet.weights_relay), cuts a peer off when the fetch restarts or drops the file, says 404 once the fetch has
ended without it; a peer that fails or lies is dropped for the next source, and every byte is verified.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from pathlib import Path

import pytest

from lpfleet.hub import ensure_model
from lpfleet.weights_fetch import FetchLimits
from lpfleet.weights_relay import RelayBoard, board_problem, create_board
from tests.hostile_hub import COMMIT, REPO, WEIGHTS, HostileHub, sha256
from tests.unit.test_hostile_hub import honest_lock
from tests.unit.test_weights_mirror import TOKEN, Mirror

WEIGHTS_PATH = "model.safetensors"
LIMITS = FetchLimits(min_rate=1e6, deadline_floor=20.0, read_timeout=10.0, resumes=3)


@pytest.fixture
def hub():
    with HostileHub() as h:
        yield h


def open_get(mirror: Mirror, start: int = 0) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", mirror.port, timeout=10)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    conn.request("GET", f"/{REPO}/resolve/{COMMIT}/{WEIGHTS_PATH}", headers=headers)
    return conn.getresponse()


def read_exactly(resp: http.client.HTTPResponse, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = resp.read1(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def test_a_file_is_forwarded_while_it_arrives_and_fetched_upstream_once(hub, tmp_path):
    half = len(WEIGHTS) // 2
    hub.behaviour.faults[WEIGHTS_PATH] = {"kind": "pause", "after": half, "seconds": 1.5}
    model = honest_lock(hub)
    board = str(tmp_path / "board")
    mirror = Mirror(tmp_path, tmp_path / "a", [], extra=("--relay-board", board), relay=[model.to_dict()])
    done: dict[str, float] = {}
    peer_result: dict = {}
    try:
        assert board_problem(board) is None  # made by the mirror before it answered: private, ours

        def node_a() -> None:
            ensure_model(tmp_path / "a", model, endpoint=hub.url, token=None, progress=False, limits=LIMITS,
                         relay=RelayBoard(board))
            done["a"] = time.monotonic()

        def node_b() -> None:  # starts before node a: it waits for the file, then follows it
            peer_result["b"] = ensure_model(tmp_path / "b", model, endpoint=mirror.url, token=TOKEN,
                                            progress=False, limits=LIMITS)
            done["b"] = time.monotonic()

        b = threading.Thread(target=node_b)
        b.start()
        time.sleep(0.3)
        a = threading.Thread(target=node_a)
        a.start()
        deadline = time.monotonic() + 10
        while not os.listdir(board) and time.monotonic() < deadline:
            time.sleep(0.01)
        resp = open_get(mirror)
        assert resp.status == 200 and resp.getheader("Content-Length") == str(len(WEIGHTS))
        first = read_exactly(resp, half)
        got_first_half = time.monotonic()
        rest = resp.read()
        a.join(20)
        b.join(20)
        assert "a" in done and "b" in done
        # the first half came through while node a was still receiving the file (the hub pauses 1.5 s there)
        assert got_first_half < done["a"] - 1.0
        assert first + rest == WEIGHTS
        assert peer_result["b"].fetched_files == 2
        blob = tmp_path / "b" / "models--evil--model" / "blobs" / sha256(WEIGHTS)
        assert blob.read_bytes() == WEIGHTS
        assert hub.behaviour.gets[WEIGHTS_PATH] == 1  # upstream once: the peer got it from node a
    finally:
        mirror.stop()
    assert not os.path.exists(board)  # the mirror removes its board when it stops


def _staging(tmp_path: Path, board: str, data: bytes) -> tuple[RelayBoard, int, Path]:
    staging = tmp_path / "staging"
    staging.mkdir(mode=0o700)
    path = staging / "x.part"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    relay = RelayBoard(board)
    relay.started(sha256(WEIGHTS), path, fd)
    return relay, fd, path


def test_a_restarted_or_dropped_staging_file_cuts_the_peer_off(hub, tmp_path):
    model = honest_lock(hub)
    board = str(tmp_path / "board")
    mirror = Mirror(tmp_path, tmp_path / "a", [], extra=("--relay-board", board), relay=[model.to_dict()])
    try:
        relay, fd, path = _staging(tmp_path, board, WEIGHTS[:50_000])
        resp = open_get(mirror)
        assert read_exactly(resp, 50_000) == WEIGHTS[:50_000]
        os.ftruncate(fd, 0)  # the fetch restarted the file (a 200 answer to its range request)
        with pytest.raises(http.client.IncompleteRead):
            resp.read()
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, WEIGHTS[:10_000])
        resp = open_get(mirror)
        assert read_exactly(resp, 10_000) == WEIGHTS[:10_000]
        os.unlink(path)  # the fetch dropped it (its hash did not match)
        with pytest.raises(http.client.IncompleteRead):
            resp.read()
        os.close(fd)
        relay.failed(sha256(WEIGHTS))
        relay.finished()
        resp = open_get(mirror)
        assert resp.status == 404  # the fetch ended without it: no waiting
    finally:
        mirror.stop()


def test_a_range_request_continues_from_the_staging_file(hub, tmp_path):
    model = honest_lock(hub)
    board = str(tmp_path / "board")
    mirror = Mirror(tmp_path, tmp_path / "a", [], extra=("--relay-board", board), relay=[model.to_dict()])
    try:
        _, fd, _ = _staging(tmp_path, board, WEIGHTS[:1000])
        resp = open_get(mirror, start=500)
        assert resp.status == 206
        assert resp.getheader("Content-Range") == f"bytes 500-{len(WEIGHTS) - 1}/{len(WEIGHTS)}"
        threading.Timer(0.2, lambda: os.write(fd, WEIGHTS[1000:])).start()
        assert resp.read() == WEIGHTS[500:]
        os.close(fd)
    finally:
        mirror.stop()


def test_a_board_that_is_not_a_private_folder_is_refused(tmp_path):
    link = tmp_path / "link"
    os.symlink(tmp_path, link)
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    os.chmod(open_dir, 0o755)
    assert "symlink" in (board_problem(str(link)) or "")
    assert "0700" in (board_problem(str(open_dir)) or "")
    assert board_problem("relative/board")
    create_board(str(tmp_path / "new"))
    assert board_problem(str(tmp_path / "new")) is None
    with pytest.raises(FileExistsError):
        create_board(str(tmp_path / "new"))  # never reused
    with pytest.raises(ValueError):
        RelayBoard(str(open_dir))


def test_a_lying_peer_is_dropped_for_the_next_source(tmp_path):
    with HostileHub() as liar, HostileHub() as honest:
        liar.behaviour.faults[WEIGHTS_PATH] = {"kind": "wrong"}
        model = honest_lock(honest)
        lines: list[str] = []
        result = ensure_model(tmp_path / "n", model, endpoint=liar.url, token=None, progress=False,
                              limits=LIMITS, fallbacks=[(honest.url, None)], log=lines.append)
        assert result.fetched_files == 2
        assert (tmp_path / "n" / "models--evil--model" / "blobs" / sha256(WEIGHTS)).read_bytes() == WEIGHTS
        assert any("dropping" in line and liar.url in line for line in lines)
        assert liar.behaviour.gets[WEIGHTS_PATH] == 1  # not asked again once it lied
        assert honest.behaviour.gets[WEIGHTS_PATH] == 1


def test_a_peer_that_is_down_is_dropped_for_the_next_source(tmp_path):
    with HostileHub() as honest:
        model = honest_lock(honest)
        lines: list[str] = []
        result = ensure_model(tmp_path / "n", model, endpoint="http://127.0.0.1:9", token=None, progress=False,
                              limits=FetchLimits(min_rate=1e6, deadline_floor=5, read_timeout=2, resumes=0),
                              fallbacks=[(honest.url, None)], log=lines.append)
        assert result.fetched_files == 2 and any("dropping" in line for line in lines)


def test_a_peer_not_there_yet_is_asked_again_without_counting_a_cut(hub, tmp_path):
    """The mirror answers "not arrived yet" (503) after --relay-wait; the peer asks again within its deadline
    (resumes=0: a counted cut would fail it), and gets the file once the node's own fetch starts it."""
    model = honest_lock(hub)
    board = str(tmp_path / "board")
    mirror = Mirror(tmp_path, tmp_path / "a", [], extra=("--relay-board", board, "--relay-wait", "0.5"),
                    relay=[model.to_dict()])
    strict = FetchLimits(min_rate=1e6, deadline_floor=20.0, read_timeout=5.0, resumes=0)
    try:
        later = threading.Timer(2.0, lambda: ensure_model(tmp_path / "a", model, endpoint=hub.url, token=None,
                                                         progress=False, relay=RelayBoard(board)))
        later.start()
        result = ensure_model(tmp_path / "b", model, endpoint=mirror.url, token=TOKEN, progress=False,
                              limits=strict, attempts=1)
        later.join(20)
        assert result.fetched_files == 2
        assert hub.behaviour.gets[WEIGHTS_PATH] == 1
    finally:
        mirror.stop()
