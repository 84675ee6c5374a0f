"""Group data for the sandbox fleet (hosts of inventories/sandbox.py). Values come from the sandbox state.

pyinfra loads every file in group_data/ whatever the inventory, so this file reads the state only when the
inventory has sandbox hosts; otherwise it defines nothing.
"""

from pyinfra import inventory

from lpfleet.sandbox.state import load_state

__state = load_state() if inventory.get_group("sandbox", default=[]) else None

# --- connection
# ssh_* host data is set per host in inventories/sandbox.py (port, key); nothing fleet-wide here.

# --- docker + toolkit
# Debian's docker.io (its .debs are baked into the node image: no network needed), and the sandbox's signed
# apt repository standing in for NVIDIA's, trusted only with the fingerprint `up` read from its container.
# Pinned to the oldest version it carries, so tests can show an upgrade of all four packages.
if __state is not None:
    docker_install = "docker.io"
    docker_restart_batch_size = 2
if __state is not None and __state.apt is not None:
    from lpfleet.sandbox.aptrepo import VERSIONS as __APT_VERSIONS

    nvidia_repo_url = __state.apt.repo_url
    nvidia_key_url = __state.apt.key_url
    nvidia_key_fingerprint = __state.apt.key_fingerprint
    nvidia_toolkit_version = __APT_VERSIONS[0]

# --- weights
# The sandbox hub stands in for huggingface.co: nodes reach it by container name, `lpfleet lock` on the controller
# through its published 127.0.0.1 port. Its gated repos open with the per-sandbox token kept in the state (0600):
# the controller reads it from LPFLEET_SANDBOX_HF_TOKEN, set here from the state when unset. models.lock lives
# with the sandbox's state (it pins this hub's commits). Fan-out: each model crosses the "WAN" once per fleet.
if __state is not None and __state.hub is not None:
    import os as __os

    from lpfleet.sandbox.state import state_dir as __state_dir

    hf_endpoint = __state.hub.node_url
    hf_lock_endpoint = __state.hub.controller_url
    hf_token_env = "LPFLEET_SANDBOX_HF_TOKEN"
    if __state.hub.token:
        __os.environ.setdefault(hf_token_env, __state.hub.token)
    models_lock = str(__state_dir(__state.name) / "models.lock")
    weights_mode = "fanout"

# --- worker + verify
# The go-livepeer stand-in (lpfleet/sandbox/images/go-livepeer), loaded into each node's dockerd; off-chain,
# so no price is required and no chain is contacted. Runners use the ai-runner stand-in's livepeer/* tags.
if __state is not None:
    worker_image = "livepeer/go-livepeer:sandbox"
    livepeer_network = "offchain"
    service_addr = "127.0.0.1:8935"
    # verify: stand-in runners answer /health within milliseconds on the node, so a short timeout keeps a verify
    # of a fleet with a hung runner short; the last 100 log lines hold every stand-in failure signature.
    health_timeout_s = 2.0
    verify_log_lines = 100
