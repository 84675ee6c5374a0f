"""Concurrent HTTP health probes with a timeout per request.

Stdlib only and self-contained on purpose: the same source runs on the controller (external URLs, a
gateway's /getNetworkCapabilities) and is shipped, unchanged, inside the verify fact's script to run on a
node, where runner ports are published on the node's 127.0.0.1 only. Keep it importable by python3 >= 3.8
and free of imports from lpfleet.

One thread per endpoint (bounded): a probe is a blocking socket wait, so 100 endpoints with 0.5 s latency
take about 0.5 s plus thread start-up, not 50 s.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Dict, Iterable, List, Optional

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
    if isinstance(reason, http.client.RemoteDisconnected):
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
) -> List[ProbeResult]:
    """Probe every URL concurrently; results in the order given (duplicates probed once).

    + urls: the URLs to GET
    + timeout_s: per-request limit, so the whole call ends after about timeout_s even if every endpoint hangs
    + headers: extra request headers sent to every URL
    + max_workers: most requests in flight at once
    """
    ordered = list(dict.fromkeys(urls))
    if not ordered:
        return []
    workers = max(1, min(max_workers, len(ordered)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        found = dict(zip(ordered, pool.map(lambda url: probe(url, timeout_s, headers), ordered)))
    return [found[url] for url in ordered]
