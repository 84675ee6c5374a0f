"""The weights step's prune operation through pyinfra's API against `@fake` hosts answering the prune scan:
a clean node is a no-op, a node with an unlocked snapshot gets one `remove` command naming exactly the plan's
paths."""

from __future__ import annotations

import base64
import json
import re
import shlex

from pyinfra.api import Config, Inventory, State
from pyinfra.api.connect import connect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.operations import run_ops

from lpfleet.facts.prune import MARKER
from lpfleet.operations.prune import weights_pruned
from tests.unit.test_prune import FOLDER, OLD, locked, repo_scan


def run(scan: dict) -> tuple[State, list[str]]:
    """Run the operation on a fake node whose scan answers `scan`; the commands it ran (the scan excepted)."""
    responses = {
        re.compile(r"^if command -v python3"): [MARKER + json.dumps(scan)],
        re.compile(r" remove "): [],
    }
    hosts = [("@fake/node-1", {"fake_responses": responses, "fake_delay": 0, "fake_delay_jitter": 0})]
    state = State(Inventory((hosts, {})), Config())
    connect_all(state)

    def deploy_prune():
        weights_pruned(name="Weights: prune", models=[locked()], models_dir="/models")

    add_deploy(state, deploy_prune)
    run_ops(state)
    commands = [
        c
        for c in state.inventory.get_host("@fake/node-1").connector.executed_commands
        if "command -v python3" not in c
    ]
    return state, commands


def removed_paths(commands: list[str]) -> list[str]:
    remove = next(c for c in commands if " remove " in c)
    argv = shlex.split(remove)
    request = argv[argv.index("remove") + 1]
    return json.loads(base64.b64decode(request))["paths"]


def test_clean_node_is_a_noop():
    _state, commands = run({"exists": True, "repos": {FOLDER: repo_scan()}})
    assert commands == []


def test_unlocked_snapshot_is_removed_with_one_command():
    _state, commands = run(
        {"exists": True, "repos": {FOLDER: repo_scan(extra_snapshots=(OLD,), records=(OLD,))}}
    )
    paths = removed_paths(commands)
    assert f"{FOLDER}/snapshots/{OLD}" in paths and f".lpfleet/verified/{FOLDER}/{OLD}.json" in paths
    assert all(p.startswith((FOLDER + "/", ".lpfleet/verified/")) for p in paths)
