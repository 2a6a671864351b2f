"""What training does when something goes wrong: stop requests, non-finite steps, out-of-memory."""

from __future__ import annotations

import signal
import types
from collections.abc import Iterator
from contextlib import contextmanager


class TrainingStopped(Exception):
    """Training stopped early and left `last.pt` to resume from.

    Attributes:
        exit_code: what the command should exit with (130 for SIGINT, 143 for SIGTERM, 1 otherwise).
    """

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class StopRequests:
    """SIGINT / SIGTERM set a flag that the loop reads after each step; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def _handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal) if self.signal is not None else 1

    @contextmanager
    def installed(self) -> Iterator[StopRequests]:
        """Handle SIGINT and SIGTERM inside the block (only in the main thread; elsewhere signals are untouched)."""
        try:
            previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        except ValueError:  # not the main thread
            yield self
            return
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def out_of_memory_message(device: str) -> str:
    """What to lower when a step does not fit on the device."""
    return (
        f"out of memory on {device}: lower train.micro_batch_size (B_seq) to hold fewer images per pass, "
        "selection.num_salient (M) for fewer patches with gradients, or selection.chunk_size (I) for fewer "
        "patches per no-gradient chunk; train.batch_size (B) can stay as it is when B_seq is lowered"
    )
