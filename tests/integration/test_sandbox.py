"""The sandbox fleet itself: SSH-reachable nodes, fake GPUs, services, idempotent `up`, stand-in images."""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.integration


def test_pyinfra_reaches_every_node_over_ssh(sandbox):
    result = sandbox.pyinfra("exec", "--", "cat /etc/hostname; id -u")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    for node in sandbox.nodes:
        assert f"[{node.name}] {node.name}" in output
        assert f"[{node.name}] 0" in output
    assert re.search(r"server\.shell.*\s3\s+3\s+-", output) or len(sandbox.nodes) != 3, output[-2000:]
