"""The BYOC stand-in: an external inference container that go-livepeer reaches at an aiModels.json `url`.

GET /health answers 200 {"status": "OK"} (or 503 / no answer when switched unhealthy / stalled); POST to any
inference path needs `Authorization: Bearer <BYOC_TOKEN>` (the token from BYOC_TOKEN_FILE or BYOC_TOKEN).
Switch at run time with POST /_sandbox/mode {"mode": "ok"|"unhealthy"|"stall"}, or start with BYOC_MODE.
"""

from __future__ import annotations

import hmac
import http.server
import json
import os
import signal
import sys
import threading
import time


def _token() -> str:
    path = os.environ.get("BYOC_TOKEN_FILE", "")
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    return os.environ.get("BYOC_TOKEN", "")


def main() -> None:
    port = int(os.environ.get("PORT", "9000"))
    token = _token()
    state = {"mode": os.environ.get("BYOC_MODE", "ok")}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: object) -> None:
            sys.stderr.write(f'byoc: "{self.requestline}" {args[1] if len(args) > 1 else ""}\n')

        def _json(self, code: int, doc: object) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self) -> None:
            if self.path == "/health":
                if state["mode"] == "stall":
                    time.sleep(3600)
                    return
                if state["mode"] == "unhealthy":
                    self._json(503, {"status": "ERROR"})
                    return
                self._json(200, {"status": "OK"})
            elif self.path == "/_sandbox/mode":
                self._json(200, state)
            else:
                self._json(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            body = self._body()
            if self.path == "/_sandbox/mode":
                try:
                    mode = json.loads(body)["mode"]
                except (ValueError, KeyError, TypeError):
                    self._json(400, {"detail": "want {\"mode\": ok|unhealthy|stall}"})
                    return
                if mode not in ("ok", "unhealthy", "stall"):
                    self._json(400, {"detail": f"unknown mode {mode!r}"})
                    return
                state["mode"] = mode
                self._json(200, state)
                return
            sent = self.headers.get("Authorization", "")
            if not token or not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                self._json(401, {"detail": {"msg": "Invalid bearer token"}})
                return
            self._json(200, {"images": [{"url": "data:image/png;base64,", "seed": 1, "nsfw": False}]})

    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    sys.stderr.write(f"byoc: listening on :{port} (token {'set' if token else 'NOT set'})\n")
    server.serve_forever()


if __name__ == "__main__":
    main()
