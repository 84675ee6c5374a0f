"""lpfleet: provision and check fleets of Livepeer AI GPU nodes (with pyinfra).

Start with `lpfleet init DIR` (a starter fleet repository) or `lpfleet lint aiModels.json`.
`lpfleet COMMAND --help` tells each command's arguments and exit codes.
"""

# Each command module (lpfleet.commands.NAME) exposes `register(subparsers)` (adds its parser and sets `func`)
# and keeps heavy imports (pyinfra, huggingface_hub, docker) inside the function it runs, so `lpfleet lint`
# starts fast.

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import traceback

COMMANDS = (
    "init",
    "lint",
    "validate",
    "render",
    "lock",
    "prefetch",
    "prune",
    "verify",
    "rollout",
    "bootstrap",
    "diagnose",
    "sandbox",
    "plan",
    "plan-warm",
)

#: Exit status for a failure a command did not foresee: its contract's "could not check" code where it has one
#: (verify, rollout, diagnose, bootstrap: 2), else its failure code 1.
COULD_NOT_CHECK_EXIT = {"verify": 2, "rollout": 2, "diagnose": 2, "bootstrap": 2}
#: A closed stdout (`lpfleet lint ... | head`): what a shell reports for a process stopped by SIGPIPE.
CLOSED_PIPE_EXIT = 141


def version() -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version("lpfleet")
    except Exception:  # noqa: BLE001 - not installed as a distribution (a bare checkout on sys.path)
        from lpfleet import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lpfleet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"lpfleet {version()}")
    parser.add_argument(
        "--debug",
        action="store_true",
        help="on an unexpected failure, show the Python stack (for a bug report)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"lpfleet.commands.{name.replace('-', '_')}")
        except ModuleNotFoundError as exc:
            if exc.name != f"lpfleet.commands.{name.replace('-', '_')}":
                raise
            continue
        module.register(sub)
    return parser


def describe_failure(exc: BaseException) -> str:
    """One line for an operator: what failed and what to do, from an exception no command caught."""
    from lpfleet.secrets import mask

    name = exc.__class__.__name__
    if isinstance(exc, PermissionError):
        where = f" {exc.filename}" if exc.filename else ""
        what = f"permission denied{where}: run as a user that may write there, or choose another path"
    elif isinstance(exc, FileNotFoundError):
        where = f" {exc.filename}" if exc.filename else ""
        what = f"not found{where}: check the path"
    elif isinstance(exc, (IsADirectoryError, NotADirectoryError, FileExistsError)):
        where = f" {exc.filename}" if exc.filename else ""
        what = f"{exc.strerror or name}{where}: a file and a folder are mixed up in that path"
    elif isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        what = "no space left on the device: free some space and run again"
    elif isinstance(exc, UnicodeDecodeError):
        what = f"a file is not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8"
    elif name == "HFValidationError":
        what = f"invalid model id or revision: {exc} (model ids are org/name, exact case, as on its page)"
    elif _is_network_error(exc):
        url = _request_url(exc)
        at = f" reaching {url}" if url else ""
        what = (
            f"network failure{at} ({name}: {exc}): check the address (HF_ENDPOINT, hf_endpoint) and the "
            "connection"
        )
    else:
        what = f"{name}: {exc}"
    return mask(what)


def _is_network_error(exc: BaseException) -> bool:
    """A connection problem from the standard library or an HTTP client (httpx, requests); imports neither."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    for cls in type(exc).__mro__:
        module = cls.__module__.split(".")[0]
        if module in ("httpx", "httpx2", "httpcore", "requests", "urllib3") and cls.__name__ in (
            "ConnectError",
            "ConnectTimeout",
            "ReadTimeout",
            "TimeoutException",
            "NetworkError",
            "TransportError",
            "UnsupportedProtocol",
            "InvalidURL",
            "ConnectionError",
            "Timeout",
            "RequestError",
            "ProtocolError",
        ):
            return True
    return False


def _request_url(exc: BaseException) -> str | None:
    """The scheme://host:port an HTTP client's error was about, when it says (httpx keeps the request)."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - httpx raises RuntimeError when no request is attached
        return None
    try:
        return f"{url.scheme}://{url.netloc.decode() if isinstance(url.netloc, bytes) else url.netloc}"
    except Exception:  # noqa: BLE001
        return None


def _stdout_closed() -> None:
    """The reader went away (`lpfleet lint ... | head`): stop quietly, as `cat` does."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"lpfleet {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _stdout_closed()
        return CLOSED_PIPE_EXIT
    except SystemExit:
        raise
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback reaches an operator
        if args.debug:
            traceback.print_exc()
        print(
            f"lpfleet {args.command}: {describe_failure(exc)}"
            + ("" if args.debug else " (--debug shows where)"),
            file=sys.stderr,
        )
        return COULD_NOT_CHECK_EXIT.get(args.command, 1)


def run() -> int:
    """The console script: main() with a closed stdout at exit handled too."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_closed()
        return CLOSED_PIPE_EXIT
    return code


if __name__ == "__main__":
    sys.exit(run())
