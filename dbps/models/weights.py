"""State-dict keys of the models: wrapper prefixes dropped, and weights loaded only when every key fits.

Checkpoints (`dbps.engine.checkpoint`), encoder weights files and the named pathology encoders' weights all go
through these, so a model wrapped by DDP, DataParallel or torch.compile saves and loads under its plain names.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DDP / DataParallel, torch.compile


def strip_wrapper_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Keys without leading `module.` / `_orig_mod.` (any nesting of wrappers); inner occurrences are kept."""
    plain = {}
    for key, value in state.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        plain[key] = value
    return plain


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """State dict without wrapper prefixes, loadable into the bare model."""
    return strip_wrapper_prefixes(model.state_dict())


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], origin: Path,
                     hint: str = "was it trained with another config?") -> None:
    """Load weights saved from this model's architecture; a mismatch is one line naming the file, the keys and
    `hint` (what the file should have been)."""
    state = strip_wrapper_prefixes(state)
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    shapes = [key for key in own if key in state and tuple(state[key].shape) != tuple(own[key].shape)]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes)):
        if keys:
            problems.append(f"{len(keys)} {label} (e.g. {', '.join(keys[:3])})")
    if problems:
        raise ValueError(f"{origin}: weights do not fit this model ({'; '.join(problems)}); {hint}")
    model.load_state_dict(state)
