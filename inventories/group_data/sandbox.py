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
