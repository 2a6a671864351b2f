"""Checkpoints: written atomically, plain state dicts (no wrapper prefixes), bare state dicts accepted on load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from dbps.files import atomic_write

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
                     hint: str = "was it trained with another config?") -> None:  # fmt: skip
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


def save_checkpoint(path: Path, **payload: Any) -> None:
    """Save a checkpoint dict (model, optimizer, epoch, step, config, metrics, …) atomically."""
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint dict; a bare state dict comes back as {'model': state_dict}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for corrupt files
        raise ValueError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(data, dict) and "model" in data:
        if not _is_state_dict(data["model"]):
            raise ValueError(f"{path}: its 'model' entry is not a state dict (a mapping of names to tensors)")
        return data
    if _is_state_dict(data):
        return {"model": data}
    raise ValueError(f"{path}: neither a dbps checkpoint nor a state dict")


def _is_state_dict(data: Any) -> bool:
    return isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values())
