"""Checkpoints: written atomically, plain state dicts (no wrapper prefixes, see `dbps.models.weights`), bare state
dicts accepted on load.

A checkpoint holds only what torch's safe loader rebuilds (tensors, numbers, strings, containers): NumPy values are
converted when saved, so opening one never runs code (see `dbps.safe_load`). A full disk while saving is the
operating system's error naming the checkpoint, although torch reports it as a RuntimeError of its zip writer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from dbps.files import atomic_write
from dbps.safe_load import UnsafeFileError, load_safely


def save_checkpoint(path: Path, **payload: Any) -> None:
    """Save a checkpoint dict (model, optimizer, epoch, step, config, metrics, …) atomically.

    Raises:
        OSError: naming `path` (e.g. no space left on device); the file on disk, if any, is the previous one.
    """
    atomic_write(path, lambda tmp: _save(safe_values(payload), tmp))


def safe_values(value: Any) -> Any:
    """`value` with NumPy arrays as tensors and NumPy scalars as Python numbers, in nested dicts, lists, tuples."""
    if isinstance(value, dict):
        return {key: safe_values(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(safe_values(item) for item in value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


class _Writer:
    """A file that remembers the operating-system error of a failed write: torch's zip writer reports a failed
    write as `RuntimeError: … unexpected pos …`, losing the reason (no space left, quota exceeded, I/O error)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self.handle.flush()


def _save(payload: dict[str, Any], tmp: Path) -> None:
    with tmp.open("wb") as handle:
        writer = _Writer(handle)
        try:
            torch.save(payload, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint dict; a bare state dict comes back as {'model': state_dict}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty file (0 bytes), not a checkpoint")
    try:
        data = load_safely(path, numpy_arrays=True)  # dbps 0.1 kept NumPy random states in checkpoints
    except UnsafeFileError as exc:
        raise UnsafeFileError(f"{path}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from None
    if isinstance(data, dict) and "model" in data:
        if not _is_state_dict(data["model"]):
            raise ValueError(f"{path}: its 'model' entry is not a state dict (a mapping of names to tensors)")
        return data
    if _is_state_dict(data):
        return {"model": data}
    raise ValueError(f"{path}: neither a dbps checkpoint nor a state dict")


def _is_state_dict(data: Any) -> bool:
    return isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values())
