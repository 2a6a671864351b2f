"""Learning-rate schedule: linear warm-up, then cosine decay, as a pure function of the optimiser step."""

from __future__ import annotations

import math


def warmup_cosine_lr(step: int, *, base_lr: float, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """LR at optimiser step `step` (0-based): (step+1)/warmup · lr during warm-up, then cosine to lr · min_ratio."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    floor = base_lr * min_ratio
    return floor + 0.5 * (base_lr - floor) * (1.0 + math.cos(math.pi * progress))
