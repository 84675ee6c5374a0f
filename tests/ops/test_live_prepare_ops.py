"""The live prepare operation through pyinfra's API against `@fake` hosts, and its node-side script run with
a stand-in `docker` on PATH: a current node is a no-op, a node without prepared folders gets one prepare run
per app, and the record is written only after the image's prepare exits 0 and fills the folders.

Upstream: ai-runner v0.14.1 `runner/dl_checkpoints.sh:241-246` (the run), `runner/src/runner/app.py:181-185`
(PREPARE_MODELS=1: prepare and return, exit 0)."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

from lpfleet.live_prepare import live_apps, parse_record, plan_live_prepare, record_document
from lpfleet.operations.live_prepare import (
    LivePrepareState,
    live_weights_prepared,
    prepare_script,
    state_request,
)

ID = "sha256:" + "c" * 64
APPS = live_apps([SimpleNamespace(pipeline="live-video-to-video", model_id="streamdiffusion", url=None)])


def fact_output(record: dict | None, dirs: str = "ok", image_id: str = ID) -> list[str]:
    encoded = base64.b64encode(json.dumps(record).encode()).decode() if record else ""
    return [
        f"@@lpfleet-live image streamdiffusion {image_id}",
        f"@@lpfleet-live record streamdiffusion {encoded}",
        f"@@lpfleet-live dir streamdiffusion StreamDiffusion--engines {dirs}",
    ]


def run(output: list[str]) -> list[str]:
    """Run the operation on a fake node whose state fact prints `output`; the commands it ran (fact excepted)."""
    responses = {re.compile(r"lpfleet-live image"): output, re.compile(r"PREPARE_MODELS=1"): []}
    hosts = [("@fake/node-1", {"fake_responses": responses, "fake_delay": 0, "fake_delay_jitter": 0})]
    state = State(Inventory((hosts, {})), Config())
    connect_all(state)

    def deploy_live():
        live_weights_prepared(name="Weights: prepare live apps", apps=APPS, models_dir="/models")

    add_deploy(state, deploy_live)
    run_ops(state)
    executed = state.inventory.get_host("@fake/node-1").connector.executed_commands
    return [c for c in executed if "lpfleet-live image" not in c]


def test_fact_output_parses_into_the_state_the_plan_reads():
    states = LivePrepareState().process(fact_output(record_document(APPS[0], ID)))
    assert states["streamdiffusion"].image_id == ID
    assert states["streamdiffusion"].dirs == {"StreamDiffusion--engines": "ok"}
    assert plan_live_prepare(APPS, states) == []


def test_current_node_is_a_noop():
    assert run(fact_output(record_document(APPS[0], ID))) == []


def test_unprepared_node_gets_one_prepare_run():
    [command] = run(fact_output(None, dirs="missing"))
    assert "PREPARE_MODELS=1" in command and "--gpus all" in command
    assert "livepeer/ai-runner:live-app-streamdiffusion" in command


def test_changed_image_gets_a_new_run():
    commands = run(fact_output(record_document(APPS[0], ID), image_id="sha256:" + "d" * 64))
    assert len(commands) == 1 and "PREPARE_MODELS=1" in commands[0]


def fake_docker(bin_dir: Path, prepare_body: str) -> Path:
    """A `docker` that logs its argv; `run` executes `prepare_body` with $M the host side of the /models mount."""
    log = bin_dir / "docker.log"
    script = bin_dir / "docker"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {log}\n'
        'case "$1" in\n'
        "  image) echo " + ID + " ;;\n"
        '  run) M=$(echo "$*" | sed -n "s/.* -v \\([^ ]*\\):\\/models .*/\\1/p"); ' + prepare_body + " ;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return log


def run_script(tmp_path: Path, prepare_body: str) -> tuple[subprocess.CompletedProcess, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake_docker(bin_dir, prepare_body)
    models = tmp_path / "models"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(["sh", "-c", prepare_script(APPS[0], str(models))], env=env, capture_output=True,
                          text=True, timeout=30)
    return done, models


def test_script_records_the_image_id_after_a_successful_prepare(tmp_path):
    done, models = run_script(tmp_path, 'touch "$M/StreamDiffusion--engines/unet.engine"')
    assert done.returncode == 0, done.stderr
    # dl_checkpoints.sh:456 makes every folder before the run (prepare.py:120-123 needs them)
    assert (models / "StreamDiffusion--models").is_dir() and (models / "insightface").is_dir()
    record = parse_record((models / ".lpfleet/live/streamdiffusion.json").read_text())
    assert record == record_document(APPS[0], ID)
    log = (tmp_path / "bin" / "docker.log").read_text()
    assert f"-v {models}:/models -e HF_HUB_OFFLINE=0 -e PREPARE_MODELS=1" in log


def test_script_writes_no_record_when_the_prepare_fails_or_leaves_folders_empty(tmp_path):
    failed, models = run_script(tmp_path, "exit 1")
    assert failed.returncode != 0
    assert not (models / ".lpfleet/live/streamdiffusion.json").exists()
    empty, models = run_script(tmp_path, "true")
    assert empty.returncode != 0 and "left" in empty.stderr and "StreamDiffusion--engines empty" in empty.stderr
    assert not (models / ".lpfleet/live/streamdiffusion.json").exists()


def test_verify_node_script_reads_the_live_record_and_folders(tmp_path):
    """The node side of verify (lpfleet/facts/verify_node_script.py): record, folder states, no Docker -> ""."""
    from lpfleet.facts import verify_node_script

    models = tmp_path / "models"
    (models / ".lpfleet/live").mkdir(parents=True)
    (models / "StreamDiffusion--engines").mkdir()
    (models / ".lpfleet/live/streamdiffusion.json").write_text(json.dumps(record_document(APPS[0], ID)))
    app = APPS[0]
    request = [{"app": app.model_id, "image": app.prepare.image, "record": app.record_path,
                "dirs": ["StreamDiffusion--engines", "Scope--models"]}]
    [found] = verify_node_script.gather_live(str(models), str(tmp_path / "no.sock"), request, 1.0)
    assert found == {"app": "streamdiffusion", "image_id": "", "record": record_document(app, ID),
                     "dirs": {"StreamDiffusion--engines": "empty", "Scope--models": "missing"}}
    (models / "StreamDiffusion--engines/unet.engine").write_text("x")
    [found] = verify_node_script.gather_live(str(models), str(tmp_path / "no.sock"), request, 1.0)
    assert found["dirs"]["StreamDiffusion--engines"] == "ok"


def test_script_with_the_airunner_stand_in_as_the_image(tmp_path):
    """The node script's `docker run` executed by the sandbox's ai-runner stand-in (PREPARE_MODELS=1 from the
    run's -e flags): it fills StreamDiffusion--engines, exits 0, and the record follows; a second plan is empty."""
    standin = Path(__file__).resolve().parents[2] / "lpfleet" / "sandbox" / "images" / "livepeer-standin"
    body = (f'env $(echo "$*" | grep -o "\\-e [A-Z_]*=[^ ]*" | sed "s/^-e //") HUGGINGFACE_HUB_CACHE="$M" '
            f'PYTHONPATH={standin} {sys.executable} -m lpstandin.airunner')
    done, models = run_script(tmp_path, body)
    assert done.returncode == 0, done.stderr
    assert "message=Model preparation complete" in done.stderr  # ai-runner runner/src/runner/app.py:104
    assert plan_live_prepare(APPS, node_state(tmp_path, models)) == []
    (models / ".lpfleet/live/streamdiffusion.json").write_text("{truncated")
    [(_, reasons)] = plan_live_prepare(APPS, node_state(tmp_path, models))
    assert reasons == ["no record of a completed prepare run (.lpfleet/live/streamdiffusion.json)"]


def node_state(tmp_path: Path, models: Path) -> dict:
    """The fact's own shell command run against `models` (the stand-in `docker` answers the image id)."""
    env = {**os.environ, "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"}
    command = LivePrepareState().command(str(models), state_request(APPS)).get_raw_value()
    done = subprocess.run(command, shell=True, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return LivePrepareState().process(done.stdout.splitlines())
