"""80 GB datacenter cards (A100 / H100 80 GB), four per node: several warm models, larger ones too.

Uses the one-entry-per-line template so a diff of the rendered file shows which model changed.
The image-to-video entry is priced in USD, so this group configures a price feed.
"""

from lpfleet.spec import env_secret

gpu_memory_gb = 80
gpus = [0, 1, 2, 3]
runner_containers_per_gpu = 1
ai_models_template = "templates/aiModels.compact.json.j2"
price_feed_addr = "0x639Fe6ab55C921f74e7fac1ee960C0B6293ba612"  # Chainlink ETH/USD on Arbitrum One

ai_models = [
    {"pipeline": "text-to-image", "model_id": "ByteDance/SDXL-Lightning", "warm": True, "price_per_unit": 4768371},
    {
        "pipeline": "llm",
        "model_id": "meta-llama/Meta-Llama-3.1-8B-Instruct",
        "warm": True,
        "price_per_unit": 180000000,
        # values are strings: a JSON number here makes go-livepeer reject the whole file
        "optimization_flags": {"MAX_MODEL_LEN": "8192", "GPU_MEMORY_UTILIZATION": "0.85"},
    },
    {
        "pipeline": "image-to-video",
        "model_id": "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
        "warm": True,
        "price_per_unit": 0.0000003,
        "currency": "USD",
    },
    {"pipeline": "segment-anything-2", "model_id": "facebook/sam2-hiera-large", "price_per_unit": 5000000},
    {"pipeline": "image-to-text", "model_id": "Salesforce/blip-image-captioning-large", "price_per_unit": 5000000},
    {"pipeline": "text-to-speech", "model_id": "parler-tts/parler-tts-large-v1", "price_per_unit": 5000000},
    {"pipeline": "live-video-to-video", "model_id": "comfyui", "price_per_unit": 0},
    # BYOC: a per-gateway price for an external image server on the LAN
    {
        "pipeline": "text-to-image",
        "model_id": "black-forest-labs/FLUX.1-dev",
        "url": "https://flux.lan:8443",
        "token": env_secret("LPFLEET_BYOC_FLUX_TOKEN"),
        "capacity": 2,
        "price_per_unit": 9000000,
        "gateway": "default",
    },
]
