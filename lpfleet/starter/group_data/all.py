"""Defaults for every node (pyinfra group `all`). Every key is described in lpfleet's docs/group-data.md;
`lpfleet validate` checks them all without connecting.

Secrets never go here as literals: read them from the controller's environment with env_secret("NAME")
(an unset variable is an error naming it; env_secret("NAME", optional=True) when a fleet may lack it).
"""

from lpfleet.spec import env_secret

ssh_user = "root"

# go-livepeer: an off-chain orchestrator with a co-located AI worker. On-chain: livepeer_network =
# "arbitrum-one-mainnet" and a price on every model (lpfleet validate says which lack one).
livepeer_network = "offchain"
worker_mode = "orchestrator"
worker_image = "livepeer/go-livepeer:latest"
runner_image = "livepeer/ai-runner:latest"
service_addr = "0.0.0.0:8936"
# remote workers (worker_mode = "worker") need the orchestrator secret
orch_secret = env_secret("LPFLEET_ORCH_SECRET", optional=True)

# Host paths: the worker reads its config there, runner containers their weights.
ai_models_path = "/root/.lpData/aiModels.json"
ai_models_dir = "/root/.lpData/models"

# Docker from Docker's repository; the NVIDIA Container Toolkit pinned to an exact package version.
docker_install = "docker-ce"
nvidia_toolkit_version = "1.17.8-1"

# Weights: every node fetches from the hub (weights_mode = "fanout": fetch once, share over the LAN).
# The HF token (gated models) is read on the controller from the variable named here, never stored.
weights_mode = "direct"
hf_token_env = "HF_TOKEN"
models_lock = "models.lock"

rollout_batch_percent = 25
