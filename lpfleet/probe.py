"""Concurrent HTTP health probes with a timeout per request.

Stdlib only and self-contained on purpose: the same source runs on the controller (external URLs, a
gateway's /getNetworkCapabilities) and is shipped, unchanged, inside the verify fact's script to run on a
node, where runner ports are published on the node's 127.0.0.1 only. Keep it importable by python3 >= 3.8
and free of imports from lpfleet.

One thread per endpoint (bounded): a probe is a blocking socket wait, so 100 endpoints with 0.5 s latency
take about 0.5 s plus thread start-up, not 50 s.

`probe` goes through urllib; `probe_plain` (what the node script uses) does a plain http:// GET over a socket
(`http_exchange`, HTTP/1.0) and hands anything else - https, a redirect, an answer it does not parse - to
`probe`. Why: `http.client` and `urllib.request` are ~50 ms of CPU to import, most of a short-lived program's
start on a node; urllib is imported only where a probe needs it.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple

#: Bytes of a response body kept: a /health answer is tiny, a gateway's capability list is not.
MAX_BODY = 4 * 1024 * 1024
MAX_WORKERS = 128


@dataclass(frozen=True)
class ProbeResult:
    """What one GET returned: the HTTP status and body, or why there was none."""

    url: str
    status: Optional[int] = None  # HTTP status; None when no HTTP answer came
    body: str = ""
    error: str = ""  # "timeout", "connection refused", ... when status is None
    elapsed_s: float = 0.0

    @property
    def health(self) -> Optional[str]:
        """The ai-runner's `{"status": ...}` value (OK, LOADING, ERROR, IDLE), if the body holds one."""
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        status = data.get("status") if isinstance(data, dict) else None
        return status if isinstance(status, str) else None

    def to_dict(self) -> dict:
        return asdict(self)


def _describe(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason):
        return "timeout"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, ConnectionResetError):
        return "connection reset"
    if type(reason).__name__ == "RemoteDisconnected":  # http.client's, not imported here (see the module doc)
        return "connection closed"
    if isinstance(reason, socket.gaierror):
        return "name not resolved"
    text = str(reason).strip() or type(reason).__name__
    return text[:200]


def probe(url: str, timeout_s: float = 5.0, headers: Optional[Dict[str, str]] = None) -> ProbeResult:
    """GET `url` once; every failure is a result, never an exception.

    + url: http(s) URL to fetch
    + timeout_s: limit for connecting and for each read
    + headers: extra request headers
    """
    import urllib.error
    import urllib.request

    started = time.monotonic()
    request = urllib.request.Request(url, headers=dict(headers or {}), method="GET")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # probes never go through a proxy
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read(MAX_BODY)
            status = response.status
    except urllib.error.HTTPError as exc:  # an HTTP answer, only not 2xx
        try:
            body = exc.read(MAX_BODY)
        except Exception:  # noqa: BLE001 - the status is what matters
            body = b""
        status = exc.code
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result
        return ProbeResult(url, None, "", _describe(exc), round(time.monotonic() - started, 3))
    return ProbeResult(url, status, body.decode("utf-8", "replace"), "", round(time.monotonic() - started, 3))


def probe_all(
    urls: Iterable[str],
    timeout_s: float = 5.0,
    headers: Optional[Dict[str, str]] = None,
    max_workers: int = MAX_WORKERS,
    get: Optional[Callable[..., ProbeResult]] = None,
) -> List[ProbeResult]:
    """Probe every URL concurrently; results in the order given (duplicates probed once).

    + urls: the URLs to GET
    + timeout_s: per-request limit, so the whole call ends after about timeout_s even if every endpoint hangs
    + headers: extra request headers sent to every URL
    + max_workers: most requests in flight at once
    + get: the probe function (`probe` when not given; `probe_plain` gives the same results without urllib)
    """
    ordered = list(dict.fromkeys(urls))
    if not ordered:
        return []
    one = get or probe
    workers = max(1, min(max_workers, len(ordered)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = dict(zip(ordered, pool.map(lambda url: one(url, timeout_s, headers), ordered)))
    return [found[url] for url in ordered]


class UnusualAnswer(ValueError):
    """An HTTP answer `http_exchange` does not handle (no status line, a 1xx, chunked, a short body)."""


def http_exchange(
    sock: socket.socket, request: bytes, max_body: Optional[int] = None
) -> Tuple[int, Dict[str, str], bytes]:
    """Send an HTTP/1.0 request on a connected socket and read the answer to its end: (status, headers with
    lower-case names, body - at most max_body bytes). HTTP/1.0 because then the server neither chunks nor keeps
    the connection: the body is Content-Length bytes, or everything until the server closes.

    Raises ConnectionResetError when the server closes without answering (what http.client reports),
    UnusualAnswer for an answer this reader does not handle, OSError (socket.timeout included) from the socket.
    """
    sock.sendall(request)
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            if not buffer:
                raise ConnectionResetError("Remote end closed connection without response")
            raise UnusualAnswer("the answer ended inside its headers")
        buffer += chunk
        if len(buffer) > 1024 * 1024:
            raise UnusualAnswer("headers over 1 MiB")
    head, _, body = buffer.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    words = lines[0].split(None, 2)
    if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit() or len(words[1]) != 3:
        raise UnusualAnswer("not an HTTP status line: %r" % lines[0][:100])
    status = int(words[1])
    if status < 200:
        raise UnusualAnswer("an informational answer (%d)" % status)
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise UnusualAnswer("a chunked answer to an HTTP/1.0 request")
    length_text = headers.get("content-length", "")
    length = int(length_text) if length_text.isdigit() else None
    limit = length if length is not None else None
    if max_body is not None:
        limit = max_body if limit is None else min(limit, max_body)
    parts = [body]
    size = len(body)
    while limit is None or size < limit:
        chunk = sock.recv(65536)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    data = b"".join(parts)
    if length is not None and limit is not None and len(data) < limit:  # closed before its Content-Length
        raise UnusualAnswer("the answer ended %d bytes short of its length" % (limit - len(data)))
    return status, headers, data[:limit] if limit is not None else data


def probe_plain(url: str, timeout_s: float = 5.0, headers: Optional[Dict[str, str]] = None) -> ProbeResult:
    """The result `probe(url)` gives, for a plain http:// URL read without urllib (HTTP/1.0 over a socket, the
    same per-operation timeout, no proxy); https, a URL with credentials, a redirect (urllib follows it) or an
    answer `http_exchange` does not handle go through `probe` itself."""
    from urllib.parse import urlsplit

    started = time.monotonic()
    try:
        parts = urlsplit(url)
        port = parts.port or 80
        host = parts.hostname
    except ValueError:
        return probe(url, timeout_s, headers)
    if parts.scheme.lower() != "http" or not host or "@" in parts.netloc:
        return probe(url, timeout_s, headers)
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    fields = {"Host": parts.netloc, "User-Agent": "Python-urllib/%d.%d" % sys.version_info[:2]}
    fields.update({name.capitalize(): value for name, value in (headers or {}).items()})
    request = "GET %s HTTP/1.0\r\n%s\r\n" % (target, "".join("%s: %s\r\n" % kv for kv in fields.items()))
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            status, _headers, body = http_exchange(sock, request.encode("iso-8859-1"), MAX_BODY)
    except UnusualAnswer:
        return probe(url, timeout_s, headers)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result, as in probe()
        return ProbeResult(url, None, "", _describe(exc), round(time.monotonic() - started, 3))
    if 300 <= status < 400:
        return probe(url, timeout_s, headers)  # urllib follows redirects: let it
    return ProbeResult(url, status, body.decode("utf-8", "replace"), "", round(time.monotonic() - started, 3))
