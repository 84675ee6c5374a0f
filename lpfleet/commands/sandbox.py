"""`lpfleet sandbox up|down|status|ssh`: the embedded sandbox fleet (see docs/sandbox.md)."""

from __future__ import annotations

import argparse
import os
import sys
import time


def register(subparsers) -> None:
    parser = subparsers.add_parser("sandbox", help="the embedded sandbox fleet (Docker containers as GPU nodes)",
                                   description=__doc__)
    sub = parser.add_subparsers(dest="sandbox_command", required=True, metavar="ACTION")
    up = sub.add_parser("up", help="build images, start nodes and services (idempotent)")
    up.add_argument("--nodes", type=int, default=None, help="number of nodes (default 3, or as many as run now)")
    sub.add_parser("down", help="remove the sandbox's containers, network, volumes and state")
    sub.add_parser("status", help="what runs, and how to reach each node")
    ssh = sub.add_parser("ssh", help="open a shell on a node over SSH (or run a command)")
    ssh.add_argument("node", help="node name or index (1, 2, ...)")
    ssh.add_argument("remote_command", nargs=argparse.REMAINDER)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lpfleet.sandbox.state import SandboxError

    try:
        return ACTIONS[args.sandbox_command](args)
    except SandboxError as exc:
        print(f"lpfleet sandbox {args.sandbox_command}: {exc}", file=sys.stderr)
        return 1


def _up(args: argparse.Namespace) -> int:
    from lpfleet.sandbox import fleet
    from lpfleet.sandbox.nodes import inspect_nodes
    from lpfleet.sandbox.state import sandbox_name

    started = time.monotonic()
    nodes = args.nodes
    if nodes is None:  # keep a running sandbox's size
        nodes = max(len(inspect_nodes(sandbox_name())), fleet.DEFAULT_NODES) if _daemon_ok() else fleet.DEFAULT_NODES
    state = fleet.up(nodes=nodes, log=lambda line: print(f"  {line}", flush=True))
    print(f"sandbox {state.name} up in {time.monotonic() - started:.1f} s ({len(state.nodes)} nodes)")
    _print_state(state)
    return 0


def _daemon_ok() -> bool:
    from lpfleet.sandbox.engine import daemon_problem

    return daemon_problem() is None


def _print_state(state) -> None:
    from lpfleet.sandbox.fleet import ssh_command
    from lpfleet.sandbox.state import state_path

    for node in state.nodes:
        gpus = ", ".join(f"{gpu.name} {round(gpu.memory_total_mib / 1024)} GB" for gpu in node.gpus)
        print(f"  {node.name:<28} {node.gpu_class:<10} {gpus}")
        print(f"    {ssh_command(state, node)}")
    if state.hub:
        print(f"  hub  {state.hub.controller_url} (nodes: {state.hub.node_url})")
    if state.apt:
        print(f"  apt  {state.apt.repo_url} key {state.apt.key_fingerprint}")
    print(f"  state {state_path(state.name)}; inventory: pyinfra inventories/sandbox.py ...")


def _down(args: argparse.Namespace) -> int:
    from lpfleet.sandbox import fleet

    fleet.down()
    return 0


def _status(args: argparse.Namespace) -> int:
    from lpfleet.sandbox import fleet
    from lpfleet.sandbox.state import StateMissing, load_state, sandbox_name

    rows = fleet.status()
    name = sandbox_name()
    if not rows:
        print(f"sandbox {name}: nothing runs")
        return 0
    print(f"sandbox {name}:")
    for row in rows:
        print(f"  {row.name:<28} {row.kind:<8} {row.status:<24} {row.ports}")
    try:
        _print_state(load_state(name))
    except StateMissing as exc:
        print(f"  {exc}")
    return 0


def _ssh(args: argparse.Namespace) -> int:
    from lpfleet.sandbox.state import load_state

    state = load_state()
    node = state.node(int(args.node) if args.node.isdigit() else args.node)
    command = ["ssh", "-i", state.ssh_key, "-p", str(node.ssh_port), "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@127.0.0.1", *args.remote_command]
    os.execvp("ssh", command)
    return 1  # not reached


ACTIONS = {"up": _up, "down": _down, "status": _status, "ssh": _ssh}
