"""The node's GPUs as the NVIDIA driver reports them, and whether a kernel driver is really behind them.

`nvidia-smi` answers from the driver; a GPU can only be handed to a container when the driver's device nodes
(`/dev/nvidiaN`) exist. The sandbox's `nvidia-smi` is a stand-in without them, so `real_driver` is False there,
which is how checks that need a real GPU know to skip (and say so) instead of pretending.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra.api import FactBase

QUERY = "index,uuid,name,memory.total,memory.used"


@dataclass(frozen=True)
class Gpu:
    index: int
    uuid: str
    name: str
    memory_total_mib: int
    memory_used_mib: int


@dataclass(frozen=True)
class NodeGpus:
    gpus: tuple[Gpu, ...] = ()
    device_nodes: int = 0  # /dev/nvidia0, /dev/nvidia1, ...
    smi_present: bool = False

    @property
    def real_driver(self) -> bool:
        return self.device_nodes > 0


class NvidiaGpus(FactBase[NodeGpus]):
    """GPUs from `nvidia-smi --query-gpu=index,uuid,name,memory.total,memory.used`, and the device nodes."""

    def command(self) -> str:
        return (
            "echo \"@@devices $(ls -1 /dev/ 2>/dev/null | grep -c '^nvidia[0-9][0-9]*$')\"; "
            "if command -v nvidia-smi >/dev/null 2>&1; then echo @@smi; "
            f"nvidia-smi --query-gpu={QUERY} --format=csv,noheader,nounits 2>/dev/null || true; fi"
        )

    @staticmethod
    def default() -> NodeGpus:
        return NodeGpus()

    def process(self, output: list[str]) -> NodeGpus:
        return parse_gpus(output)


def parse_gpus(output: list[str]) -> NodeGpus:
    """The fact's lines -> NodeGpus (pure; malformed GPU lines are skipped)."""
    devices = 0
    smi = False
    gpus = []
    for line in output:
        if line.startswith("@@devices "):
            devices = int(line.split()[1] or 0)
        elif line.strip() == "@@smi":
            smi = True
        elif smi and line.strip():
            parts = [part.strip() for part in line.split(",")]
            if len(parts) != 5 or not parts[0].isdigit():
                continue
            try:
                gpus.append(Gpu(int(parts[0]), parts[1], parts[2], int(float(parts[3])), int(float(parts[4]))))
            except ValueError:
                continue
    return NodeGpus(gpus=tuple(gpus), device_nodes=devices, smi_present=smi)
