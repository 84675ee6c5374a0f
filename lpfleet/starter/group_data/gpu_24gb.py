"""24 GB cards (RTX 3090 / 4090): what these nodes serve, as go-livepeer's aiModels.json entries.

One warm model per GPU slot (GPUs x runner_containers_per_gpu); the others start on demand. Prices are JSON
numbers (wei per unit), never strings. `lpfleet lint` and `lpfleet validate` explain any mistake.
"""

gpus = [0]
gpu_memory_gb = 24
runner_containers_per_gpu = 1

ai_models = [
    {
        "pipeline": "text-to-image",
        "model_id": "ByteDance/SDXL-Lightning",
        "warm": True,
        "price_per_unit": 4768371,
    },
    {
        "pipeline": "upscale",
        "model_id": "stabilityai/stable-diffusion-x4-upscaler",
        "price_per_unit": 4768371,
    },
]
