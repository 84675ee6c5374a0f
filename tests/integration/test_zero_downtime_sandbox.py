"""Zero-downtime rollout on the sandbox: the consumer nodes share a warm model; its entry changes and
`lpfleet rollout` converges them while a prober hits every runner's /health on every node every 0.5 s. There
must never be an instant without a healthy runner for a model that stays in the config.

Batches may hold the whole fleet (rollout_batch_size 10, rollout_batch_percent 100), so without the coverage
rule the rollout would take both consumer nodes (every runner of the shared model) down in one batch. The probe record is printed (run with -s to see it) and kept as JSON
beside the test's temporary files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lpfleet.runners import container_name

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SHARED = ("text-to-image", "ByteDance/SDXL-Lightning")
PROBE_EVERY_S = 0.5
STOP_FILE = "/tmp/lpfleet-probe.stop"
ARTIFACTS = ROOT / "reports" / "zero-downtime"  # the rollout's fleet page and its screenshot

# Runs inside a node (python3 and the node's own dockerd there): every 0.5 s, list go-livepeer's runner
# containers (label creator=ai-worker, as go-livepeer's docker.go labels them) and GET each one's /health on
# its published 127.0.0.1 port; one JSON line per round on stdout. Stops when STOP_FILE exists (or after 20
# minutes).
PROBER = r"""
import http.client, json, os, socket, sys, time

STOP, EVERY = sys.argv[1], float(sys.argv[2])

class Unix(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(2)
        self.sock.connect("/var/run/docker.sock")

def runners():
    conn = Unix("localhost")
    query = json.dumps({"label": ["creator=ai-worker"]})
    conn.request("GET", "/containers/json?all=1&filters=" + __import__("urllib.parse").parse.quote(query))
    items = json.loads(conn.getresponse().read())
    out = []
    for item in items:
        name = item["Names"][0].lstrip("/")
        port = next((p.get("PublicPort") for p in item.get("Ports") or [] if p.get("PublicPort")), None)
        out.append((name, item.get("State"), port))
    return out

def health(port):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=0.4)
        conn.request("GET", "/health")
        response = conn.getresponse()
        body = response.read()
        try:
            status = json.loads(body).get("status")
        except ValueError:
            status = None
        return response.status, status
    except OSError as exc:
        return None, exc.__class__.__name__

deadline = time.time() + 1200
os.path.exists(STOP) and os.remove(STOP)
while not os.path.exists(STOP) and time.time() < deadline:
    started = time.time()
    try:
        found = runners()
        record = {"t": started, "runners": {}}
        for name, state, port in found:
            code, status = health(port) if port and state == "running" else (None, state)
            record["runners"][name] = {"state": state, "port": port, "http": code, "health": status,
                                       "healthy": code == 200 and status in ("OK", "IDLE")}
    except OSError as exc:
        record = {"t": started, "error": f"docker API: {exc.__class__.__name__}: {exc}", "runners": {}}
    print(json.dumps(record), flush=True)
    time.sleep(max(0.0, EVERY - (time.time() - started)))
"""


def run(args, env, timeout=900):
    return subprocess.run(
        [str(a) for a in args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


class Prober:
    """One prober process per node (`docker exec`), its JSON lines collected by a thread."""

    def __init__(self, sandbox):
        self.sandbox = sandbox
        self.records: list[dict] = []  # {"node", "t", "runners"}
        self.procs = []
        self.threads = []

    def start(self) -> None:
        for node in self.sandbox.nodes:
            proc = subprocess.Popen(
                ["docker", "exec", node.container, "python3", "-c", PROBER, STOP_FILE, str(PROBE_EVERY_S)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            thread = threading.Thread(target=self._read, args=(node.name, proc), daemon=True)
            thread.start()
            self.procs.append(proc)
            self.threads.append(thread)

    def _read(self, node: str, proc) -> None:
        for line in proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            record["node"] = node
            self.records.append(record)

    def stop(self) -> None:
        for node in self.sandbox.nodes:
            self.sandbox.exec(node, f"touch {STOP_FILE}")
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for thread in self.threads:
            thread.join(timeout=10)


def copy_inventory(tmp: Path, consumer_edit: str) -> Path:
    target = tmp / "inventories"
    shutil.copytree(ROOT / "inventories", target, ignore=shutil.ignore_patterns("_*", "__pycache__"))
    group = target / "group_data" / "sandbox_consumer.py"
    group.write_text(
        group.read_text() + "\n# --- edited by test_zero_downtime_sandbox\n" + consumer_edit + "\n"
    )
    # batches as large as the fleet (over group_data/all.py's percentage): only the coverage rule splits them
    with (target / "group_data" / "sandbox.py").open("a") as handle:
        handle.write("\nrollout_batch_size = 10\nrollout_batch_percent = 100\n")
    return target / "sandbox.py"


@pytest.fixture(scope="module")
def fleet(sandbox):
    result = run([VENV_BIN / "pyinfra", "-y", sandbox.inventory, "deploy.py"], sandbox.env)
    assert result.returncode == 0, result.stdout[-6000:]
    code = run([VENV_BIN / "lpfleet", "verify", sandbox.inventory, "--wait", "240"], sandbox.env)
    assert code.returncode == 0, code.stdout
    yield sandbox
    result = run([VENV_BIN / "pyinfra", "-y", sandbox.inventory, "deploy.py"], sandbox.env)
    assert result.returncode == 0, result.stdout[-4000:]
    code = run([VENV_BIN / "lpfleet", "verify", sandbox.inventory, "--wait", "240"], sandbox.env)
    assert code.returncode == 0, code.stdout


def coverage_gaps(records: list[dict], nodes: list[str], prefixes: dict[str, str], start: float, end: float):
    """Instants in [start, end] at which a model had no healthy runner, judging each node by its latest probe.

    Returns (gaps, timeline): gaps as (t, model) and the state transitions per node and model, for printing.
    """
    latest: dict[tuple[str, str], bool] = {}
    seen_nodes: set[str] = set()
    gaps = []
    timeline = []
    for record in sorted(records, key=lambda r: r["t"]):
        node = record["node"]
        seen_nodes.add(node)
        for model, prefix in prefixes.items():
            healthy = any(
                name.startswith(prefix + "_") and r["healthy"] for name, r in record["runners"].items()
            )
            if latest.get((node, model)) != healthy:
                states = [
                    f"{r['state']}/{r['http']}/{r['health']}"
                    for name, r in record["runners"].items()
                    if name.startswith(prefix + "_")
                ] or ["no runner"]
                timeline.append((record["t"], node, model, healthy, ", ".join(states)))
            latest[(node, model)] = healthy
        if start <= record["t"] <= end and seen_nodes == set(nodes):
            for model in prefixes:
                if not any(latest.get((n, model)) for n in nodes):
                    gaps.append((record["t"], model))
    return gaps, timeline


def test_a_shared_warm_model_keeps_a_healthy_runner_through_the_rollout(fleet, tmp_path):
    consumers = [n for n in fleet.nodes if n.gpu_class == "consumer"]
    assert len(consumers) >= 2
    specs = fleet.specs()
    # every model that stays warm in the config, on every node; the shared one on every consumer node
    prefixes = {}
    for spec in specs.values():
        for entry in spec.models:
            if entry.warm and not entry.url:
                prefixes[f"{entry.pipeline} {entry.model_id}"] = container_name(
                    entry.pipeline, entry.model_id, 0
                ).rsplit("_", 1)[0]
    shared = f"{SHARED[0]} {SHARED[1]}"
    assert shared in prefixes
    assert all(
        any(e.warm and (e.pipeline, e.model_id) == SHARED for e in specs[n.name].models) for n in consumers
    )

    # the shared model's entry changes (a price): the consumer nodes' aiModels.json, so their workers restart
    inventory = copy_inventory(
        tmp_path,
        "ai_models = [dict(e, price_per_unit=4768372) if (e['pipeline'], e['model_id']) == "
        f"{SHARED!r} else e for e in ai_models]",
    )
    locked = run([VENV_BIN / "lpfleet", "lock", inventory], fleet.env)
    assert locked.returncode == 0, locked.stdout + locked.stderr
    dry = run([VENV_BIN / "lpfleet", "rollout", inventory, "--dry"], fleet.env)
    assert dry.returncode == 0, dry.stderr
    names = ", ".join(n.name for n in consumers)
    assert (
        f"zero downtime: {shared} is warm on {names}: at most {len(consumers) - 1} of them in a batch"
        in dry.stderr
    )
    assert (
        f"rollout plan: {len(consumers)} hosts to converge in {len(consumers)} batches of up to 1"
        in dry.stderr
    )

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prober = Prober(fleet)
    prober.start()
    try:
        time.sleep(3)  # every node probed before the rollout starts
        started = time.time()
        report = tmp_path / "rollout.json"
        page = ARTIFACTS / "rollout.html"
        result = run(
            [VENV_BIN / "lpfleet", "rollout", inventory, "--json", report, "--wait", "240", "--html", page],
            fleet.env,
        )
        ended = time.time()
        time.sleep(1)
    finally:
        prober.stop()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    plan = json.loads(report.read_text())["rollout"]
    assert [b["hosts"] for b in plan["batches"]] == [[n.name] for n in consumers]
    assert plan["coverage"]["shared"][0]["model"] == shared
    html = page.read_text()
    for node in consumers:  # the hosts it rolled out and verified; the others are listed as left alone
        assert f'<tr data-host="{node.name}"' in html
    assert html.count('data-batch="') == len(consumers) and 'data-state="fail"' not in html
    browser = shutil.which("chromium")
    if browser:  # the screenshot kept beside the page (docs/img/fleet-page.png is one of these)
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={ARTIFACTS / 'profile'}",
                f"--screenshot={ARTIFACTS / 'rollout.png'}",
                "--window-size=1280,1100",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
        )

    nodes = [n.name for n in fleet.nodes]
    gaps, timeline = coverage_gaps(prober.records, nodes, prefixes, started, ended)
    record_file = tmp_path / "probes.json"
    record_file.write_text(json.dumps(prober.records))
    rounds = {
        n: sum(1 for r in prober.records if r["node"] == n and started <= r["t"] <= ended) for n in nodes
    }
    print(
        f"\nprobe record: {len(prober.records)} rounds ({rounds} during the rollout of "
        f"{ended - started:.1f} s), "
        f"every {PROBE_EVERY_S} s per node; full record: {record_file}"
    )
    served = {(node, model) for _, node, model, healthy, _ in timeline if healthy}
    for t, node, model, healthy, states in timeline:
        if (node, model) not in served:
            continue  # this node never serves that model
        print(
            f"  {t - started:+8.1f} s  {node:<28} {model:<55} "
            f"{'healthy' if healthy else 'NOT healthy':<12} {states}"
        )
    print(f"  instants with no healthy runner for a model in the config: {len(gaps)}")

    expected_rounds = (ended - started) / PROBE_EVERY_S
    assert all(count >= 0.5 * expected_rounds for count in rounds.values()), rounds  # the prober kept up
    assert not any("error" in r for r in prober.records if started <= r["t"] <= ended)
    # the test can fail: every consumer node's runner of the shared model really went down during the rollout
    for node in consumers:
        assert any(
            t >= started and n == node.name and m == shared and not healthy
            for t, n, m, healthy, _ in timeline
        ), f"{node.name}'s runner never went down"
    assert gaps == [], gaps[:20]
