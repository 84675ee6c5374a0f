"""The fake GPUs each sandbox node reports through its stand-in `nvidia-smi`. Pure: no I/O.

Scheme, by node index (1-based), repeating every three nodes:
  1: one "NVIDIA GeForce RTX 4090", 24 GB            -> class consumer
  2: two "NVIDIA A100-SXM4-80GB", 80 GB each         -> class datacenter
  3: one "NVIDIA GeForce RTX 3090", 24 GB            -> class consumer
so a default 3-node sandbox has two consumer nodes and one datacenter node with two GPUs.
UUIDs are derived from the sandbox and node name: stable across `up` runs, distinct across nodes.
"""

from __future__ import annotations

import uuid
from typing import Literal

from lpfleet.sandbox.state import Gpu

GpuClass = Literal["consumer", "datacenter"]

#: (class, model name, memory MiB as nvidia-smi reports it, GPU count)
SCHEME: tuple[tuple[GpuClass, str, int, int], ...] = (
    ("consumer", "NVIDIA GeForce RTX 4090", 24564, 1),
    ("datacenter", "NVIDIA A100-SXM4-80GB", 81920, 2),
    ("consumer", "NVIDIA GeForce RTX 3090", 24576, 1),
)
_NAMESPACE = uuid.UUID("9b1c3f7e-4a51-4c1b-9a39-6f1d2e7c0a11")


def node_gpus(sandbox: str, node_name: str, index: int) -> tuple[GpuClass, list[Gpu]]:
    """The class and GPUs of node `index` (1-based) per SCHEME."""
    if index < 1:
        raise ValueError(f"node index starts at 1, got {index}")
    gpu_class, model, memory, count = SCHEME[(index - 1) % len(SCHEME)]
    gpus = [
        Gpu(
            index=i,
            uuid=f"GPU-{uuid.uuid5(_NAMESPACE, f'{sandbox}/{node_name}/{i}')}",
            name=model,
            memory_total_mib=memory,
        )
        for i in range(count)
    ]
    return gpu_class, gpus


def gpus_csv(gpus: list[Gpu]) -> str:
    """/etc/lpfleet-sandbox/gpus.csv: exactly what `nvidia-smi --query-gpu=index,uuid,name,memory.total,
    memory.used --format=csv,noheader,nounits` prints on a real node."""
    return "".join(
        f"{gpu.index}, {gpu.uuid}, {gpu.name}, {gpu.memory_total_mib}, {gpu.memory_used_mib}\n" for gpu in gpus
    )
