"""Fleet defaults for every node (pyinfra group `all`). Keys: docs/group-data.md.

Secrets never appear here as literals: BYOC tokens and the orchestrator secret come from the
controller's environment through `env_secret` (printed as **********; an unset variable is an error naming it,
unless the call says `optional=True`), the HuggingFace token from the variable named by `hf_token_env`.
"""

from lpfleet.spec import env_secret

ssh_user = "root"

# go-livepeer: an on-chain orchestrator with a co-located AI worker.
livepeer_network = "arbitrum-one-mainnet"
worker_mode = "orchestrator"
worker_image = "livepeer/go-livepeer:v0.8.8"
runner_image = "livepeer/ai-runner:latest"
service_addr = "0.0.0.0:8936"
# only remote workers (worker_mode = "worker") need the orchestrator secret
orch_secret = env_secret("LPFLEET_ORCH_SECRET", optional=True)
pixels_per_unit = 1

# Where the worker reads its config and the runners their weights (host paths: docker-out-of-docker).
ai_models_path = "/root/.lpData/aiModels.json"
ai_models_dir = "/root/.lpData/models"

# Docker from Docker's repository; the NVIDIA toolkit pinned, its repo key checked by fingerprint.
docker_install = "docker-ce"
docker_restart_batch_size = 2
nvidia_toolkit_version = "1.17.8-1"

# Weights: fetch once on the controller side of the LAN and fan out to the nodes.
weights_mode = "fanout"
hf_token_env = "HF_TOKEN"
models_lock = "models.lock"

rollout_batch_percent = 25
rollout_fail_threshold = 0
