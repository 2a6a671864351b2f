"""Batches moved to the device ahead of use: on CUDA the next batch is copied (and densified) on a side stream
while the current one trains, so the host never waits for a transfer."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import torch

from dbps.data.batches import Batch


def worker_errors_as_raised(loader: Iterable[Batch]) -> Iterator[Batch]:
    """The loader's batches; an error in a loader worker comes back with the message the worker raised it with.

    torch re-raises a worker's exception with the worker's traceback pasted into its message; the traceback stays
    attached as the cause (shown with DBPS_DEBUG=1), and the message is again one line per problem.
    """
    batches = iter(loader)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:
            message = _raised_message(exc)
            if message is None:
                raise
            try:
                plain = type(exc)(message)
            except Exception:  # an exception type that is not built from one message
                raise exc from None
            raise plain from exc
        yield batch


def _raised_message(exc: Exception) -> str | None:
    """The message a loader worker raised `exc` with, from the traceback torch pasted in; None if not a worker's."""
    lines = str(exc).splitlines()
    if not lines or not lines[0].startswith("Caught "):
        return None
    head = re.compile(rf"(?:[\w.]+\.)?{re.escape(type(exc).__name__)}: ")
    starts = [i for i, line in enumerate(lines) if head.match(line)]
    if not starts:
        return None
    first = lines[starts[-1]]
    return "\n".join([first[head.match(first).end() :], *lines[starts[-1] + 1 :]])  # type: ignore[union-attr]


class DevicePrefetcher:
    """Wraps a loader of batches and yields them on `device`, one batch ahead on CUDA."""

    def __init__(self, loader: Iterable[Batch], device: torch.device) -> None:
        self.loader = loader
        self.device = device

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        if self.device.type != "cuda":
            yield from (batch.to(self.device) for batch in worker_errors_as_raised(self.loader))
            return
        stream = torch.cuda.Stream(self.device)
        batches = worker_errors_as_raised(self.loader)

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
