"""Batches moved to the device ahead of use: on CUDA the next batch is copied (and densified) on a side stream
while the current one trains, so the host never waits for a transfer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from dbps.data.batches import Batch


class DevicePrefetcher:
    """Wraps a loader of batches and yields them on `device`, one batch ahead on CUDA."""

    def __init__(self, loader: Iterable[Batch], device: torch.device) -> None:
        self.loader = loader
        self.device = device

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        if self.device.type != "cuda":
            yield from (batch.to(self.device) for batch in self.loader)
            return
        stream = torch.cuda.Stream(self.device)
        batches = iter(self.loader)

        def load_next() -> Batch | None:
            batch = next(batches, None)
            if batch is None:
                return None
            with torch.cuda.stream(stream):
                return batch.to(self.device, non_blocking=True)

        upcoming = load_next()
        while upcoming is not None:
            current_stream = torch.cuda.current_stream(self.device)
            current_stream.wait_stream(stream)
            batch = upcoming
            for tensor in batch.tensors():
                tensor.record_stream(current_stream)  # the side stream's allocations are used on this stream
            upcoming = load_next()
            yield batch
