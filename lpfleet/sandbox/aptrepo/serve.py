"""Serve the built apt repository over plain HTTP, the way nvidia.github.io serves NVIDIA's.

`python3 serve.py DIR [PORT]`. Stdlib only; exits cleanly on SIGTERM (it runs as PID 1 in its container, where
the default SIGTERM disposition would be ignored and `docker stop` would wait its full timeout).
"""

from __future__ import annotations

import functools
import signal
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class RepoHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        sys.stdout.write("%s %s\n" % (self.address_string(), format % args))
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    root = argv[1] if len(argv) > 1 else "/srv/apt"
    port = int(argv[2]) if len(argv) > 2 else 8080
    server = ThreadingHTTPServer(("0.0.0.0", port), functools.partial(RepoHandler, directory=root))
    server.daemon_threads = True

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"serving {root} on :{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
