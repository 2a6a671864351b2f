"""Several processes with torchrun: process group, devices, the DDP wrapper, and gathering evaluation outputs.

Launched as `torchrun --nproc-per-node N -m dbps train …`, each process reads RANK, LOCAL_RANK and WORLD_SIZE
from the environment. Selection always runs on the unwrapped module (`engine.step.unwrap`): DDP's forward
broadcasts buffers, and processes whose chunk counts differ would then wait on each other forever.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Distributed:
    """This process's place among the processes of a run (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes the run folder, checkpoints and logs."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Element-wise sums over the processes, in one all-reduce (the values themselves with one process)."""
        if not self.enabled:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=_collective_device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in rank order (a list of one without several processes)."""
        if not self.enabled:
            return [obj]
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, obj)
        return gathered

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj` on every process."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def from_environment() -> Distributed:
    """The process's place from torchrun's environment, joining the process group when there are several."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Distributed()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return Distributed(rank, world, local_rank)


def process_device(device: torch.device, ctx: Distributed) -> torch.device:
    """Each process on its own GPU (cuda:LOCAL_RANK) when the run is on CUDA."""
    if ctx.enabled and device.type == "cuda":
        return torch.device("cuda", ctx.local_rank)
    return device


def wrap(model: nn.Module, ctx: Distributed, device: torch.device, *, sync_bn: bool,
         find_unused: bool = False) -> nn.Module:
    """The module the gradient pass goes through: DDP over several processes (optionally SyncBatchNorm)."""
    if not ctx.enabled:
        return model
    if sync_bn:
        nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)


def shutdown(ctx: Distributed) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()
