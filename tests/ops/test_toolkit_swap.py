"""The daemon.json compare-and-swap script, run for real with sh on temporary files."""

from __future__ import annotations

import hashlib
import os
import subprocess

from lpfleet.operations.daemon_json import _SWAP


def swap(path, new, expect, backup, marker, line="reload: daemon.json runtimes.nvidia added"):
    return subprocess.run(["sh", "-c", _SWAP, "lpfleet-daemon-json", str(path), str(new), expect, str(backup),
                           str(marker), line], capture_output=True, text=True)


def test_new_file_is_created_and_the_reason_recorded(tmp_path):
    path, new, marker = tmp_path / "daemon.json", tmp_path / ".daemon.json.lpfleet-new", tmp_path / "m" / "pending"
    new.write_text('{"a": 1}')
    result = swap(path, new, "absent", "", marker)
    assert result.returncode == 0, result.stderr
    assert path.read_text() == '{"a": 1}' and not new.exists()
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    assert marker.read_text() == "reload: daemon.json runtimes.nvidia added\n"


def test_existing_file_is_backed_up_and_keeps_its_mode(tmp_path):
    path, new, backup, marker = (tmp_path / "daemon.json", tmp_path / ".new", tmp_path / "daemon.json.bak",
                                 tmp_path / "pending")
    path.write_text("{}")
    os.chmod(path, 0o600)
    new.write_text('{"b": 2}')
    result = swap(path, new, hashlib.sha256(b"{}").hexdigest(), backup, marker)
    assert result.returncode == 0, result.stderr
    assert path.read_text() == '{"b": 2}' and backup.read_text() == "{}"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_file_changed_since_it_was_read_is_not_overwritten(tmp_path):
    path, new, marker = tmp_path / "daemon.json", tmp_path / ".new", tmp_path / "pending"
    path.write_text('{"edited": "meanwhile"}')
    new.write_text('{"ours": true}')
    result = swap(path, new, hashlib.sha256(b"{}").hexdigest(), tmp_path / "bak", marker)
    assert result.returncode == 1
    assert "changed since it was read; not overwritten" in result.stderr
    assert path.read_text() == '{"edited": "meanwhile"}' and not new.exists() and not marker.exists()


def test_a_file_that_appeared_since_it_was_read_is_not_overwritten(tmp_path):
    path, new = tmp_path / "daemon.json", tmp_path / ".new"
    path.write_text("{}")
    new.write_text('{"ours": true}')
    result = swap(path, new, "absent", "", tmp_path / "pending")
    assert result.returncode == 1 and "appeared since it was read" in result.stderr
    assert path.read_text() == "{}"
