"""Where training stands, and every random state, so that a resumed run continues exactly where it stopped."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch


@dataclass
class TrainState:
    """Progress of a run; saved in every checkpoint.

    Attributes:
        epoch: epochs finished.
        step: optimiser steps taken (the LR schedule's position).
        batch_in_epoch: steps taken in the unfinished epoch `epoch + 1` (0 at an epoch boundary).
        epoch_loss_sum, epoch_images, epoch_seconds: running sums of the unfinished epoch.
        skipped_steps: steps skipped for a non-finite loss or gradient, over the run.
        bad_streak: consecutive skipped steps right now.
        best_score, best_epoch: the validation score of best.pt and its epoch.
        train_seconds, train_images, peak_memory: totals over the run.
    """

    epoch: int = 0
    step: int = 0
    batch_in_epoch: int = 0
    epoch_loss_sum: float = 0.0
    epoch_images: int = 0
    epoch_seconds: float = 0.0
    skipped_steps: int = 0
    bad_streak: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    train_seconds: float = 0.0
    train_images: int = 0
    peak_memory: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def finish_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch, self.epoch_loss_sum, self.epoch_images, self.epoch_seconds = 0, 0.0, 0, 0.0


def random_states(generator: torch.Generator) -> dict[str, Any]:
    """Python, NumPy, torch (CPU and every CUDA device) and the selection generator's states."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "selection": generator.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_random_states(states: dict[str, Any], generator: torch.Generator) -> None:
    """Set every state `random_states` gave, also from a checkpoint (where NumPy's key array is a tensor)."""
    random.setstate(states["python"])
    name, key, *rest = states["numpy"]
    np.random.set_state((name, np.asarray(key, dtype=np.uint32), *rest))
    torch.set_rng_state(states["torch"])
    generator.set_state(states["selection"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
