"""aiModels.json on sandbox nodes over real SSH/SFTP: written 0600 and atomically, second run 0 changes, a changed
token rewrites it, and neither the token nor an old one shows in pyinfra's output, with --diff and -vvv included.

The file goes to a path of its own (/root/.lpData-models-config-test/) so the fleet's real aiModels.json is untouched.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

pytestmark = pytest.mark.integration

TARGET = "/root/.lpData-models-config-test/sub/aiModels.json"
DEPLOY = f'''
import os

from pydantic import SecretStr
from pyinfra import host

from lpfleet.fleet import node_plan, plan_for_spec
from lpfleet.spec import AIModelEntry
from tasks.models_config import write_ai_models_config

spec = node_plan(host).spec
byoc = AIModelEntry(pipeline="llm", model_id="lpfleet-test/byoc", url="http://byoc.lan:8000",
                    token=SecretStr(os.environ["LPFLEET_TEST_BYOC_TOKEN"]), capacity=2, price_per_unit=1)
write_ai_models_config(plan_for_spec(spec.model_copy(update={{"models": spec.models + (byoc,), "ai_models_path": {TARGET!r}}}),
                                     host.state))
'''


def changed_operations(output: str) -> int:
    match = re.search(r"Grand total\s+\d+\s+(\S+)\s+(\S+)\s+\S+", output)
    assert match, output[-3000:]
    return 0 if match.group(1) == "-" else int(match.group(1))


@pytest.fixture(scope="module")
def deploy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("models_config") / "models_config_deploy.py"
    path.write_text(DEPLOY)
    return path


def test_models_config_over_ssh(sandbox, deploy_file):
    node = sandbox.nodes[0]
    first, second = "tok-" + uuid.uuid4().hex, "tok-" + uuid.uuid4().hex

    def deploy(token: str, *args: str):
        result = sandbox.pyinfra(str(deploy_file), "--limit", node.name, *args,
                                 env={"LPFLEET_TEST_BYOC_TOKEN": token})
        output = (result.stdout or "") + (result.stderr or "")
        assert result.returncode == 0, output[-4000:]
        return output

    sandbox.exec(node, f"rm -rf {TARGET.rsplit('/', 2)[0]}")
    out1 = deploy(first)
    assert changed_operations(out1) == 1
    rc, mode = sandbox.exec(node, f"stat -c %a {TARGET}")
    assert (rc, mode.strip()) == (0, "600")
    rc, text = sandbox.exec(node, f"cat {TARGET}")
    assert json.loads(text)[-1]["token"] == first

    out2 = deploy(first, "--diff")
    assert changed_operations(out2) == 0

    out3 = deploy(second, "--diff", "-vvv")
    assert changed_operations(out3) == 1
    assert '"token": "***"' in out3  # the diff was shown, masked on both sides
    rc, text = sandbox.exec(node, f"cat {TARGET}")
    assert json.loads(text)[-1]["token"] == second
    rc, leftovers = sandbox.exec(node, f"ls -A {TARGET.rsplit('/', 1)[0]}")
    assert leftovers.split() == ["aiModels.json"]

    for output in (out1, out2, out3):
        assert first not in output and second not in output
    sandbox.exec(node, f"rm -rf {TARGET.rsplit('/', 2)[0]}")
