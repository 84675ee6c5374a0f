"""24 GB consumer cards (RTX 3090 / 4090): one warm diffusion model per GPU, the rest cold.

Prices are in wei per pixel (text-to-image, upscale) or per millisecond of audio; JSON numbers,
never strings. A BYOC `url` entry points at an external LLM server on the LAN.
"""

from lpfleet.spec import env_secret

gpu_memory_gb = 24
gpus = [0]
runner_containers_per_gpu = 1

ai_models = [
    # warm: started at boot, never evicted; one GPU slot each
    {
        "pipeline": "text-to-image",
        "model_id": "SG161222/RealVisXL_V4.0_Lightning",
        "warm": True,
        "price_per_unit": 4768371,
        "optimization_flags": {"SFAST": True},
    },
    # cold: started on demand in a free slot, may be evicted when idle
    {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "price_per_unit": 4768371},
    {"pipeline": "image-to-image", "model_id": "timbrooks/instruct-pix2pix", "price_per_unit": 4768371},
    {"pipeline": "upscale", "model_id": "stabilityai/stable-diffusion-x4-upscaler", "price_per_unit": 4768371},
    {"pipeline": "audio-to-text", "model_id": "openai/whisper-large-v3", "price_per_unit": 12882811},
    # BYOC: an external server (its /health must answer 200 within 2 minutes of the worker starting)
    {
        "pipeline": "llm",
        "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct",
        "url": "http://llm-pool.lan:8000",
        "token": env_secret("LPFLEET_BYOC_LLM_TOKEN"),
        "capacity": 4,
        "price_per_unit": 180000000,
    },
]
