"""The worker task through pyinfra's API on @fake hosts, and its pure plan.

The fake connector answers the WorkerContainer fact with lines shaped exactly as its script prints them
(base64 Engine API JSON), and records every command and upload, so tests assert on what would really run:
created when missing, left alone when the label hash and image match, recreated on an image, flag,
aiModels.json or secret change, started when stopped, and the orch secret nowhere but in an upload.
"""

from __future__ import annotations

import base64
import json
import re
import shlex

import pytest
from pydantic import SecretStr
from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.operations import run_ops
from pyinfra.connectors.fake import FakeConnector

from lpfleet.facts.worker import WorkerContainerState, parse_output
from lpfleet.fleet import plan_for_spec
from lpfleet.fleet_plan import PROJECT_ROOT
from lpfleet.operations.worker import plan_action
from lpfleet.render import render_ai_models
from lpfleet.spec import AIModelEntry, NodeSpec, WorkerSpec
from lpfleet.worker_plan import SPEC_LABEL, sha256_text, worker_flags, worker_plan
from tasks.worker import run_ai_worker

SECRET = "s3cr3t-orch-value-123"
IMAGE_ID = "sha256:" + "a" * 64


def spec_for(mode: str = "orchestrator", image: str = "livepeer/go-livepeer:sandbox", secret: str | None = None,
             models: tuple[AIModelEntry, ...] | None = None, gpus=(0, 1), **worker) -> NodeSpec:
    if models is None:
        models = (AIModelEntry(pipeline="text-to-image", model_id="SG161222/RealVisXL_V4.0_Lightning", warm=True),)
    if mode == "worker":
        worker.setdefault("orch_addr", "orch.lan:8935")
    return NodeSpec(
        host="n1", groups=("g",), models=models, gpus=gpus,
        worker=WorkerSpec(mode=mode, image=image, service_addr="127.0.0.1:8935" if mode == "orchestrator" else None,
                          orch_secret=SecretStr(secret) if secret else None, **worker),
    )


def ai_models_sha256(spec: NodeSpec) -> str:
    """The sha256 of the aiModels.json the plan renders for `spec` (the checkout's template)."""
    return sha256_text(render_ai_models(spec, PROJECT_ROOT))


def b64(doc: dict) -> str:
    return base64.b64encode(json.dumps(doc).encode()).decode()


def fact_lines(spec: NodeSpec | None, status: str | None = "running", image_id: str = IMAGE_ID,
               container_image_id: str = IMAGE_ID, label: str | None = None, models: bool = True,
               secret: str | None = None, secret_mode: str = "600") -> list[str]:
    """A node as the WorkerContainer script prints it; `spec` given: its container carries that spec's label."""
    if status is None:
        container = {"message": "No such container: livepeer_ai_worker"}
    else:
        if label is None and spec is not None:
            label = worker_plan(spec, ai_models_sha256(spec)).spec_hash
        container = {"Id": "c" * 64, "Image": container_image_id, "Config": {"Labels": {SPEC_LABEL: label or ""}},
                     "State": {"Status": status, "Running": status == "running", "Restarting": False}}
    lines = [f"@@container {b64(container)}", f"@@image {b64({'Id': image_id})}",
             f"@@models {'present' if models else 'missing'}"]
    if spec is not None and spec.worker.orch_secret:
        lines.append(f"@@secret {sha256_text(secret)} {secret_mode}" if secret else "@@secret - -")
    return lines


class Run:
    def __init__(self, state: State, commands: list[str], uploads: dict[str, bytes], failed: bool,
                 stdins: list | None = None):
        self.state, self.commands, self.uploads, self.failed = state, commands, uploads, failed
        self.stdins = stdins or []  # (command, _stdin) of every command given input

    def changed(self) -> int:
        host = self.state.inventory.get_host("@fake/n1")
        return sum(1 for op in self.state.ops[host].values()
                   if op.operation_meta.is_complete() and op.operation_meta.did_change())


def run(spec: NodeSpec, lines: list[str], monkeypatch) -> Run:
    responses = {"lpfleet-worker-fact": lines}
    inventory = Inventory(([("@fake/n1", {"fake_responses": responses, "fake_delay": 0, "fake_delay_jitter": 0})],
                           {}))
    state = State(inventory, Config())
    uploads: dict[str, bytes] = {}

    def put_file(self, filename_or_io, remote_filename, *args, **kwargs):
        uploads[remote_filename] = filename_or_io.read()
        return True

    monkeypatch.setattr(FakeConnector, "put_file", put_file)
    stdins: list = []
    real_run = FakeConnector.run_shell_command

    def run_shell_command(self, command, *args, **arguments):
        if arguments.get("_stdin") is not None:
            stdins.append((command.get_masked_value() if hasattr(command, "get_masked_value") else command,
                           arguments["_stdin"]))
        return real_run(self, command, *args, **arguments)

    monkeypatch.setattr(FakeConnector, "run_shell_command", run_shell_command)
    connect_all(state)
    add_deploy(state, run_ai_worker, plan_for_spec(spec, state))
    failed = False
    try:
        run_ops(state)
    except PyinfraError:
        failed = True
    host = inventory.get_host("@fake/n1")
    commands = [c for c in host.connector.executed_commands if "lpfleet-worker-fact" not in c]
    return Run(state, commands, uploads, failed or host in state.failed_hosts, stdins)


def run_argv(command: str) -> list[str]:
    """The docker run argv of the create command (after the script and its two positional arguments)."""
    argv = shlex.split(command)
    return argv[argv.index("lpfleet-worker") + 3:]


# --- pure plan ---------------------------------------------------------------------------------------------


def test_orchestrator_flags():
    flags = worker_flags(spec_for())
    assert flags == ["-orchestrator", "-serviceAddr", "127.0.0.1:8935", "-aiWorker", "-network", "offchain",
                     "-aiModels", "/root/.lpData/aiModels.json", "-aiModelsDir", "/root/.lpData/models",
                     "-nvidia", "0,1"]


def test_remote_worker_flags_name_the_secret_file_not_the_secret():
    spec = spec_for("worker", secret=SECRET)
    flags = worker_flags(spec)
    assert flags[:5] == ["-aiWorker", "-network", "offchain", "-orchAddr", "orch.lan:8935"]
    assert flags[flags.index("-orchSecret") + 1] == "/root/.lpData/.orchSecret"
    assert "-orchestrator" not in flags and SECRET not in " ".join(flags)


def test_onchain_prices_and_overrides():
    spec = spec_for(network="arbitrum-one-mainnet", price_per_unit=4768371, pixels_per_unit=1,
                    price_feed_addr="0xfeed", runner_image="reg/ai-runner:1",
                    models=(AIModelEntry(pipeline="text-to-image", model_id="a/b", warm=True, price_per_unit=1),))
    flags = worker_flags(spec)
    assert flags[flags.index("-pricePerUnit") + 1] == "4768371"
    assert flags[flags.index("-priceFeedAddr") + 1] == "0xfeed"
    assert json.loads(flags[flags.index("-aiRunnerImageOverrides") + 1]) == {"default": "reg/ai-runner:1"}


def test_a_small_fallback_price_is_written_without_an_exponent():
    # go-livepeer's -pricePerUnit regex takes no exponent (starter.go:2536-2550); str(1e-07) is "1e-07"
    flags = worker_flags(spec_for(network="arbitrum-one-mainnet", price_per_unit=1e-07, pixels_per_unit=1))
    assert flags[flags.index("-pricePerUnit") + 1] == "0.0000001"


def test_hash_changes_with_each_input_and_only_then():
    spec = spec_for(secret=SECRET)
    base = worker_plan(spec, "m1").spec_hash
    assert worker_plan(spec_for(secret=SECRET), "m1").spec_hash == base
    assert worker_plan(spec, "m2").spec_hash != base  # aiModels.json content
    assert worker_plan(spec_for(secret=SECRET, image="livepeer/go-livepeer:other"), "m1").spec_hash != base
    assert worker_plan(spec_for(secret=SECRET, gpus=(0,)), "m1").spec_hash != base  # flags and --gpus
    assert worker_plan(spec_for(secret="another-secret-456"), "m1").spec_hash != base
    assert SECRET not in repr(worker_plan(spec, "m1"))


def test_cli_port_from_mode_and_extra_flags():
    assert worker_plan(spec_for(), "m").cli_port == 7935
    assert worker_plan(spec_for("worker"), "m").cli_port == 4935
    assert worker_plan(spec_for(extra_flags=("-cliAddr", "127.0.0.1:7000")), "m").cli_port == 7000
    assert worker_plan(spec_for(extra_flags=("-cliAddr=0.0.0.0:7001", "-v", "6")), "m").cli_port == 7001


def test_fact_parses_absent_and_present():
    absent = parse_output(fact_lines(None, status=None))
    assert absent.docker and not absent.exists and absent.image_id == IMAGE_ID
    present = parse_output(fact_lines(spec_for(), status="exited"))
    assert present.exists and present.status == "exited" and present.labels[SPEC_LABEL]
    assert parse_output(["@@nodocker", "@@models missing"]) == WorkerContainerState()


def test_plan_actions():
    spec = spec_for()
    plan = worker_plan(spec, ai_models_sha256(spec))
    assert plan_action(plan, parse_output(fact_lines(spec)))[0] == "none"
    assert plan_action(plan, parse_output(fact_lines(spec, status=None)))[0] == "create"
    assert plan_action(plan, parse_output(fact_lines(spec, label="old")))[0] == "recreate"
    assert plan_action(plan, parse_output(fact_lines(spec, image_id="sha256:" + "b" * 64)))[0] == "recreate"
    assert plan_action(plan, parse_output(fact_lines(spec, status="exited")))[0] == "start"
    assert plan_action(plan, parse_output(fact_lines(spec, status="restarting")))[0] == "none"


# --- through pyinfra ---------------------------------------------------------------------------------------


def test_converged_node_is_no_changes(monkeypatch):
    spec = spec_for()
    result = run(spec, fact_lines(spec), monkeypatch)
    assert not result.failed and result.commands == [] and result.changed() == 0


def test_missing_container_is_created(monkeypatch):
    spec = spec_for()
    result = run(spec, fact_lines(spec, status=None), monkeypatch)
    command, ready = result.commands
    assert "lpfleet-worker-ready livepeer_ai_worker 7935 230" in ready  # one warm runner: 30 + 200 s
    argv = run_argv(command)
    assert argv[:2] == ["--label", f"{SPEC_LABEL}={worker_plan(spec, ai_models_sha256(spec)).spec_hash}"]
    assert argv[argv.index("--network") + 1] == "host"
    assert "/var/run/docker.sock:/var/run/docker.sock" in argv
    assert "/root/.lpData:/root/.lpData" in argv
    assert argv[argv.index("--gpus") + 1] == '"device=0,1"'
    image_at = argv.index("livepeer/go-livepeer:sandbox")
    assert argv[image_at + 1:] == worker_flags(spec)
    assert result.changed() == 1


def test_changed_models_recreate(monkeypatch):
    old = spec_for()
    new = spec_for(models=(AIModelEntry(pipeline="upscale", model_id="stabilityai/stable-diffusion-x4-upscaler",
                                        warm=True),))
    result = run(new, fact_lines(old), monkeypatch)
    command, _ready = result.commands
    assert "docker stop --time 60" in command and "docker run -d" in command


def test_stopped_worker_is_started(monkeypatch):
    spec = spec_for()
    result = run(spec, fact_lines(spec, status="exited"), monkeypatch)
    assert result.commands[0] == "docker start livepeer_ai_worker"
    assert "lpfleet-worker-ready" in result.commands[1]


def test_secret_written_from_stdin_0600_and_never_in_a_command(monkeypatch):
    """No pyinfra upload (under sudo that passes through a 0644 file in /tmp): the bytes go on stdin."""
    import base64

    spec = spec_for("worker", secret=SECRET)
    result = run(spec, fact_lines(spec, status=None), monkeypatch)
    assert result.uploads == {}
    [(command, stdin)] = [(c, i) for c, i in result.stdins if "/root/.lpData/.orchSecret" in c]
    assert base64.b64decode(stdin) == SECRET.encode()
    assert "umask 077" in command and re.search(r"lpfleet-write /root/\.lpData/\.orchSecret '' 600", command)
    assert all(SECRET not in command for command in result.commands)
    assert not result.failed


def test_secret_in_place_is_left_alone(monkeypatch):
    spec = spec_for("worker", secret=SECRET)
    result = run(spec, fact_lines(spec, secret=SECRET), monkeypatch)
    assert result.commands == [] and result.uploads == {}
    wrong_mode = run(spec, fact_lines(spec, secret=SECRET, secret_mode="644"), monkeypatch)
    assert wrong_mode.commands == ["chmod 600 /root/.lpData/.orchSecret"] and wrong_mode.uploads == {}


@pytest.mark.parametrize("mode", ["orchestrator", "worker"])
def test_no_secret_anywhere_in_the_run(monkeypatch, mode, capsys):
    spec = spec_for(mode, secret=SECRET)
    result = run(spec, fact_lines(spec, status=None, secret="old-secret-value"), monkeypatch)
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert all(SECRET not in c for c in result.commands)
