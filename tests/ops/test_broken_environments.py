"""Every `lpfleet` command through a table of broken environments: a message naming the problem, the contract's
exit code, never a Python traceback. All network traffic goes to 127.0.0.1 (port 9: nothing listens)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

LPFLEET = str(Path(sys.executable).parent / "lpfleet")
REFUSED = "http://127.0.0.1:9"  # connection refused at once
MODEL = "ByteDance/SDXL-Lightning"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("broken")
    (root / "afile").write_text("not a folder\n")
    (root / "empty_inventory.py").write_text("# no hosts\n")
    (root / "raising_inventory.py").write_text("raise RuntimeError('boom')\n")
    (root / "nan.json").write_text(
        '[{"pipeline": "text-to-image", "model_id": "%s", "price_per_unit": NaN}]' % MODEL
    )
    (root / "many.json").write_text(json.dumps([1] * 5000))
    (root / "logdir").mkdir()
    fleet = root / "fleet"
    subprocess.run([LPFLEET, "init", str(fleet)], check=True, capture_output=True, timeout=60)
    (fleet / "unreachable.py").write_text(
        "from lpfleet.fleet import guard_inventory\n"
        "gpu_24gb = [('gpu-x.invalid', {'ssh_hostname': '127.0.0.1', 'ssh_port': 9})]\n"
        "guard_inventory(__file__)\n"
    )
    return root


# (id, command line, extra env, allowed exit codes, a phrase the message must hold)
CASES = [
    ("validate-missing", ["validate", "nope.py"], {}, {1}, "nope.py: no such inventory file"),
    ("validate-folder", ["validate", "logdir"], {}, {1}, "is a folder, not an inventory file"),
    ("validate-no-hosts", ["validate", "empty_inventory.py"], {}, {1}, "holds no host"),
    ("validate-raises", ["validate", "raising_inventory.py"], {}, {1}, "RuntimeError: boom"),
    (
        "validate-data-without-equals",
        ["validate", "--data", "foo", "fleet/inventory.py"],
        {},
        {2},
        "not KEY=VALUE",
    ),
    ("validate-json-missing", ["validate", "--json", "nope.py"], {}, {1}, '"ok": false'),
    ("render-missing", ["render", "nope.py", "gpu-01.example.net"], {}, {1}, "no such inventory file"),
    ("render-unknown-host", ["render", "fleet/inventory.py", "nobody"], {}, {1}, "no host named 'nobody'"),
    ("lock-missing", ["lock", "inventroy.py"], {}, {1}, "no such inventory file"),
    ("lock-no-hosts", ["lock", "empty_inventory.py"], {}, {1}, "holds no host"),
    ("lock-check-missing", ["lock", "--check", "inventroy.py"], {}, {1}, "no such inventory file"),
    (
        "lock-hub-refused",
        ["lock", "fleet/inventory.py", "--data", f"hf_lock_endpoint={REFUSED}"],
        {},
        {1, 2},
        "127.0.0.1",
    ),
    (
        "prefetch-hub-refused",
        ["prefetch", MODEL, "--models-dir", "models"],
        {"HF_ENDPOINT": REFUSED},
        {1, 2},
        "",
    ),
    (
        "prefetch-endpoint-not-a-url",
        ["prefetch", MODEL, "--models-dir", "models"],
        {"HF_ENDPOINT": "not-a-url"},
        {1, 2},
        "",
    ),
    (
        "prefetch-bad-id",
        ["prefetch", "a/b/c", "--models-dir", "models"],
        {"HF_ENDPOINT": REFUSED},
        {1, 2},
        "a/b/c",
    ),
    (
        "prefetch-url-as-id",
        ["prefetch", f"https://huggingface.co/{MODEL}", "--models-dir", "models"],
        {"HF_ENDPOINT": REFUSED},
        {1, 2},
        "",
    ),
    (
        "prefetch-models-dir-is-a-file",
        ["prefetch", MODEL, "--models-dir", "afile"],
        {"HF_ENDPOINT": REFUSED},
        {1, 2},
        "",
    ),
    (
        "prefetch-models-dir-uncreatable",
        ["prefetch", MODEL, "--models-dir", "/proc/lpfleet-nope/models"],
        {"HF_ENDPOINT": REFUSED},
        {1, 2},
        "",
    ),
    ("lint-nan", ["lint", "nan.json"], {}, {1}, "price_per_unit: NaN is not JSON"),
    ("lint-missing", ["lint", "nope.json"], {}, {1}, "cannot read: No such file or directory"),
    ("lint-folder", ["lint", "logdir"], {}, {1}, "cannot read: Is a directory"),
    ("diagnose-folder", ["diagnose", "logdir"], {}, {2}, "cannot read logdir"),
    ("diagnose-missing", ["diagnose", "nope.log"], {}, {2}, "cannot read nope.log"),
    ("init-onto-a-file", ["init", "afile"], {}, {1}, "is a file, not a folder"),
    ("init-uncreatable", ["init", "/proc/lpfleet-nope"], {}, {1}, "/proc/lpfleet-nope"),
    ("init-existing-fleet", ["init", "fleet"], {}, {1}, "already has inventory.py"),
    ("verify-missing", ["verify", "nope.py"], {}, {2}, "nope.py"),
    (
        "verify-unreachable",
        ["verify", "fleet/unreachable.py", "--deploy", "fleet/verify.py"],
        {},
        {2},
        "UNKNOWN  could not check: Could not connect ([Errno None] Unable to connect to port 9 on 127.0.0.1)",
    ),
    (
        "verify-no-hosts",
        ["verify", "empty_inventory.py", "--deploy", "fleet/verify.py"],
        {},
        {2},
        "holds no host",
    ),
    (
        "rollout-no-hosts",
        ["rollout", "empty_inventory.py", "--dry", "--deploy", "fleet/deploy.py"],
        {},
        {2},
        "holds no host",
    ),
    ("rollout-missing", ["rollout", "nope.py", "--dry"], {}, {2}, "nope.py"),
    ("bootstrap-no-inventory", ["bootstrap", "root@127.0.0.1", "--group", "nosuchgroup"], {}, {1, 2}, ""),
    (
        "sandbox-no-docker",
        ["sandbox", "status"],
        {"DOCKER_HOST": "unix:///nonexistent/docker.sock"},
        {1, 2},
        "Docker",
    ),
    ("no-command", [], {}, {2}, "COMMAND"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_no_traceback_reaches_the_operator(scratch, case):
    _, argv, env, codes, phrase = case
    environment = dict(os.environ, HF_HUB_OFFLINE="0", PYINFRA_PROGRESS="off", **env)
    environment.pop("HF_TOKEN", None)
    proc = subprocess.run(
        [LPFLEET, *argv], cwd=scratch, env=environment, capture_output=True, text=True, timeout=180
    )
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode in codes, (proc.returncode, output)
    assert output.strip(), "a failure says something"
    assert phrase in output, output
    if "--json" not in argv:
        assert len(proc.stderr.strip().splitlines()) <= 12, proc.stderr  # a message, not a dump


def test_debug_shows_the_stack(scratch):
    env = dict(os.environ, HF_ENDPOINT=REFUSED)
    proc = subprocess.run(
        [LPFLEET, "prefetch", "a/b/c", "--models-dir", "models", "--debug"],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "Traceback" not in proc.stderr:  # the command caught it itself with its own message: nothing to show
        assert proc.returncode in (1, 2) and "a/b/c" in proc.stderr
    else:
        assert proc.returncode in (1, 2) and proc.stderr.strip().splitlines()[-1].startswith(
            "lpfleet prefetch: "
        )


@pytest.mark.parametrize(
    "argv", [["lint", "many.json"], ["validate", "--json", "fleet/inventory.py"], ["init", "--help"]]
)
def test_a_closed_pipe_is_not_a_traceback(scratch, argv):
    """`lpfleet lint ... | head -1`: the reader goes away after one line."""
    proc = subprocess.Popen([LPFLEET, *argv], cwd=scratch, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err, err


def test_version():
    proc = subprocess.run([LPFLEET, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith("lpfleet ") and proc.stdout.split()[1][0].isdigit()
