"""Prepare live apps' weights on a node: one run of each app's image with PREPARE_MODELS=1 (weights step).

ai-runner v0.14.1 prepares live weights with `dl_checkpoints.sh --live`: it makes the models folders
(`dl_checkpoints.sh:456`) and runs the app's image with the models dir at /models and
`-e HF_HUB_OFFLINE=0 -e PREPARE_MODELS=1` (`dl_checkpoints.sh:241-246`); the image's `start_app` sees
PREPARE_MODELS=1, calls the pipeline's `prepare_models()`, logs "Model preparation complete" and returns, so the
container exits 0 (`runner/src/runner/app.py:98-105,181-185`). lpfleet does the same, and after a zero exit with
every prepared folder non-empty records the image id (`lpfleet.live_prepare`). The plan is in
`lpfleet.live_prepare`; this module only reads the node and runs the commands.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Sequence

from pyinfra import host, logger
from pyinfra.api import FactBase, QuoteString, StringCommand, operation

from lpfleet.live_prepare import (
    PREPARE_LABEL,
    RECORD_DIR,
    SETUP_DIRS,
    AppState,
    LiveApp,
    parse_record,
    plan_live_prepare,
    record_document,
)

_MARK = "@@lpfleet-live "


class LivePrepareState(FactBase[dict[str, AppState]]):
    """Per live app: the image id on the node, lpfleet's record and each prepared folder's state, in one command.

    Takes a base64 JSON list of {"app", "image", "record", "dirs"} (paths relative to `models_dir`).
    """

    def command(self, models_dir: str, request: str) -> StringCommand:
        apps = json.loads(base64.b64decode(request))
        lines = [f"m={shlex.quote(models_dir)}"]
        for app in apps:
            name = shlex.quote(app["app"])
            image = shlex.quote(app["image"])
            record = shlex.quote(app["record"])
            lines.append(f"echo \"{_MARK}image {name} $(docker image inspect --format '{{{{.Id}}}}' {image} "
                         "2>/dev/null || true)\"")
            lines.append(f"echo \"{_MARK}record {name} $(base64 -w0 < \"$m\"/{record} 2>/dev/null || true)\"")
            for folder in app["dirs"]:
                d = shlex.quote(folder)
                lines.append(
                    f"if [ -d \"$m\"/{d} ] && [ -n \"$(ls -A \"$m\"/{d} 2>/dev/null)\" ]; then s=ok; "
                    f"elif [ -d \"$m\"/{d} ]; then s=empty; else s=missing; fi; echo \"{_MARK}dir {name} {d} $s\""
                )
        return StringCommand("sh", "-c", QuoteString("\n".join(lines)))

    def process(self, output: list[str]) -> dict[str, AppState]:
        images: dict[str, str] = {}
        records: dict[str, dict | None] = {}
        dirs: dict[str, dict[str, str]] = {}
        for line in output:
            if not line.startswith(_MARK):
                continue
            kind, _, rest = line[len(_MARK):].partition(" ")
            app, _, value = rest.partition(" ")
            value = value.strip()
            if kind == "image":
                images[app] = value
            elif kind == "record":
                try:
                    text = base64.b64decode(value).decode("utf-8") if value else ""
                except (ValueError, UnicodeDecodeError):
                    text = ""
                records[app] = parse_record(text) if text else None
            elif kind == "dir":
                folder, _, status = value.rpartition(" ")
                dirs.setdefault(app, {})[folder] = status
        names = set(images) | set(records) | set(dirs)
        return {a: AppState(images.get(a, ""), records.get(a), dirs.get(a, {})) for a in names}


def state_request(apps: Sequence[LiveApp]) -> str:
    request = [
        {"app": a.model_id, "image": a.prepare.image, "record": a.record_path, "dirs": list(a.prepare.dirs)}
        for a in apps
    ]
    return base64.b64encode(json.dumps(request, sort_keys=True).encode()).decode()


def prepare_script(app: LiveApp, models_dir: str) -> str:
    """The node-side run: make the folders, run the image's prepare, check the folders, record the image id.

    The record is written only after a zero exit and non-empty folders, so an interrupted or failed run is
    prepared again next time.
    """
    q = shlex.quote
    prepare = app.prepare
    env = " ".join(f"-e {q(e)}" for e in prepare.env)
    command = " ".join(q(c) for c in prepare.command or ())
    record = record_document(app, "@IMAGE_ID@")
    before, _, after = json.dumps(record, sort_keys=True).partition('"@IMAGE_ID@"')
    checks = "\n".join(
        f'[ -n "$(ls -A "$m"/{q(d)} 2>/dev/null)" ] || '
        f'{{ echo "lpfleet: the prepare run of {app.model_id} left $m/{d} empty" >&2; exit 1; }}'
        for d in prepare.dirs
    )
    return "\n".join([
        "set -e",
        f"m={q(models_dir)}",
        "mkdir -p " + " ".join(f'"$m"/{q(d)}' for d in dict.fromkeys(SETUP_DIRS + prepare.dirs)),
        f"docker rm -f {q(app.container_name)} >/dev/null 2>&1 || true",
        f'docker run --rm --name {q(app.container_name)} -l {PREPARE_LABEL} --gpus all -v "$m":/models '
        f"{env} {q(prepare.image)} {command}".rstrip(),
        f"id=$(docker image inspect --format '{{{{.Id}}}}' {q(prepare.image)})",
        checks,
        f'mkdir -p "$m"/{RECORD_DIR}',
        f"printf '%s\"%s\"%s\\n' {q(before)} \"$id\" {q(after)} "
        f'> "$m"/{q(app.record_path)}.tmp',
        f'mv "$m"/{q(app.record_path)}.tmp "$m"/{q(app.record_path)}',
    ])


@operation()
def live_weights_prepared(apps: Sequence[LiveApp], models_dir: str):
    """
    Run each live app's prepare (its image with PREPARE_MODELS=1) when its folders or record are not current.

    + apps: the node's live apps (`lpfleet.live_prepare.live_apps`)
    + models_dir: the node's models dir (mounted at /models)
    """
    if not apps:
        host.noop("live weights: no live app to prepare")
        return
    states = host.get_fact(LivePrepareState, models_dir=models_dir, request=state_request(apps))
    plan = plan_live_prepare(apps, states)
    if not plan:
        host.noop(f"live weights: {', '.join(a.model_id for a in apps)} prepared by the current image")
        return
    for app, reasons in plan:
        host.log(f"live weights: prepare {app.model_id} with {app.prepare.image}: {'; '.join(reasons)}",
                 logger.info)
        yield StringCommand("sh", "-c", QuoteString(prepare_script(app, models_dir)))
