"""Batches moved to the device ahead of use: on CUDA the next batch is copied (and densified) on a side stream
while the current one trains, so the host never waits for a transfer."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from dbps.data.sparse import to_device


class DevicePrefetcher:
    """Wraps a loader of (images, {task: target}) and yields them on `device`, one batch ahead on CUDA."""

    def __init__(self, loader: DataLoader, device: torch.device) -> None:
        self.loader = loader
        self.device = device

    def __len__(self) -> int:
        return len(self.loader)

    def _move(self, batch: tuple) -> tuple[Tensor, dict[str, Tensor]]:
        images, targets = batch
        non_blocking = self.device.type == "cuda"
        return to_device(images, self.device, non_blocking), {
            name: target.to(self.device, non_blocking=non_blocking) for name, target in targets.items()
        }

    def __iter__(self) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
        if self.device.type != "cuda":
            yield from (self._move(batch) for batch in self.loader)
            return
        stream = torch.cuda.Stream(self.device)
        batches = iter(self.loader)

        def load_next() -> tuple[Tensor, dict[str, Tensor]] | None:
            batch = next(batches, None)
            if batch is None:
                return None
            with torch.cuda.stream(stream):
                return self._move(batch)

        upcoming = load_next()
        while upcoming is not None:
            current_stream = torch.cuda.current_stream(self.device)
            current_stream.wait_stream(stream)
            images, targets = upcoming
            for tensor in (images, *targets.values()):
                tensor.record_stream(current_stream)  # the side stream's allocations are used on this stream
            upcoming = load_next()
            yield images, targets
