"""The whole converge, in order. Every host's spec was validated before any host was touched.

`pyinfra -y INVENTORY deploy.py` converges every host at once; the last step verifies each host (a failed check
fails the host) and the table of every host's checks follows pyinfra's results. `lpfleet rollout INVENTORY`
runs this same file batch by batch (`--limit`), gating each batch on verification (docs/rollout.md).
"""

from pyinfra import host

from lpfleet.fleet import node_plan
from lpfleet.operations.node_facts import prefetch_node_facts
from lpfleet.operations.op_order import register_deploy_file
from tasks.docker_engine import install_docker_engine
from tasks.models_config import write_ai_models_config
from tasks.nvidia_toolkit import install_nvidia_toolkit
from tasks.verify import verify_node
from tasks.weights import prefetch_weights
from tasks.worker import run_ai_worker

register_deploy_file(__file__)  # pyinfra reads the stack per operation: keep inspect's lookup cached
plan = node_plan(host)  # spec, rendered aiModels.json, models.lock: made once per host per run
prefetch_node_facts(host, plan)  # every step's facts of this host in one round-trip (lpfleet/facts/batch.py)

install_docker_engine(plan)
install_nvidia_toolkit(plan)
write_ai_models_config(plan)
prefetch_weights(plan)
run_ai_worker(plan)
verify_node(plan)
