"""The embedded sandbox fleet as a pyinfra inventory: one host per node container `lpfleet sandbox up` started.

    lpfleet sandbox up && pyinfra -y inventories/sandbox.py deploy.py

Reads .sandbox/<name>/state.json (LPFLEET_SANDBOX picks the sandbox). Every host is in group `sandbox` (the
file name) and in `sandbox_consumer` or `sandbox_datacenter` by its fake GPUs (see lpfleet/sandbox/gpus.py).
"""

from lpfleet.sandbox.state import load_state

_state = load_state()


def _host(node):
    return (node.name, {
        "ssh_hostname": "127.0.0.1",
        "ssh_port": node.ssh_port,
        "ssh_user": "root",
        "ssh_key": _state.ssh_key,
        "ssh_strict_host_key_checking": "no",
        "ssh_known_hosts_file": "/dev/null",
        "sandbox_gpus": [gpu.model_dump() for gpu in node.gpus],
    })


sandbox_consumer = [_host(node) for node in _state.nodes if node.gpu_class == "consumer"]
sandbox_datacenter = [_host(node) for node in _state.nodes if node.gpu_class == "datacenter"]

from lpfleet.fleet import guard_inventory  # noqa: E402

guard_inventory(__file__)
