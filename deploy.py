"""The whole converge, in order. Every host's spec was validated before any host was touched."""

from pyinfra import host

from lpfleet.fleet import node_spec
from tasks.docker_engine import install_docker_engine
from tasks.models_config import write_ai_models_config
from tasks.nvidia_toolkit import install_nvidia_toolkit
from tasks.verify import verify_node
from tasks.weights import prefetch_weights
from tasks.worker import run_ai_worker

spec = node_spec(host)

install_docker_engine(spec)
install_nvidia_toolkit(spec)
write_ai_models_config(spec)
prefetch_weights(spec)
run_ai_worker(spec)
verify_node(spec)
