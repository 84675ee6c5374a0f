"""Runs ON a node (python3 >= 3.8, stdlib only): everything verification needs, in one round-trip.

Shipped by `lpfleet.facts.verify.NodeVerification` together with `lpfleet/probe.py` (which defines
`probe_all` before this code runs); reads its parameters from argv[1] (base64 JSON) and prints one line,
`@@lpfleet-verify <json>`. It only reads: the Docker Engine API over the unix socket (no docker CLI start-up
per call), `nvidia-smi`, the deployed aiModels.json (tokens are dropped here and never leave the node),
the models dir, and GET /health of the runners (on the node's 127.0.0.1, where go-livepeer publishes them)
and of the external URLs (as the worker on this node reaches them). Probes, container inspections and log
reads run concurrently.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

# stripped when shipped: probe.py's source precedes this code
from lpfleet.probe import http_exchange, probe_all, probe_plain

MARKER = "@@lpfleet-verify "


def docker_get(sock_path, path, timeout):
    """(status, body bytes) of a GET on the Engine API: HTTP/1.0 over the unix socket (probe.http_exchange; no
    http.client, whose import is a third of this program's CPU)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(sock_path)
        request = "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n" % path
        status, _headers, body = http_exchange(sock, request.encode("ascii"))
        return status, body
    finally:
        sock.close()


def docker_json(sock_path, path, timeout):
    status, body = docker_get(sock_path, path, timeout)
    if status == 404:
        return None
    if status != 200:
        raise RuntimeError(
            "docker API %s: HTTP %s %s" % (path, status, body[:200].decode("utf-8", "replace"))
        )
    return json.loads(body.decode("utf-8"))


def demux_logs(raw):
    """Docker's log stream: 8-byte frame headers unless the container has a TTY."""
    out = []
    i = 0
    framed = len(raw) >= 8 and raw[0:1] in (b"\x00", b"\x01", b"\x02") and raw[1:4] == b"\x00\x00\x00"
    if not framed:
        return raw.decode("utf-8", "replace")
    while i + 8 <= len(raw):
        size = int.from_bytes(raw[i + 4 : i + 8], "big")
        out.append(raw[i + 8 : i + 8 + size])
        i += 8 + size
    return b"".join(out).decode("utf-8", "replace")


def parse_docker_time(value):
    """RFC 3339 with nanoseconds -> epoch seconds; None for Docker's zero time or garbage."""
    if not value or value.startswith("0001-"):
        return None
    try:
        main = value[:19]
        rest = value[19:]
        frac = 0.0
        if rest.startswith("."):
            digits = ""
            for ch in rest[1:]:
                if not ch.isdigit():
                    break
                digits += ch
            frac = float("0." + digits) if digits else 0.0
            rest = rest[1 + len(digits) :]
        offset = 0
        if rest and rest != "Z":
            sign = 1 if rest[0] == "+" else -1
            hours, minutes = rest[1:].split(":")
            offset = sign * (int(hours) * 3600 + int(minutes) * 60)
        epoch = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) - offset
        return epoch + frac
    except (ValueError, IndexError):
        return None


def container_summary(info, now):
    """The fields verification reads from a container inspect (of its env only PIPELINE and MODEL_ID: the
    environment may hold secrets)."""
    state = info.get("State") or {}
    config = info.get("Config") or {}
    host_config = info.get("HostConfig") or {}
    labels = config.get("Labels") or {}
    env = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        if key in ("PIPELINE", "MODEL_ID"):
            env[key] = value
    port = None
    host_ip = None
    bindings = (host_config.get("PortBindings") or {}).get("8000/tcp") or []
    for binding in bindings:
        if binding.get("HostPort"):
            port = int(binding["HostPort"])
            host_ip = binding.get("HostIp") or "0.0.0.0"
            break
    started = parse_docker_time(state.get("StartedAt"))
    finished = parse_docker_time(state.get("FinishedAt"))
    health = state.get("Health") or {}
    policy = host_config.get("RestartPolicy") or {}
    return {
        "id": (info.get("Id") or "")[:12],
        "name": (info.get("Name") or "").lstrip("/"),
        "image": config.get("Image") or "",
        "status": state.get("Status") or "",
        "running": bool(state.get("Running")),
        "restarting": bool(state.get("Restarting")),
        "exit_code": state.get("ExitCode"),
        "oom_killed": bool(state.get("OOMKilled")),
        "error": state.get("Error") or "",
        "up_s": round(now - started, 1) if started and state.get("Running") else None,
        "exited_ago_s": round(now - finished, 1) if finished and not state.get("Running") else None,
        "restart_count": info.get("RestartCount") or 0,
        "restart_policy": "%s:%s" % (policy.get("Name") or "no", policy.get("MaximumRetryCount") or 0),
        "docker_health": health.get("Status") or "",
        "creator": labels.get("creator", ""),
        "creator_id": labels.get("creator_id", ""),
        "port": port,
        "host_ip": host_ip,
        "pipeline": env.get("PIPELINE", ""),
        "model_id": env.get("MODEL_ID", ""),
    }


def gather_gpus():
    try:
        proc = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=index,uuid,name,memory.total,memory.used",
                "--format=csv,noheader,nounits",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=20,
        )
    except FileNotFoundError:
        return {"present": False, "rc": None, "lines": [], "error": "nvidia-smi not found"}
    except subprocess.TimeoutExpired:
        return {"present": True, "rc": None, "lines": [], "error": "nvidia-smi did not answer within 20 s"}
    err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    return {
        "present": True,
        "rc": proc.returncode,
        "lines": proc.stdout.decode("utf-8", "replace").splitlines(),
        "error": err[-1] if err and proc.returncode else "",
    }


def gather_config(path):
    """The deployed aiModels.json without its secrets: what go-livepeer on this node will read."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return {"exists": False}
    except OSError as exc:
        return {"exists": True, "error": str(exc)}
    result = {
        "exists": True,
        "sha256": hashlib.sha256(raw).hexdigest(),
        "mode": oct(os.stat(path).st_mode & 0o777),
    }
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        result["error"] = "not valid JSON: %s" % exc
        return result
    if not isinstance(data, list):
        result["error"] = "not a JSON array"
        return result
    entries = []
    for item in data:
        if not isinstance(item, dict):
            entries.append({"invalid": True})
            continue
        lowered = {
            str(key).lower(): value for key, value in item.items()
        }  # go-livepeer matches keys case-insensitively
        capacity = lowered.get("capacity")
        entries.append(
            {
                "pipeline": lowered.get("pipeline"),
                "model_id": lowered.get("model_id"),
                "warm": lowered.get("warm") is True,
                "capacity": capacity if isinstance(capacity, int) else None,
                "external": bool(lowered.get("url")),
            }
        )
    result["entries"] = entries
    return result


def _names(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def repo_commits(models_dir, repo):
    """Every ref (name -> commit), every snapshot folder name, and the commits lpfleet verified (records)."""
    refs = {}
    refs_dir = os.path.join(repo, "refs")
    for root, _dirs, names in os.walk(refs_dir):
        for name in names:
            try:
                with open(os.path.join(root, name)) as handle:
                    refs[os.path.relpath(os.path.join(root, name), refs_dir)] = handle.read(200).strip()
            except OSError:
                continue
    records = os.path.join(models_dir, ".lpfleet", "verified", os.path.basename(repo))
    return {
        "refs": refs,
        "snapshots": _names(os.path.join(repo, "snapshots")),
        "records": [n[:-5] for n in _names(records) if n.endswith(".json")],
    }


def gather_weights(models_dir, wanted):
    """Per model: refs/<branch> -> snapshots/<commit>/ and, when the lock lists them, each file at its size."""
    results = []
    for model in wanted:
        repo = os.path.join(models_dir, "models--" + model["id"].replace("/", "--"))
        entry = {
            "id": model["id"],
            "repo_dir": os.path.isdir(repo),
            "commit": None,
            "snapshot": False,
            "files": 0,
            "bytes": 0,
            "missing": [],
            "wrong_size": [],
            "modified": [],
            "expected_commit": model.get("commit"),
        }
        if entry["repo_dir"]:  # what else the repo holds: a runner online moves refs and adds snapshots
            entry.update(repo_commits(models_dir, repo))
        try:
            with open(os.path.join(repo, "refs", model.get("branch") or "main")) as handle:
                entry["commit"] = handle.read().strip()
        except OSError:
            results.append(entry)
            continue
        snapshot = os.path.join(repo, "snapshots", entry["commit"])
        entry["snapshot"] = bool(entry["commit"]) and os.path.isdir(snapshot)
        if not entry["snapshot"]:
            results.append(entry)
            continue
        files = model.get("files")
        if files is None:  # no lock: whatever the snapshot holds
            files = []
            for root, _dirs, names in os.walk(snapshot):
                for name in names:
                    files.append([os.path.relpath(os.path.join(root, name), snapshot), None])
        for rel, size in files:
            path = os.path.join(snapshot, rel)
            try:
                actual = os.stat(path).st_size  # follows the snapshot symlink into blobs/
            except OSError:
                entry["missing"].append(rel)
                continue
            if size is not None and actual != size:
                entry["wrong_size"].append([rel, size, actual])
                continue
            entry["files"] += 1
            entry["bytes"] += actual
        entry["modified"] = modified_blobs(models_dir, repo, entry["commit"])
        results.append(entry)
    return results


def gather_live(models_dir, sock, apps, timeout):
    """Per live app: the image's id in the node's Docker ("" when absent), lpfleet's record of its prepare
    run and each prepared folder's state (ok, empty, missing)."""
    results = []
    for app in apps:
        entry = {"app": app["app"], "image_id": "", "record": None, "dirs": {}}
        try:
            image = docker_json(sock, "/images/%s/json" % urllib.parse.quote(app["image"], safe=""), timeout)
            entry["image_id"] = (image or {}).get("Id") or ""
        except Exception:  # noqa: BLE001 - no Docker: the image reads as absent
            pass
        try:
            with open(os.path.join(models_dir, app["record"])) as handle:
                record = json.load(handle)
            entry["record"] = record if isinstance(record, dict) else None
        except (OSError, ValueError):
            pass
        for folder in app["dirs"]:
            path = os.path.join(models_dir, folder)
            try:
                entry["dirs"][folder] = "ok" if os.listdir(path) else "empty"
            except OSError:  # absent or unreadable: not prepared as far as a runner can tell
                entry["dirs"][folder] = "missing"
        results.append(entry)
    return results


def modified_blobs(models_dir, repo, commit):
    """Files whose blob is no longer the one lpfleet hashed (its stamp: size, mtime, ctime, inode, differs
    from the verification record), found without reading a byte of it: a blob rewritten in place with other
    bytes of the same size."""
    record = os.path.join(models_dir, ".lpfleet", "verified", os.path.basename(repo), commit + ".json")
    try:
        with open(record) as handle:
            files = json.load(handle).get("files") or {}
    except (OSError, ValueError, AttributeError):
        return []
    changed = []
    for rel, seen in sorted(files.items()):
        etag = seen.get("etag") if isinstance(seen, dict) else None
        if not isinstance(etag, str) or "/" in etag or etag in ("", ".", ".."):
            continue
        try:
            st = os.lstat(os.path.join(repo, "blobs", etag))
        except OSError:
            continue  # a missing blob is reported as missing
        if [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino] != list(seen.get("stamp") or []):
            changed.append(rel)
    return changed


def gather(params):
    now = time.time()
    timeout = float(params.get("timeout", 5.0))
    sock = params.get("docker_socket") or "/var/run/docker.sock"
    pool = ThreadPoolExecutor(max_workers=16)
    probes_urls = ["http://127.0.0.1:%d/health" % port for port in params.get("runner_ports", [])]
    probes_urls += list(params.get("urls", []))
    probes = pool.submit(probe_all, probes_urls, timeout, get=probe_plain)
    gpus = pool.submit(gather_gpus)
    config = pool.submit(gather_config, params.get("ai_models_path") or "")
    weights = pool.submit(gather_weights, params.get("models_dir") or "", params.get("weights", []))
    live = pool.submit(gather_live, params.get("models_dir") or "", sock, params.get("live", []), timeout)

    docker = {"ok": False, "error": "", "runtimes": [], "default_runtime": ""}
    containers = []
    worker = None
    try:
        info = docker_json(sock, "/info", timeout)
        docker.update(
            ok=True,
            runtimes=sorted((info.get("Runtimes") or {}).keys()),
            default_runtime=info.get("DefaultRuntime") or "",
            version=info.get("ServerVersion") or "",
        )
        label_filter = urllib.parse.quote(
            json.dumps({"label": [params.get("runner_label") or "creator=ai-worker"]})
        )
        listed = docker_json(sock, "/containers/json?all=1&filters=" + label_filter, timeout) or []
        names = [params.get("worker")] if params.get("worker") else []
        names += [item["Id"] for item in listed]
        inspected = list(
            pool.map(
                lambda ref: docker_json(sock, "/containers/%s/json" % urllib.parse.quote(ref), timeout), names
            )
        )
        if params.get("worker"):
            worker = container_summary(inspected[0], now) if inspected[0] else None
            inspected = inspected[1:]
        containers = [container_summary(info, now) for info in inspected if info]
    except (OSError, RuntimeError, ValueError) as exc:  # UnusualAnswer is a ValueError
        docker["error"] = "%s: %s" % (sock, exc) if str(exc) else "%s: %s" % (sock, type(exc).__name__)

    probe_results = []
    healthy_ports = set()
    for result in probes.result():
        parsed = urllib.parse.urlparse(result.url)
        if result.status == 200 and result.health in ("OK", "IDLE") and parsed.hostname == "127.0.0.1":
            healthy_ports.add(parsed.port)
        as_dict = result.to_dict()
        as_dict["body"] = as_dict["body"][:2000]
        probe_results.append(as_dict)

    troubled = []
    expected = set(params.get("runner_names", []))
    found = {c["name"] for c in containers}
    for c in containers:
        if (
            not c["running"]
            or c["restarting"]
            or c["restart_count"]
            or (c["port"] and c["port"] not in healthy_ports)
        ):
            troubled.append(c["name"])
    worker_trouble = (
        worker is None or not worker["running"] or worker["restarting"] or worker["restart_count"]
    )
    if worker is not None and (worker_trouble or troubled or expected - found):
        troubled.append(worker["name"])

    lines = int(params.get("log_lines", 200))

    def read_logs(name):
        status, body = docker_get(
            sock, "/containers/%s/logs?stdout=1&stderr=1&tail=%d" % (urllib.parse.quote(name), lines), timeout
        )
        if status != 200:
            return []
        return demux_logs(body).splitlines()[-lines:]

    logs = {}
    if docker["ok"] and troubled:
        for name, text in zip(troubled, pool.map(lambda name: _safe(read_logs, name), troubled)):
            logs[name] = text
    pool.shutdown(wait=True)
    return {
        "version": 1,
        "now": now,
        "elapsed_s": round(time.time() - now, 3),
        "python": "%d.%d" % sys.version_info[:2],
        "gpus": gpus.result(),
        "docker": docker,
        "worker": worker,
        "containers": containers,
        "probes": probe_results,
        "logs": logs,
        "config": config.result(),
        "weights": weights.result(),
        "live": live.result(),
    }


def _safe(func, *args):
    try:
        return func(*args)
    except Exception as exc:  # noqa: BLE001 - a log that cannot be read is reported, not fatal
        return ["(logs could not be read: %s)" % exc]


def main(argv):
    params = json.loads(base64.b64decode(argv[1]).decode("utf-8")) if len(argv) > 1 else {}
    result = gather(params)
    sys.stdout.write(MARKER + json.dumps(result, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    threading.stack_size(512 * 1024)
    sys.exit(main(sys.argv))
