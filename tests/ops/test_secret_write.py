"""`stdin_write`, the command every secret file is written with, run for real with sh: bytes from stdin, a
private unique temp file beside the target, renamed over it; nothing in argv, nothing in /tmp."""

from __future__ import annotations

import base64
import stat
import subprocess
from pathlib import Path

from lpfleet.operations.files import stdin_write


def run_command(command, cwd: Path) -> subprocess.CompletedProcess:
    stdin = command.connector_arguments["_stdin"] + "\n"  # pyinfra ends every stdin line with a newline
    return subprocess.run(
        ["sh", "-c", command.get_raw_value()],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
    )


def test_writes_exact_bytes_private_and_atomically(tmp_path):
    data = b'{"token": "s3cret"}'  # no trailing newline: kept exactly
    dest = tmp_path / "deep" / "aiModels.json"
    command = stdin_write(str(dest), data, "600")
    assert "s3cret" not in command.get_raw_value()
    assert base64.b64decode(command.connector_arguments["_stdin"]) == data
    result = run_command(command, tmp_path)
    assert result.returncode == 0, result.stderr
    assert dest.read_bytes() == data and stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert sorted(p.name for p in dest.parent.iterdir()) == ["aiModels.json"]  # no temp file left


def test_replaces_an_existing_file_and_keeps_other_modes(tmp_path):
    dest = tmp_path / "x.json"
    dest.write_text("old")
    dest.chmod(0o644)
    assert run_command(stdin_write(str(dest), b"new", "640"), tmp_path).returncode == 0
    assert dest.read_text() == "new" and stat.S_IMODE(dest.stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    dest = tmp_path / "x.json"
    dest.write_text("old")
    command = stdin_write(str(dest), b"new", "600", owner="no-such-user-lpfleet")
    result = run_command(command, tmp_path)
    assert result.returncode != 0
    assert dest.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
