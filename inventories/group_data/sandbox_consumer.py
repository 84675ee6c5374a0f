"""Sandbox consumer nodes (one 24 GB GPU each): what they serve. Models are the sandbox hub's small stand-ins.

Weights: ByteDance/SDXL-Lightning also loads stabilityai/stable-diffusion-xl-base-1.0 (an extra model the
catalog knows): both land in the models dir; the two consumer nodes share them, so fan-out mode fetches them
upstream once.
"""

gpus = [0]
gpu_memory_gb = 24
ai_models = [
    {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "warm": True},
    {"pipeline": "image-to-text", "model_id": "Salesforce/blip-image-captioning-large"},
]
