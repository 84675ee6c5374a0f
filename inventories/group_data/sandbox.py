"""Group data for the sandbox fleet (hosts of inventories/sandbox.py). Values come from the sandbox state.

pyinfra loads every file in group_data/ whatever the inventory, so this file reads the state only when the
inventory has sandbox hosts; otherwise it defines nothing.
"""

from pyinfra import inventory

from lpfleet.sandbox.state import load_state

__state = load_state() if inventory.get_group("sandbox", default=[]) else None

# --- connection (B)
# ssh_* host data is set per host in inventories/sandbox.py (port, key); nothing fleet-wide here.

# --- docker + toolkit (D)

# --- weights (C)

# --- worker + verify (E)
# The go-livepeer stand-in (lpfleet/sandbox/images/go-livepeer), loaded into each node's dockerd; off-chain,
# so no price is required and no chain is contacted. Runners use the ai-runner stand-in's livepeer/* tags.
if __state is not None:
    worker_image = "livepeer/go-livepeer:sandbox"
    livepeer_network = "offchain"
    service_addr = "127.0.0.1:8935"
