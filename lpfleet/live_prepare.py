"""Which live apps a node must prepare into its models dir, and whether a prepared copy is still good (pure).

Live apps (`live-video-to-video`) do not load HF repositories: their weights are TensorRT engines and model
trees that a run of the app's own image writes into the models dir (ai-runner v0.14.1 `dl_checkpoints.sh:217-250`,
`runner/src/runner/app.py:98-105,181-185`). Engines are built on the node's GPU, so no hash can pin them; what
binds them is the image that built them. After a successful run lpfleet records the image id under
`<models_dir>/.lpfleet/live/<app>.json`; the app is prepared again when that record is missing, names another
image id, or one of its folders is missing or empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lpfleet.catalog import LIVE_PIPELINE, LivePrepare, live_prepare

#: Where lpfleet keeps its records of prepared live apps, relative to the models dir.
RECORD_DIR = ".lpfleet/live"

#: The folders dl_checkpoints.sh makes before any prepare run (`dl_checkpoints.sh:456`). The live images link
#: some of them into their work dirs (`live/streamdiffusion/Dockerfile:29-31`), and StreamDiffusion's prepare
#: refuses to start when its engines or models folder is missing (`live/streamdiffusion/pipeline/prepare.py:120-123`).
SETUP_DIRS: tuple[str, ...] = (
    "checkpoints",
    "StreamDiffusion--engines",
    "insightface",
    "StreamDiffusion--models",
    "ComfyUI--models",
    "ComfyUI--output",
    "Scope--models",
)

#: The label dl_checkpoints.sh puts on a prepare container (`dl_checkpoints.sh:221,243`).
PREPARE_LABEL = "Pipeline-Prepare"


@dataclass(frozen=True)
class LiveApp:
    """One live app a node serves, and how its weights are prepared."""

    model_id: str
    prepare: LivePrepare

    @property
    def record_path(self) -> str:
        """The app's record, relative to the models dir."""
        return f"{RECORD_DIR}/{self.model_id}.json"

    @property
    def container_name(self) -> str:
        """dl_checkpoints.sh names the container `ai-runner-<pipeline>-prepare` (`dl_checkpoints.sh:241`)."""
        return f"ai-runner-{self.model_id}-prepare"


def live_apps(entries: Iterable[Any], live_overrides: Mapping[str, object] | None = None) -> list[LiveApp]:
    """The live apps of a node's managed aiModels.json entries that need a prepare run, each once, in order.

    External (`url`) entries run someone else's container; apps with nothing to prepare (noop, sam2) and ids
    go-livepeer has no image for are left out (the rules report the latter).
    """
    apps: dict[str, LiveApp] = {}
    for entry in entries:
        if entry.pipeline != LIVE_PIPELINE or getattr(entry, "url", None) or entry.model_id in apps:
            continue
        prepare = live_prepare(entry.model_id, live_overrides)
        if prepare is not None:
            apps[entry.model_id] = LiveApp(entry.model_id, prepare)
    return list(apps.values())


def record_document(app: LiveApp, image_id: str) -> dict[str, Any]:
    """What lpfleet writes after a successful prepare run."""
    return {"app": app.model_id, "image": app.prepare.image, "image_id": image_id, "dirs": list(app.prepare.dirs)}


@dataclass(frozen=True)
class AppState:
    """What a node holds for one live app: the image's id on the node ("" when absent), the record (None when
    absent or unreadable) and each prepared folder's state ("ok", "empty" or "missing")."""

    image_id: str
    record: dict[str, Any] | None
    dirs: Mapping[str, str]


def parse_record(text: str) -> dict[str, Any] | None:
    """A record file's content; None when it is not a JSON object (treated as no record)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def stale_reasons(app: LiveApp, state: AppState) -> list[str]:
    """Why the app's prepared weights cannot be trusted (empty: they are current)."""
    reasons = []
    for folder in app.prepare.dirs:
        status = state.dirs.get(folder, "missing")
        if status != "ok":
            reasons.append(f"{folder} is {status}")
    record = state.record
    if record is None:
        reasons.append(f"no record of a completed prepare run ({app.record_path})")
    elif record.get("image") != app.prepare.image:
        reasons.append(f"prepared by image {record.get('image')!r}, the app now runs {app.prepare.image}")
    elif not state.image_id:
        reasons.append(f"image {app.prepare.image} is not on the node")
    elif record.get("image_id") != state.image_id:
        reasons.append(f"image {app.prepare.image} changed since the prepare run "
                       f"({_short(record.get('image_id'))} -> {_short(state.image_id)})")
    return reasons


def plan_live_prepare(apps: Iterable[LiveApp], states: Mapping[str, AppState]) -> list[tuple[LiveApp, list[str]]]:
    """The apps to prepare again, each with why; empty when every app's record and folders are current."""
    plan = []
    for app in apps:
        state = states.get(app.model_id) or AppState("", None, {})
        reasons = stale_reasons(app, state)
        if reasons:
            plan.append((app, reasons))
    return plan


def _short(image_id: object) -> str:
    text = str(image_id or "none")
    return text.removeprefix("sha256:")[:12]
