"""The fleet page (lpfleet.fleet_page): self-contained, everything escaped, and rendered by a real headless
Chromium whose DOM lists every host and every failing check. The screenshot is kept under reports/fleet-page/.

Chromium: Debian's `chromium` (scripts/host-deps installs it; `make test` runs host-deps). Without it the
browser tests fail saying so - never a silent skip."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lpfleet.checks import Cause, Check, HostResult
from lpfleet.fleet_page import render_fleet_page
from lpfleet.rollout import Rollout, RolloutSettings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "reports" / "fleet-page"
HOSTILE = '</pre><script>alert("x")</script><img src=http://evil.example/x.png onerror=alert(1)>'
WHEN = datetime(2026, 11, 30, 10, 30, 0, tzinfo=timezone.utc)


def fleet() -> list[HostResult]:
    return [
        HostResult(
            "gpu-c01",
            ("consumer",),
            (
                Check("gpu-c01", "gpus", "ok", "1 GPU: NVIDIA GeForce RTX 4090 (24564 MiB)"),
                Check("gpu-c01", "runner text-to-image_ByteDance-SDXL-Lightning_8000", "ok", "OK"),
                Check("gpu-c01", "weights ByteDance/SDXL-Lightning", "ok", "complete"),
            ),
        ),
        HostResult(
            "gpu-c02",
            ("consumer",),
            (
                Check("gpu-c02", "gpus", "ok", "1 GPU"),
                Check(
                    "gpu-c02",
                    "runner text-to-image_ByteDance-SDXL-Lightning_8000",
                    "fail",
                    "restart loop: restarting, 3 restarts",
                    (
                        Cause(
                            "cuda-oom",
                            "torch.OutOfMemoryError: CUDA out of memory. " + HOSTILE,
                            "use a smaller model or fewer containers per GPU",
                        ),
                    ),
                ),
                Check("gpu-c02", "weights ByteDance/SDXL-Lightning", "warn", "1 file larger than locked <b>"),
            ),
        ),
        HostResult(
            "gpu-d01 <&>",
            ("datacenter",),
            (Check("gpu-d01 <&>", "gpus", "unknown", "unreachable: ssh timed out"),),
        ),
    ]


def rollout_dict() -> dict:
    settings = RolloutSettings()
    rollout = Rollout.plan(
        ["gpu-c01", "gpu-c02"],
        settings,
        {
            "gpu-c01": (("text-to-image", "ByteDance/SDXL-Lightning"),),
            "gpu-c02": (("text-to-image", "ByteDance/SDXL-Lightning"),),
        },
        unchanged=["gpu-d01 <&>"],
    )
    rollout.record(("gpu-c01",), {}, 0.0, 42.0)
    rollout.record(("gpu-c02",), {"gpu-c02": "runner ...: restart loop"}, 42.5, 61.0)
    return rollout.to_dict()


def page() -> str:
    return render_fleet_page(
        fleet(),
        inventory="inventories/sandbox.py",
        generated_at=WHEN,
        elapsed_s=3.25,
        rollout=rollout_dict(),
        title="lpfleet rollout",
    )


class Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_the_page_needs_nothing_outside_itself():
    html = page()
    parser = Collect()
    parser.feed(html)
    tags = {t for t, _ in parser.tags}
    assert "script" not in tags and "img" not in tags and "link" not in tags and "iframe" not in tags
    for _, attrs in parser.tags:
        for name, value in attrs.items():
            assert not name.startswith("on"), (name, value)
            assert not (name in ("src", "href") and value), (name, value)
    assert "http://" not in html.replace("http://evil.example", "") and "https://" not in html
    assert "default-src 'none'" in html  # and the browser is told to fetch nothing


def test_every_value_is_escaped():
    html = page()
    assert HOSTILE not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert 'data-host="gpu-d01 &lt;&amp;&gt;"' in html
    assert "1 file larger than locked &lt;b&gt;" in html


def test_header_grid_problems_and_timeline():
    html = page()
    assert '<time id="taken" datetime="2026-11-30T10:30:00Z">' in html and "took 3.2 s" in html
    assert 'id="verdict">problems: 3 hosts, 1 healthy, 1 with problems, 1 unchecked' in html
    cells = re.findall(r'<td class="cell" data-check="([^"]+)" data-state="([^"]+)"', html)
    assert ("runner text-to-image_ByteDance-SDXL-Lightning_8000", "fail") in cells
    assert len(cells) == 7
    problems = re.findall(
        r'<div class="problem" data-host="([^"]+)" data-check="([^"]+)" data-state="([^"]+)"', html
    )
    assert problems == [
        ("gpu-c02", "runner text-to-image_ByteDance-SDXL-Lightning_8000", "fail"),
        ("gpu-d01 &lt;&amp;&gt;", "gpus", "unknown"),
        ("gpu-c02", "weights ByteDance/SDXL-Lightning", "warn"),
    ]
    assert 'data-cause="cuda-oom"' in html and "fix: use a smaller model or fewer containers per GPU" in html
    bars = re.findall(r'data-batch="(\d+)" data-state="(\w+)" style="left:([\d.]+)%;width:([\d.]+)%', html)
    assert bars == [("1", "ok", "0.00", "40.58"), ("2", "fail", "41.06", "58.94")]  # of 103.5 s
    assert "zero downtime: text-to-image ByteDance/SDXL-Lightning warm on gpu-c01, gpu-c02" in html


def test_a_healthy_fleet_without_rollout():
    html = render_fleet_page(fleet()[:1], generated_at=WHEN)
    assert "<p>Every check is ok.</p>" in html and 'id="rollout"' not in html
    assert 'id="verdict">healthy: 1 hosts, 1 healthy' in html


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no headless browser: install Debian's chromium (scripts/host-deps does)", pytrace=False)


def browser(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--user-data-dir=" + str(ARTIFACTS / "profile"),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_chromium_renders_every_host_and_failing_check_and_keeps_a_screenshot():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / "fleet.html"
    target.write_text(page(), encoding="utf-8")
    dumped = browser("--dump-dom", target.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    parser = Collect()
    parser.feed(dom)
    rows = [a["data-host"] for t, a in parser.tags if t == "tr" and "data-host" in a]
    assert rows == ["gpu-c01", "gpu-c02", "gpu-d01 <&>"]  # every host, as the browser parsed it
    failing = {
        (a.get("data-check"), a.get("data-state"))
        for t, a in parser.tags
        if t == "td" and a.get("data-state") in ("fail", "unknown")
    }
    assert failing == {("runner text-to-image_ByteDance-SDXL-Lightning_8000", "fail"), ("gpus", "unknown")}
    assert not any(t in ("script", "img") for t, _ in parser.tags)  # the hostile evidence stayed text
    assert 'alert("x")' in dom  # ... shown as text in the page
    shot = ARTIFACTS / "fleet.png"
    shot.unlink(missing_ok=True)
    taken = browser(f"--screenshot={shot}", "--window-size=1280,1400", "--hide-scrollbars", target.as_uri())
    assert taken.returncode == 0 and shot.is_file() and shot.stat().st_size > 10_000, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
