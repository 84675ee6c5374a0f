"""The relay board: how a node's fetch tells its own mirror which files are in flight (fan-out chain). Stdlib only.

In fan-out mode a node that fetches a model may already be the source of the next node in the model's chain:
its mirror forwards each file's bytes as they land in the fetch's staging file, so copies multiply down the
chain instead of queuing on one seed (docs/weights.md, "Fleet-ready time"). The fetch and the mirror are two
processes of the same run on the same node; the board is the folder between them: one small JSON entry per
blob (`<locked hash>.json`), written atomically by the fetch, read by the mirror:

- `started`: the staging file now receiving the blob (path, device, inode); the mirror opens that exact inode
  (no symlink followed, device and inode checked) and follows it as it grows;
- `complete`: the blob verified and moved into place (path, device, inode, stamp), served like a verified blob;
- `failed`: that attempt was dropped (the fetch may start another one);
- a `done` file: the fetch process ended; whatever is not complete by then will not come.

The board is a folder the mirror creates for its run (0700, owned by the user running both), outside the models
dir: runner containers, which mount the models dir read-write, cannot reach it. Nothing on the board is trusted
beyond naming a file to read: the receiving peer verifies every byte against models.lock, as from any source.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any

ETAG = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
DONE = "done"
NOT_YET = "lpfleet-not-arrived-yet"  # X-Error-Code of a chain peer's 503 for a file its fetch has not started


def blob_stamp(st: os.stat_result) -> list[int]:
    """What a verified blob must still be to count as verified (size, mtime, ctime, inode): recorded by the
    fetch, checked by the mirror and the weights scan."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def board_problem(path: str) -> str | None:
    """Why `path` cannot be a relay board (None when it can): an absolute, real folder of ours, 0700."""
    if not isinstance(path, str) or not os.path.isabs(path) or "\0" in path:
        return "not an absolute path"
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot read it: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return "not a folder (a symlink is never followed)"
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        return "not a private folder of this user (0700)"
    return None


def _entry_path(board: str, etag: str) -> str:
    if not ETAG.fullmatch(etag):
        raise ValueError(f"not a blob hash: {etag[:80]!r}")
    return os.path.join(board, f"{etag}.json")


class RelayBoard:
    """The fetch's side: announce each blob's staging file, its completion or its failure."""

    def __init__(self, path: str) -> None:
        problem = board_problem(path)
        if problem:
            raise ValueError(f"relay board {path[:200]}: {problem}")
        self.path = path

    def _write(self, etag: str, entry: dict[str, Any]) -> None:
        target = _entry_path(self.path, etag)
        tmp = os.path.join(self.path, f".{etag}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(entry))
        os.replace(tmp, target)

    def started(self, etag: str, path: Path, fd: int) -> None:
        st = os.fstat(fd)
        self._write(etag, {"state": "started", "path": str(path), "dev": st.st_dev, "ino": st.st_ino})

    def complete(self, etag: str, path: Path) -> None:
        st = os.lstat(path)
        self._write(etag, {"state": "complete", "path": str(path), "dev": st.st_dev, "ino": st.st_ino,
                           "stamp": blob_stamp(st)})

    def failed(self, etag: str) -> None:
        self._write(etag, {"state": "failed"})

    def finished(self) -> None:
        fd = os.open(os.path.join(self.path, DONE), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.close(fd)


def read_entry(board: str, etag: str) -> dict[str, Any] | None:
    """The mirror's side: the board's entry for a blob, or None (none yet, or unreadable)."""
    try:
        fd = os.open(_entry_path(board, etag), os.O_RDONLY | os.O_NOFOLLOW)
    except (OSError, ValueError):
        return None
    try:
        with os.fdopen(fd) as handle:
            entry = json.loads(handle.read(4096))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) and entry.get("state") in ("started", "complete", "failed") else None


def board_finished(board: str) -> bool:
    """Whether the fetch process has ended (whatever is not complete then will not come)."""
    return os.path.lexists(os.path.join(board, DONE))


def open_entry(entry: dict[str, Any]) -> int | None:
    """A read-only fd of exactly the inode the entry names (regular file, same device and inode), or None."""
    path, dev, ino = entry.get("path"), entry.get("dev"), entry.get("ino")
    if not (isinstance(path, str) and os.path.isabs(path) and isinstance(dev, int) and isinstance(ino, int)):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_dev != dev or st.st_ino != ino:
        os.close(fd)
        return None
    if entry.get("state") == "complete" and blob_stamp(st) != entry.get("stamp"):
        os.close(fd)  # changed since it was verified
        return None
    return fd


def create_board(path: str) -> None:
    """The mirror makes its run's board: a new private folder (an existing path is refused, never reused)."""
    os.mkdir(path, 0o700)
    os.chmod(path, 0o700)


def remove_own_folder(path: str) -> None:
    """A folder of ours (a relay board, a staging folder): its files and links, then the folder; nothing
    recursive, nothing followed."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) or entry.is_symlink():
                    os.unlink(entry.path)
        os.rmdir(path)
    except OSError:
        pass
