"""A node's verify snapshot + its spec -> the checks of the report.

Pure: no I/O, no pyinfra. The snapshot is the dict the node script (`lpfleet/facts/verify_node_script.py`)
prints, of the shape `lpfleet.verify_snapshot.NodeSnapshot` declares; unit tests feed such dicts directly. Log lines are classified by a `Classifier` (lpfleet.diagnose
by default), and every known secret value is masked before a line becomes evidence.

What is checked, per node: GPUs seen by nvidia-smi (every configured id present), the Engine API answering
and the `nvidia` runtime registered, the deployed aiModels.json (present, parseable, same entries as the group
data, mode 0600), warm containers within the GPU slots the node really has, the worker container, every
expected runner (present, running, not restart-looping, /health OK - LOADING reported with how long), every
other runner the worker started, every external URL's /health, the weights of every model, and optionally
what a gateway's /getNetworkCapabilities says about the orchestrator's models.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from lpfleet import runners as go_runners
from lpfleet.checks import Cause, Check, HostResult, unchecked
from lpfleet.live_prepare import AppState, LiveApp, live_apps, stale_reasons
from lpfleet.prune import repo_drift
from lpfleet.secrets import mask, secret_values
from lpfleet.spec import AIModelEntry, NodeSpec
from lpfleet.verify_snapshot import NodeSnapshot

#: go-livepeer's runner start timeouts: LOADING (or not yet bound) longer than this counts as a failure.
LOAD_LIMIT_S = 180.0
LOAD_LIMIT_OPTIMIZED_S = 300.0
#: A container that restarted and has been up for less than this is treated as restart-looping.
SETTLED_S = 60.0
NO_WEIGHTS_PIPELINES = ("live-video-to-video",)
#: Probe errors of a port nothing listens on yet (directly, or behind Docker's userland proxy, which accepts and
#: then drops the connection): a batch runner binds only once its model is loaded.
NOT_BOUND = (
    "connection refused",
    "connection reset",
    "connection closed",
)  # its model_id names a runner app, not a hub repo

Classifier = Callable[[Sequence[str]], list[Cause]]


@dataclass(frozen=True)
class ExpectedRunner:
    """A runner container go-livepeer starts for a warm model (names and ports from lpfleet.runners)."""

    name: str
    port: int
    pipeline: str
    model_id: str
    gpu: int | None = None


@dataclass(frozen=True)
class WeightsWanted:
    """A model whose files must be in the node's models dir; `files` (path, size) when models.lock lists them."""

    model_id: str
    branch: str = "main"
    commit: str | None = None
    files: tuple[tuple[str, int], ...] | None = None


def expected_runners(spec: NodeSpec) -> list[ExpectedRunner]:
    """The runner containers go-livepeer starts for this node's warm models (lpfleet.runners computes them)."""
    found = []
    for runner in go_runners.expected_runners(spec):
        get = (
            runner.get
            if isinstance(runner, dict)
            else lambda key, default=None, r=runner: getattr(r, key, default)
        )
        port = get("port", None)
        port = get("host_port", None) if port is None else port
        found.append(
            ExpectedRunner(
                str(get("name")), int(port), str(get("pipeline")), str(get("model_id")), get("gpu", None)
            )
        )
    return found


def external_health_url(url: str) -> str:
    return url.rstrip("/") + "/health"


def display_url(url: str) -> str:
    """A URL as reports may show it: user info and query dropped (either can carry credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def weights_wanted_from_spec(spec: NodeSpec) -> list[WeightsWanted]:
    """Without a lock: every hub model the config names, checked for a complete snapshot of refs/<branch>."""
    seen: dict[str, WeightsWanted] = {}
    for entry in spec.models:
        if entry.is_external or entry.pipeline in NO_WEIGHTS_PIPELINES:
            continue
        seen.setdefault(entry.model_id, WeightsWanted(entry.model_id, spec.weights.branch))
    return list(seen.values())


def spec_live_apps(spec: NodeSpec) -> list[LiveApp]:
    """The node's live apps that a prepare run fills the models dir for (the weights step's list)."""
    live = (spec.worker.runner_image_overrides or {}).get("live")
    return live_apps(spec.models, live if isinstance(live, dict) else None)


def node_params(
    spec: NodeSpec,
    runners: Sequence[ExpectedRunner],
    weights: Sequence[WeightsWanted],
    *,
    docker_socket: str = "/var/run/docker.sock",
) -> dict[str, Any]:
    """What the node script needs (no token: external URLs are probed at /health without one)."""
    return {
        "docker_socket": docker_socket,
        "worker": spec.worker.container_name,
        "runner_label": "creator=ai-worker",
        "runner_names": [runner.name for runner in runners],
        "runner_ports": sorted({runner.port for runner in runners}),
        "urls": [external_health_url(entry.url) for entry in spec.models if entry.url],
        "timeout": spec.verify.health_timeout_s,
        "log_lines": spec.verify.log_lines,
        "ai_models_path": spec.ai_models_path,
        "models_dir": spec.models_dir,
        "live": [
            {"app": a.model_id, "image": a.prepare.image, "record": a.record_path, "dirs": list(a.prepare.dirs)}
            for a in spec_live_apps(spec)
        ],
        "weights": [
            {
                "id": w.model_id,
                "branch": w.branch,
                "commit": w.commit,
                "files": [list(f) for f in w.files] if w.files is not None else None,
            }
            for w in weights
        ],
    }


def _no_classifier(lines: Sequence[str]) -> list[Cause]:
    return []


class _Verifier:
    def __init__(
        self,
        spec: NodeSpec,
        snap: NodeSnapshot,
        runners: Sequence[ExpectedRunner],
        classify: Classifier,
        secrets: Sequence[str],
    ) -> None:
        self.spec = spec
        self.snap = snap
        self.expected = list(runners)
        self.classify = classify
        self.secrets = list(secrets)
        self.checks: list[Check] = []
        self.probes = {p.get("url"): p for p in snap.get("probes") or []}
        self.logs: dict[str, list[str]] = snap.get("logs") or {}
        self.containers = {c["name"]: c for c in snap.get("containers") or []}
        self.docker_ok = bool((snap.get("docker") or {}).get("ok"))

    # -- helpers -------------------------------------------------------------------------------------------
    def add(self, check: str, state: str, detail: str, causes: Sequence[Cause] = (), **data: Any) -> None:
        self.checks.append(
            Check(
                self.spec.host,
                check,
                state,
                mask(detail, self.secrets),
                tuple(causes),
                {k: v for k, v in data.items() if v is not None},
            )
        )

    def causes_of(self, name: str) -> list[Cause]:
        lines = [mask(line, self.secrets) for line in self.logs.get(name) or []]
        if not lines:
            return []
        found: dict[str, Cause] = {}
        for cause in self.classify(lines):
            found[cause.cause] = Cause(cause.cause, mask(cause.line, self.secrets)[:400], cause.hint)
        return list(found.values())

    def no_docker(self, check: str) -> None:
        self.add(check, "unknown", "not checked: Docker Engine not answering")

    # -- checks --------------------------------------------------------------------------------------------
    def gpus(self) -> list[int] | None:
        """The GPU check; returns the configured GPU ids nvidia-smi really shows (None: unknown)."""
        info = self.snap.get("gpus") or {}
        if not info.get("present"):
            self.add(
                "gpus",
                "fail",
                "nvidia-smi not found: no NVIDIA driver on the node",
                [
                    Cause(
                        "no-gpu",
                        "nvidia-smi: command not found",
                        "install the NVIDIA driver (a runner without a GPU falls back to CPU or fails)",
                    )
                ],
            )
            return []
        if info.get("rc") != 0:
            self.add(
                "gpus",
                "fail",
                f"nvidia-smi failed (exit {info.get('rc')}): {info.get('error') or 'no output'}",
            )
            return []
        gpus = []
        for line in info.get("lines") or []:
            parts = [part.strip() for part in line.split(",")]
            if len(parts) == 5 and parts[0].isdigit():
                try:
                    gpus.append((int(parts[0]), parts[2], float(parts[3]), float(parts[4])))
                except ValueError:
                    continue
        if not gpus:
            self.add("gpus", "fail", "nvidia-smi lists no GPU")
            return []
        seen = {index for index, *_ in gpus}
        missing = [gpu for gpu in self.spec.gpus if gpu not in seen]
        described = ", ".join(
            f"{index}: {name} {total / 1024:.0f} GiB (used {used / 1024:.1f})"
            for index, name, total, used in gpus
        )
        data = {
            "gpus": [
                {"index": i, "name": n, "memory_total_mib": t, "memory_used_mib": u} for i, n, t, u in gpus
            ]
        }
        if missing:
            self.add(
                "gpus",
                "fail",
                f"-nvidia {_ids(self.spec.gpus)} but nvidia-smi lists only {_ids(sorted(seen))} "
                f"({described})",
                **data,
            )
        else:
            self.add("gpus", "ok", f"{len(gpus)} GPU{'s' if len(gpus) != 1 else ''}: {described}", **data)
        return [gpu for gpu in self.spec.gpus if gpu in seen]

    def docker(self) -> None:
        docker = self.snap.get("docker") or {}
        if not docker.get("ok"):
            self.add(
                "docker", "fail", f"Docker Engine API not answering: {docker.get('error') or 'unknown error'}"
            )
            self.add("nvidia runtime", "unknown", "not checked: Docker Engine not answering")
            return
        self.add("docker", "ok", f"Engine {docker.get('version') or '?'} answering")
        runtimes = docker.get("runtimes") or []
        if "nvidia" in runtimes:
            self.add(
                "nvidia runtime",
                "ok",
                f"registered (default runtime: {docker.get('default_runtime') or '?'})",
            )
        else:
            self.add(
                "nvidia runtime",
                "fail",
                f"not registered in dockerd (runtimes: {', '.join(runtimes) or 'none'}); "
                "re-run deploy.py (nvidia_toolkit step merges it into daemon.json)",
            )

    def config(self) -> list[dict] | None:
        """The aiModels.json check; returns the deployed entries (None when unreadable)."""
        config = self.snap.get("config") or {}
        path = self.spec.ai_models_path
        if not config.get("exists"):
            self.add("aiModels.json", "fail", f"{path} missing: the worker cannot start (run deploy.py)")
            return None
        if config.get("error"):
            self.add(
                "aiModels.json",
                "fail",
                f"{path}: {config['error']}",
                [
                    Cause(
                        "invalid-config",
                        config["error"],
                        "re-render it with deploy.py (lpfleet lint checks a hand-written file)",
                    )
                ],
            )
            return None
        entries = [e for e in config.get("entries") or [] if not e.get("invalid")]
        want = sorted(_entry_key(e) for e in self.spec.models)
        have = sorted(
            (e.get("pipeline") or "", e.get("model_id") or "", bool(e.get("warm")), bool(e.get("external")))
            for e in entries
        )
        if want != have:
            missing = [k for k in want if k not in have]
            extra = [k for k in have if k not in want]
            parts = []
            if missing:
                parts.append("missing " + "; ".join(_describe_key(k) for k in missing))
            if extra:
                parts.append("not in group data " + "; ".join(_describe_key(k) for k in extra))
            self.add(
                "aiModels.json",
                "fail",
                f"{path} differs from the group data: {', '.join(parts)} (run deploy.py)",
                sha256=config.get("sha256"),
            )
        elif config.get("mode") not in (None, "0o600"):
            self.add(
                "aiModels.json",
                "warn",
                f"{path} mode {config['mode'][2:]}, want 600 (it can hold tokens)",
                sha256=config.get("sha256"),
            )
        else:
            self.add(
                "aiModels.json",
                "ok",
                f"{len(entries)} entr{'ies' if len(entries) != 1 else 'y'}, as configured",
                sha256=config.get("sha256"),
            )
        return entries

    def warm_slots(self, deployed: list[dict] | None, gpus_seen: list[int] | None) -> None:
        entries = (
            deployed
            if deployed is not None
            else [
                {"warm": e.warm, "capacity": e.capacity, "external": e.is_external} for e in self.spec.models
            ]
        )
        warm = sum((e.get("capacity") or 1) for e in entries if e.get("warm") and not e.get("external"))
        gpus = gpus_seen if gpus_seen else []
        slots = len(gpus) * self.spec.containers_per_gpu
        source = "the deployed aiModels.json" if deployed is not None else "the group data"
        where = (
            f"GPU{'s' if len(gpus) != 1 else ''} {_ids(gpus) or 'none'} x {self.spec.containers_per_gpu} "
            "per GPU"
        )
        if warm > slots:
            self.add(
                "warm slots",
                "fail",
                f"{warm} warm container{'s' if warm != 1 else ''} in {source} but {slots} GPU slot"
                f"{'s' if slots != 1 else ''} ({where}): go-livepeer fails at start; make fewer models warm "
                "(or lower capacity), or add GPUs",
                warm=warm,
                slots=slots,
            )
        else:
            self.add(
                "warm slots",
                "ok",
                f"{warm} warm / {slots} slot{'s' if slots != 1 else ''} ({where})",
                warm=warm,
                slots=slots,
            )

    def worker(self) -> bool:
        """The worker check; True when it runs."""
        name = self.spec.worker.container_name
        check = f"worker {name}"
        if not self.docker_ok:
            self.no_docker(check)
            return False
        worker = self.snap.get("worker")
        if not worker:
            self.add(check, "fail", f"container {name} not found (run deploy.py)")
            return False
        state, detail = _container_state(worker)
        self.add(
            check,
            state,
            f"{detail}, image {worker.get('image')}",
            self.causes_of(worker["name"]) if state != "ok" else [],
            container=_public(worker),
        )
        return worker.get("running") and not worker.get("restarting")

    def runners(self, worker_running: bool, configured: list[AIModelEntry]) -> None:
        expected_names = set()
        for runner in self.expected:
            expected_names.add(runner.name)
            check = f"runner {runner.name}"
            if not self.docker_ok:
                self.no_docker(check)
                continue
            container = self.containers.get(runner.name)
            if container is None:
                reason = "the worker is not running" if not worker_running else "the worker did not start it"
                causes = self.causes_of(self.spec.worker.container_name)
                self.add(
                    check,
                    "fail",
                    f"missing: no container {runner.name} ({reason}; {runner.pipeline} "
                    f"{runner.model_id} is warm)",
                    causes,
                    expected_port=runner.port,
                )
                continue
            self.runner(check, container, runner.port, _limit_for(configured, runner.model_id))
        known = {e.model_id for e in configured}
        for name, container in sorted(self.containers.items()):
            if name in expected_names:
                continue
            check = f"runner {name}"
            if container.get("model_id") in known:  # a cold model the worker started on demand
                self.runner(
                    check + " (cold)",
                    container,
                    container.get("port"),
                    _limit_for(configured, container.get("model_id")),
                )
            else:
                self.add(
                    check,
                    "warn",
                    f"{container.get('pipeline') or '?'} {container.get('model_id') or '?'} is not "
                    f"in aiModels.json: a leftover runner holding a GPU slot (docker rm -f {name})",
                    container=_public(container),
                )

    def runner(self, check: str, container: dict, port: int | None, limit_s: float) -> None:
        state, detail = _container_state(container)
        public = _public(container)
        if container.get("port") is not None and port is not None and container.get("port") != port:
            self.add(
                check,
                "fail",
                f"published on port {container.get('port')}, go-livepeer expects {port}",
                container=public,
            )
            return
        if state == "fail":
            self.add(check, "fail", detail, self.causes_of(container["name"]), container=public)
            return
        url = f"http://127.0.0.1:{port}/health"
        result = self.probes.get(url)
        up = container.get("up_s") or 0.0
        if result is None:
            self.add(check, "unknown", f"{detail}; /health not probed", container=public)
            return
        health = _health(result)
        restarts = container.get("restart_count") or 0
        if result.get("status") == 200 and health in ("OK", "IDLE"):
            note = f"; restarted {restarts} time{'s' if restarts != 1 else ''}" if restarts else ""
            self.add(
                check,
                "warn" if restarts else "ok",
                f"{health} on 127.0.0.1:{port}, up {_age(up)}{note}",
                container=public,
                health=health,
            )
        elif health == "LOADING" or (result.get("error") in NOT_BOUND and up < limit_s):
            what = "LOADING" if health == "LOADING" else "loading (port not bound yet)"
            if up > limit_s:
                self.add(
                    check,
                    "fail",
                    f"{what} for {_age(up)}: go-livepeer gives up after {limit_s:.0f} s",
                    self.causes_of(container["name"]),
                    container=public,
                    health=health,
                    loading_s=up,
                )
            else:
                self.add(
                    check,
                    "loading",
                    f"{what} for {_age(up)} on 127.0.0.1:{port}",
                    container=public,
                    health=health,
                    loading_s=up,
                )
        else:
            answer = (
                f"HTTP {result.get('status')} {health or (result.get('body') or '')[:80]}"
                if result.get("status") is not None
                else result.get("error") or "no answer"
            )
            self.add(
                check,
                "fail",
                f"/health on 127.0.0.1:{port}: {answer} (up {_age(up)})",
                self.causes_of(container["name"]),
                container=public,
                health=health,
            )

    def externals(self) -> None:
        for entry in self.spec.models:
            if not entry.url:
                continue
            check = f"external {entry.pipeline} {entry.model_id}"
            url = external_health_url(entry.url)
            result = self.probes.get(url)
            shown = display_url(url)
            if result is None:
                self.add(check, "unknown", f"{shown} not probed")
            elif result.get("status") == 200:
                self.add(check, "ok", f"{shown}: 200 in {result.get('elapsed_s', 0):.2f} s")
            else:
                answer = (
                    f"HTTP {result['status']}" if result.get("status") is not None else result.get("error")
                )
                self.add(
                    check,
                    "fail",
                    f"{shown}: {answer} (go-livepeer aborts its start when an external /health "
                    "is not 200 within 2 min)",
                    [
                        Cause(
                            "external-health-failed",
                            f"GET {shown} -> {answer}",
                            "start the external container or fix its url; it must answer /health 200",
                        )
                    ],
                )

    def weights_drift(self, item: dict[str, Any], check: str, repo: str) -> bool:
        """Commits the repo holds beside the locked one.

        A commit lpfleet never verified came from elsewhere (a runner online: huggingface_hub moves
        refs/<branch> to the hub's newest commit and downloads it): fail. An older commit lpfleet verified is
        left from a lock change: the LLM runner (vLLM) loads the first snapshot folder with weights whatever
        the refs say, so for llm it fails, else it is a warning. Returns whether it added a failing check."""
        locked = item.get("expected_commit")
        if not locked or "snapshots" not in item:
            return False
        branch = self.spec.weights.branch
        scan = {"refs": item.get("refs") or {}, "snapshots": {c: {} for c in item.get("snapshots") or []},
                "records": {c: 0 for c in item.get("records") or []}}
        drift = repo_drift(repo.rsplit("/", 1)[-1], locked, scan, branch)
        where = ", ".join(
            [f"refs/{branch} -> {drift.ref[:12]}"] if drift.ref and drift.ref != locked else []
        )
        if drift.foreign:
            shown = ", ".join(c[:12] for c in drift.foreign[:3]) + (", ..." if len(drift.foreign) > 3 else "")
            hint = (
                "keep runners off the hub: leave runner_hf_offline on (HF_HUB_OFFLINE=1 reaches warm "
                "runners only; go-livepeer gives cold ones no flags), make the entry warm or block the "
                "node's egress to the hub; then run deploy.py (the weights step puts "
                f"refs/{branch} back on {locked[:12]}; weights_prune = true removes the foreign snapshots)"
            )
            self.add(
                check, "fail",
                f"runner fetched unpinned weights: {shown} not in models.lock (pins {locked[:12]})"
                + (f"; {where}" if where else ""),
                [Cause("unpinned-weights", f"{repo}: commit {shown} not fetched by lpfleet"
                       + (f"; {where}" if where else ""), hint)],
            )
            return True
        if drift.stale and item.get("llm"):
            shown = ", ".join(c[:12] for c in drift.stale[:3])
            self.add(
                check, "fail",
                f"older snapshot {shown} beside the locked {locked[:12]}: vLLM loads the first snapshot "
                "folder with weights, whatever refs/main says",
                [Cause("stale-snapshot", f"{repo}/snapshots/{drift.stale[0]} present",
                       f"run `lpfleet prune --models-dir {self.spec.models_dir} --apply` on the node or set "
                       "weights_prune = true and run deploy.py")],
            )
            return True
        return False

    def weights(self) -> None:
        models_dir = self.spec.models_dir
        llm_models = {e.model_id for e in self.spec.models if e.pipeline == "llm" and not e.is_external}
        for item in self.snap.get("weights") or []:
            model = item.get("id")
            check = f"weights {model}"
            repo = f"{models_dir}/models--{str(model).replace('/', '--')}"
            hint = "run deploy.py (weights step) or lpfleet prefetch; the models dir must be a host path"
            if item.get("repo_dir") and self.weights_drift({**item, "llm": model in llm_models}, check, repo):
                continue
            if not item.get("repo_dir"):
                self.add(
                    check,
                    "fail",
                    f"not in {models_dir}: {repo} absent",
                    [Cause("weights-missing", f"{repo} does not exist", hint)],
                )
            elif not item.get("commit"):
                self.add(
                    check,
                    "fail",
                    f"{repo}/refs/main missing: incomplete or interrupted download",
                    [Cause("weights-missing", f"{repo}/refs/main not found", hint)],
                )
            elif not item.get("snapshot"):
                self.add(
                    check,
                    "fail",
                    f"refs point at {item['commit'][:12]} but that snapshot is missing",
                    [Cause("weights-missing", f"{repo}/snapshots/{item['commit']} not found", hint)],
                )
            elif item.get("missing") or item.get("wrong_size"):
                missing = item.get("missing") or []
                wrong = [w[0] for w in item.get("wrong_size") or []]
                parts = []
                if missing:
                    more = ", ..." if len(missing) > 3 else ""
                    parts.append(f"{len(missing)} missing ({', '.join(missing[:3])}{more})")
                if wrong:
                    parts.append(
                        f"{len(wrong)} wrong size ({', '.join(wrong[:3])}{', ...' if len(wrong) > 3 else ''})"
                    )
                self.add(
                    check,
                    "fail",
                    f"incomplete at {item['commit'][:12]}: {'; '.join(parts)}",
                    [Cause("weights-missing", f"{repo}: {'; '.join(parts)}", hint)],
                )
            elif item.get("modified"):
                changed = item["modified"]
                shown = ", ".join(changed[:3]) + (", ..." if len(changed) > 3 else "")
                fix = "run deploy.py: the weights step hashes the changed files again and fetches wrong ones"
                self.add(
                    check,
                    "fail",
                    f"{len(changed)} file(s) changed since they were verified ({shown})",
                    [Cause("weights-modified", f"{repo}: blob of {c} rewritten since it was verified", fix)
                     for c in changed[:3]],
                )
            elif item.get("expected_commit") and item["expected_commit"] != item["commit"]:
                self.add(
                    check,
                    "fail",
                    f"refs/main at {item['commit'][:12]}, models.lock pins "
                    f"{item['expected_commit'][:12]} (run deploy.py)",
                )
            elif not item.get("files"):
                self.add(
                    check,
                    "fail",
                    f"snapshot {item['commit'][:12]} is empty",
                    [Cause("weights-missing", f"{repo}/snapshots/{item['commit']} is empty", hint)],
                )
            else:
                stale = [c for c in item.get("snapshots") or [] if item.get("expected_commit")
                         and c != item["expected_commit"]]
                self.add(
                    check,
                    "warn" if stale else "ok",
                    f"complete: {item['files']} file{'s' if item['files'] != 1 else ''}, "
                    f"{_size(item.get('bytes') or 0)}, commit {item['commit'][:12]}"
                    + (f"; {len(stale)} older snapshot{'s' if len(stale) != 1 else ''} kept "
                       "(lpfleet prune, or weights_prune = true)" if stale else ""),
                )

    def live_weights(self) -> None:
        """Each live app's prepared folders are non-empty and were prepared by the image the app runs."""
        found = {item.get("app"): item for item in self.snap.get("live") or []}
        for app in spec_live_apps(self.spec):
            item = found.get(app.model_id)
            if item is None:  # a node script without the live scan: nothing to judge
                continue
            state = AppState(item.get("image_id") or "", item.get("record"), item.get("dirs") or {})
            reasons = stale_reasons(app, state)
            check = f"live weights {app.model_id}"
            if reasons:
                self.add(
                    check, "fail", f"not prepared in {self.spec.models_dir}: {'; '.join(reasons)}",
                    [Cause("weights-missing", f"live app {app.model_id}: {'; '.join(reasons)}",
                           f"run deploy.py (the weights step runs {app.prepare.image} with PREPARE_MODELS=1 "
                           "on the node's GPU); the models dir must be a host path")],
                )
            else:
                self.add(check, "ok", f"prepared by {app.prepare.image} ({', '.join(app.prepare.dirs)})")


def verify_host(
    spec: NodeSpec,
    snapshot: NodeSnapshot,
    runners: Sequence[ExpectedRunner],
    *,
    classify: Classifier | None = None,
    secrets: Sequence[str] = (),
    gateway: Sequence[Check] = (),
) -> HostResult:
    """Every check of one host, in the order a person reads them (node, config, worker, runners, weights).

    + spec: the host's validated spec
    + snapshot: the NodeVerification fact (lpfleet.verify_snapshot.NodeSnapshot)
    + runners: the runner containers go-livepeer starts for the warm models (lpfleet.runners)
    + classify: log lines -> causes (default: none found)
    + secrets: values to mask in every detail and evidence line (spec secrets are always masked)
    + gateway: checks already made against a gateway for this host (gateway_checks)
    """
    all_secrets = list(secrets) + list(secret_values(spec))
    if snapshot.get("error"):
        check = Check(
            spec.host, "node", "unknown", mask(f"could not check: {snapshot['error']}", all_secrets)
        )
        return HostResult(spec.host, spec.groups, (check,) + tuple(gateway))
    v = _Verifier(spec, snapshot, runners, classify or _no_classifier, all_secrets)
    seen = v.gpus()
    v.docker()
    deployed = v.config()
    v.warm_slots(deployed, seen)
    running = v.worker()
    v.runners(running, list(spec.models))
    v.externals()
    v.weights()
    v.live_weights()
    return HostResult(spec.host, spec.groups, tuple(v.checks) + tuple(gateway))


def unchecked_host(spec_or_host: NodeSpec | str, reason: str, groups: Sequence[str] = ()) -> HostResult:
    """A host that could not be checked at all (not connected, fact failed)."""
    if isinstance(spec_or_host, NodeSpec):
        return unchecked(spec_or_host.host, reason, spec_or_host.groups)
    return unchecked(spec_or_host, reason, groups)


# -- the gateway's view ------------------------------------------------------------------------------------


def capability_pipelines(doc: dict[str, Any]) -> dict[str, str]:
    """capability id -> pipeline, from the gateway's own names ("Text to image" -> text-to-image)."""
    names = doc.get("capabilities_names") or {}
    return {str(cap): str(name).strip().lower().replace(" ", "-") for cap, name in names.items()}


def gateway_checks(spec: NodeSpec, doc: dict[str, Any] | None, *, error: str = "") -> list[Check]:
    """What a gateway's /getNetworkCapabilities says about this host's orchestrator, per configured model.

    + spec: the host's spec (verify.gateway_url and verify.orchestrator_address set)
    + doc: the parsed JSON document, or None when it could not be fetched
    + error: why it could not be fetched
    """
    address = (spec.verify.orchestrator_address or "").lower()
    gateway = display_url(spec.verify.gateway_url or "")
    host = spec.host
    if doc is None:
        return [
            Check(host, "gateway", "unknown", f"{gateway}/getNetworkCapabilities: {error or 'no answer'}")
        ]
    orchestrators = [
        o for o in doc.get("orchestrators") or [] if str(o.get("address", "")).lower() == address
    ]
    if not orchestrators:
        count = len(doc.get("orchestrators") or [])
        return [
            Check(
                host,
                "gateway",
                "fail",
                f"orchestrator {spec.verify.orchestrator_address} is not among the "
                f"{count} orchestrators {gateway} sees (registration takes 2-5 min after the worker starts; "
                "the gateway refreshes every 25 min)",
            )
        ]
    pipelines = capability_pipelines(doc)
    advertised: dict[tuple[str, str], dict] = {}
    for orch in orchestrators:
        per_cap = ((orch.get("capabilities") or {}).get("constraints") or {}).get("PerCapability") or {}
        for cap, constraint in per_cap.items():
            pipeline = pipelines.get(str(cap))
            if pipeline is None:
                continue
            for model_id, info in ((constraint or {}).get("models") or {}).items():
                advertised[(pipeline, model_id)] = info or {}
    checks = []
    for entry in spec.models:
        check = f"gateway {entry.pipeline} {entry.model_id}"
        info = advertised.get((entry.pipeline, entry.model_id))
        want = "warm" if entry.warm else "cold"
        if info is None:
            checks.append(Check(host, check, "fail", f"not advertised on {gateway} (configured {want})"))
            continue
        seen = "warm" if info.get("warm") else "cold"
        used = info.get("capacityInUse", 0)
        detail = f"{seen} on {gateway}, capacity {info.get('capacity', '?')}, in use {used}"
        if seen != want:
            checks.append(Check(host, check, "fail", f"{detail}; configured {want}"))
        else:
            checks.append(Check(host, check, "ok", detail))
    return checks


# -- small pure helpers -------------------------------------------------------------------------------------


def _entry_key(entry: AIModelEntry) -> tuple[str, str, bool, bool]:
    return (entry.pipeline, entry.model_id, bool(entry.warm), entry.is_external)


def _describe_key(key: tuple[str, str, bool, bool]) -> str:
    pipeline, model_id, warm, external = key
    return f"{pipeline} {model_id} ({'warm' if warm else 'cold'}{', external' if external else ''})"


def _ids(ids: Iterable[int]) -> str:
    return ",".join(str(i) for i in ids)


def _limit_for(configured: Sequence[AIModelEntry], model_id: str | None) -> float:
    for entry in configured:
        if entry.model_id == model_id and entry.optimization_flags:
            return LOAD_LIMIT_OPTIMIZED_S
    return LOAD_LIMIT_S


def _health(result: dict) -> str | None:
    import json

    try:
        data = json.loads(result.get("body") or "")
    except ValueError:
        return None
    status = data.get("status") if isinstance(data, dict) else None
    return status if isinstance(status, str) else None


def _public(container: dict) -> dict:
    keys = ("id", "name", "image", "status", "restart_count", "exit_code", "oom_killed", "up_s", "port")
    return {key: container.get(key) for key in keys if container.get(key) is not None}


def _container_state(c: dict) -> tuple[str, str]:
    """(state, detail) from a container summary: running, or why it is not, restart loops included."""
    restarts = c.get("restart_count") or 0
    times = f"{restarts} restart{'s' if restarts != 1 else ''}"
    oom = ", OOM-killed" if c.get("oom_killed") else ""
    if c.get("restarting"):
        return "fail", f"restart loop: restarting, {times}, last exit code {c.get('exit_code')}{oom}"
    if not c.get("running"):
        ago = f" {_age(c['exited_ago_s'])} ago" if c.get("exited_ago_s") is not None else ""
        status = c.get("status") or "not running"
        return (
            "fail",
            f"{'stopped' if status == 'exited' else status}{ago} (exit code {c.get('exit_code')}, "
            f"{times}{oom})",
        )
    up = c.get("up_s") or 0.0
    if restarts and up < SETTLED_S:
        return "fail", f"restart loop: {times}, up only {_age(up)}"
    return "ok", f"running, up {_age(up)}" + (f", {times}" if restarts else "")


def _age(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
