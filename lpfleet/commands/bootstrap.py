"""`lpfleet bootstrap user@host --group G [--inventory INV]`: one bare box to a verified serving node.

Writes a one-host inventory beside INV (so INV's group_data/ - all.py and the named groups - applies to the
box exactly as to the fleet, and relative paths such as models.lock resolve the same), runs
`pyinfra -y <it> deploy.py`, then verifies the box (waiting for its runners to load) and prints the table.
The temporary inventory is removed afterwards. Exit 0 serving and healthy, 1 deploy or verification failed,
2 could not run.

The plain-pyinfra equivalent is the same one-host inventory file, written by hand:
    boxes = [("gpu-box-7", {"ssh_hostname": "10.0.0.7", "ssh_user": "root"})]   # in inventories/box.py
    pyinfra -y inventories/box.py deploy.py        # with `box` data in group_data/, or list it in a group
"""

from __future__ import annotations

import argparse
import keyword
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from lpfleet.commands.rollout import default_deploy
from lpfleet.commands.verify import default_verify_deploy, pyinfra_command, verify_fleet, write_reports
from lpfleet.report import exit_code, to_table

GROUP_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def parse_target(target: str, port: int | None) -> tuple[str, str, int | None]:
    """user@host[:port] -> (user, host, port); the user defaults to root."""
    user, _, rest = target.rpartition("@")
    user = user or "root"
    host = rest
    if rest.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
        host, _, text = rest.partition(":")
        if not text.isdigit():
            raise ValueError(f"{target}: port {text!r} is not a number")
        port = port or int(text)
    if not host:
        raise ValueError(f"{target}: no host name")
    return user, host, port


def inventory_source(name: str, data: dict, groups: list[str]) -> str:
    """A pyinfra inventory putting one host into `groups` (each a Python identifier, as group files are)."""
    for group in groups:
        if not GROUP_NAME.match(group) or keyword.iskeyword(group):
            raise ValueError(
                f"--group {group!r}: a group name is a Python identifier (its group_data/<name>.py)"
            )
    lines = ['"""Written by `lpfleet bootstrap` for one run; removed afterwards."""', ""]
    lines.append(f"_host = ({name!r}, {data!r})")
    for group in dict.fromkeys(groups):
        lines.append(f"{group} = [_host]")
    lines += ["", "from lpfleet.fleet import guard_inventory  # noqa: E402", "", "guard_inventory(__file__)"]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        user, hostname, port = parse_target(args.target, args.port)
    except ValueError as exc:
        print(f"lpfleet bootstrap: {exc}", file=sys.stderr)
        return 2
    inventory = Path(args.inventory)
    if not inventory.is_file():
        print(
            f"lpfleet bootstrap: inventory {inventory} not found (its group_data/ describes the groups)",
            file=sys.stderr,
        )
        return 2
    deploy = Path(args.deploy) if args.deploy else default_deploy()
    name = args.name or hostname
    data: dict = {"ssh_hostname": hostname, "ssh_user": user}
    if port:
        data["ssh_port"] = port
    if args.ssh_key:
        data["ssh_key"] = str(Path(args.ssh_key).resolve())
    if args.insecure_host_key:
        data.update(ssh_strict_host_key_checking="no", ssh_known_hosts_file="/dev/null")
    groups = list(args.group)
    if inventory.stem not in groups:
        groups.insert(
            0, inventory.stem
        )  # the inventory file's own group (e.g. `sandbox`) applies as in the fleet
    try:
        source = inventory_source(name, data, groups)
    except ValueError as exc:
        print(f"lpfleet bootstrap: {exc}", file=sys.stderr)
        return 2
    one_host = inventory.parent / f"_bootstrap_{uuid.uuid4().hex[:8]}.py"
    one_host.write_text(source)
    try:
        print(
            f"--> bootstrap {name} ({user}@{hostname}{':' + str(port) if port else ''}) in groups "
            f"{', '.join(groups)}: deploy",
            file=sys.stderr,
            flush=True,
        )
        env = dict(os.environ, LPFLEET_VERIFY_TABLE="0")
        deployed = subprocess.run([*pyinfra_command(), "-y", str(one_host), str(deploy)], env=env)
        print(
            f"--> bootstrap {name}: verify (waiting up to {args.wait:.0f} s for runners to load)",
            file=sys.stderr,
            flush=True,
        )
        outcome = verify_fleet(
            str(one_host),
            default_verify_deploy(),
            None,
            args.wait,
            say=lambda text: print(f"--> {text}", file=sys.stderr, flush=True),
        )
    finally:
        one_host.unlink(missing_ok=True)
    if not outcome.ok:
        sys.stderr.write(outcome.output)
        print("lpfleet bootstrap: verification could not run (pyinfra's output is above)", file=sys.stderr)
        return 2
    sys.stdout.write(to_table(outcome.results, elapsed_s=outcome.elapsed_s))
    write_reports(outcome.results, outcome.elapsed_s, str(inventory), args.json, args.junit)
    code = exit_code(outcome.results)
    if deployed.returncode != 0 and code == 0:
        print(
            "lpfleet bootstrap: the deploy reported errors (see above) although verification passed",
            file=sys.stderr,
        )
        return 1
    return code


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bootstrap",
        help="take one bare Debian/Ubuntu box (user@host) to a verified serving node of a group",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("target", help="user@host[:port] reachable by SSH (root, or a user with sudo)")
    parser.add_argument(
        "--group",
        action="append",
        required=True,
        help="group(s) the box joins: their group_data/<group>.py applies (repeatable)",
    )
    parser.add_argument(
        "--inventory",
        default="inventory.py",
        help="the fleet's inventory file whose group_data/ applies (default inventory.py)",
    )
    parser.add_argument("--name", help="host name in the reports (default: the host part of the target)")
    parser.add_argument("--port", type=int, help="SSH port")
    parser.add_argument("--ssh-key", help="private key file for SSH")
    parser.add_argument(
        "--insecure-host-key",
        action="store_true",
        help="do not check the SSH host key (a throw-away box or the sandbox only)",
    )
    parser.add_argument("--wait", type=float, default=300.0, help="seconds the runners may take to load")
    parser.add_argument("--deploy", help="deploy.py to run (default: ./deploy.py or the project's)")
    parser.add_argument("--json", metavar="FILE", help="write the JSON report")
    parser.add_argument("--junit", metavar="FILE", help="write JUnit XML")
    parser.set_defaults(func=run)
