"""Opening pickled files that users bring (checkpoints, weights, feature bags, reference `.npy`) without running them.

A pickle names the Python callables that rebuild its objects, so an unrestricted load runs whatever a crafted file
names. `.pt` files are read by torch's safe loader (`weights_only=True`: tensors, numbers, strings, containers);
pickled NumPy arrays by `load_numpy_pickle`, which rebuilds arrays, dicts, lists, tuples, numbers and strings only.
Every refusal, and every other reason a file cannot be read, is one line.
"""

from __future__ import annotations

import pickle
import re
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

try:
    from numpy._core import multiarray as _multiarray  # NumPy 2
except ImportError:  # NumPy 1
    from numpy.core import multiarray as _multiarray

# The callables NumPy arrays and scalars pickle into (under NumPy 2's and NumPy 1's module names). They rebuild
# arrays only: an object array's items are unpickled by the same restricted loader.
NUMPY_PICKLE_NAMES: dict[str, Any] = {"numpy.ndarray": np.ndarray, "numpy.dtype": np.dtype}
for _module in ("numpy._core.multiarray", "numpy.core.multiarray"):
    NUMPY_PICKLE_NAMES |= {f"{_module}._reconstruct": _multiarray._reconstruct, f"{_module}.scalar": _multiarray.scalar}
for _code in "?" + np.typecodes["AllInteger"] + np.typecodes["AllFloat"] + "OU":
    _kind = type(np.dtype(_code))
    NUMPY_PICKLE_NAMES[f"{_kind.__module__}.{_kind.__name__}"] = _kind


class UnsafeFileError(ValueError):
    """A file holding a Python object that would run code when opened, refused."""


def refusal(name: str) -> str:
    """Why a file naming the Python object `name` is not opened."""
    return (
        f"refused: it holds {name}, a Python object that would run code when opened (only arrays, tensors, numbers, "
        "strings and containers are read; a file from a source you do not trust may be malicious)"
    )


def load_safely(path: Path, *, mmap: bool = False, numpy_arrays: bool = False) -> Any:
    """The contents of a file `torch.save` wrote, read by torch's safe loader (on the CPU).

    Args:
        path: the file.
        mmap: map the tensors' storage instead of reading it (the legacy format, which cannot be mapped, is read).
        numpy_arrays: also accept NumPy arrays and scalars (checkpoints of dbps 0.1 held NumPy random states).

    Raises:
        UnsafeFileError: the file holds another Python object (named in the message).
        ValueError: torch cannot read the file; the message is one line saying why.
    """
    allowed = [(kind, name) for name, kind in NUMPY_PICKLE_NAMES.items()]
    scope = torch.serialization.safe_globals(allowed) if numpy_arrays else nullcontext()
    try:
        with scope, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")  # said of foreign pickles
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError:
                if not mmap:
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for files it cannot read
        error = UnsafeFileError if _refused_object(exc) else ValueError
        raise error(torch_error(exc)) from None


def torch_error(exc: BaseException) -> str:
    """Why torch could not, or would not, read a file, in one line (its safe loader's refusal is a paragraph)."""
    refused = _refused_object(exc)
    if refused:
        return refusal(refused)
    text = str(exc)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        boilerplate = ("Weights only", "Check the documentation", "Please")
        specific = [line for line in lines if not line.startswith(boilerplate)] or [type(exc).__name__]
        return f"not a file of tensors that torch loads safely ({specific[0][:160]})"
    return f"{type(exc).__name__}: {(lines or [''])[0][:160]}"


def _refused_object(exc: BaseException) -> str | None:
    """The Python object the safe loader refused (torch's and timm's wording), if that is why it failed."""
    found = re.search(r"(?:GLOBAL|Unsupported globals:) ([\w.]+)", str(exc))
    return found.group(1).rstrip(".") if found else None


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        kind = NUMPY_PICKLE_NAMES.get(f"{module}.{name}")
        if kind is None:
            raise UnsafeFileError(refusal(f"{module}.{name}"))
        return kind

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafeFileError(refusal("a persistent reference"))


def load_numpy_pickle(handle: IO[bytes]) -> Any:
    """Unpickle NumPy arrays (also of objects), dicts, lists, tuples, numbers and strings from `handle`.

    Raises:
        UnsafeFileError: the pickle names anything else (the name is in the message).
        pickle.UnpicklingError, EOFError, ValueError: the data is not a complete pickle.
    """
    return _ArraysOnly(handle).load()
