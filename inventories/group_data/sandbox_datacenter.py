"""Sandbox datacenter nodes (two 80 GB GPUs each): what they serve. Models are the sandbox hub's stand-ins.

Weights: meta-llama/Meta-Llama-3.1-8B-Instruct is gated on the hub: it locks and fetches only with the
sandbox token (the sandbox group data hands it over through LPFLEET_SANDBOX_HF_TOKEN).
"""

gpus = [0, 1]
gpu_memory_gb = 80
ai_models = [
    {"pipeline": "audio-to-text", "model_id": "openai/whisper-large-v3", "warm": True},
    {"pipeline": "llm", "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct", "warm": True},
    {"pipeline": "segment-anything-2", "model_id": "facebook/sam2-hiera-large"},
]
