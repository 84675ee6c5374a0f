"""Log lines in the two formats go-livepeer writes: glog (most of the node) and slog (the AI worker package)."""

from __future__ import annotations

import os
import sys
import time

_PID = os.getpid()


def _glog(level: str, where: str, msg: str) -> None:
    now = time.time()
    stamp = time.strftime("%m%d %H:%M:%S", time.localtime(now)) + f".{int((now % 1) * 1e6):06d}"
    sys.stderr.write(f"{level}{stamp} {_PID:7d} {where}] {msg}\n")
    sys.stderr.flush()


def info(msg: str, where: str = "starter.go:0") -> None:
    _glog("I", where, msg)


def warning(msg: str, where: str = "starter.go:0") -> None:
    _glog("W", where, msg)


def error(msg: str, where: str = "starter.go:0") -> None:
    _glog("E", where, msg)


def fatal(msg: str, where: str = "starter.go:0") -> None:
    """glog.Exit: log at F, exit 1 at once (deferred functions do not run)."""
    _glog("F", where, msg)
    os._exit(1)


def _value(v: object) -> str:
    text = str(v)
    if text == "" or any(c in text for c in ' ="\\'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def slog(level: str, msg: str, **attrs: object) -> None:
    """Go's default slog handler output (through the log package): `2006/01/02 15:04:05 INFO msg k=v`."""
    stamp = time.strftime("%Y/%m/%d %H:%M:%S")
    parts = [stamp, level, msg] + [f"{k}={_value(v)}" for k, v in attrs.items()]
    sys.stderr.write(" ".join(parts) + "\n")
    sys.stderr.flush()


class GoPanic(Exception):
    """A Go panic unwinding: deferred cleanup runs, then `report_panic` prints it and exits 2."""


def panic(msg: str) -> None:
    raise GoPanic(msg)


def report_panic(msg: str) -> None:
    sys.stderr.write(f"panic: {msg}\n\ngoroutine 1 [running]:\nmain.main()\n\t/go/src/cmd/livepeer/livepeer.go\n")
    sys.stderr.flush()
    os._exit(2)
