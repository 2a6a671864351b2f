"""Megapixel MNIST files written by the reference generator (attention-sampling / IPS `make_mnist.py`).

Layout: `root/parameters.json` (`width`, `height`, ...) and `root/train.npy`, `root/test.npy`, each a pickled
list of dicts `{'input': (flat_indices, values), 'majority', 'max', 'top', 'multi'}` with values in [0, 1] at
the flat indices of an H×W×1 canvas. Items are the same as those of the generated `MegapixelMNIST`: a uint8
`SparseImage` 1×H×W and the four task targets, so both sources train the same way.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from dbps.data.megapixel_mnist import TASKS, task_names
from dbps.data.sparse import SparseImage
from dbps.files import read_json
from dbps.safe_load import UnsafeFileError, load_numpy_pickle

RECORD_KEYS = ("input", "majority", "max", "top", "multi")


def read_parameters(root: Path) -> tuple[int, int]:
    """(height, width) from root/parameters.json."""
    path = root / "parameters.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (expected the reference generator's parameters.json)")
    parameters = read_json(path)
    missing = [key for key in ("width", "height") if key not in parameters]
    if missing:
        raise ValueError(f"{path}: lacks key(s) {missing}")
    try:
        height, width = int(parameters["height"]), int(parameters["width"])
    except (TypeError, ValueError):
        raise ValueError(f"{path}: height and width must be integers, got {parameters['height']!r} and "
                         f"{parameters['width']!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{path}: height {height} and width {width} must be positive")
    return height, width


def load_records(path: Path) -> list[dict]:
    """The list of per-image dicts in a reference .npy file (a pickled object array).

    The pickle is read by a loader that rebuilds only what the generator writes (NumPy arrays, dicts, lists, tuples,
    numbers, strings): a file naming any other Python object is refused before anything of it runs.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (expected the reference generator's train.npy / test.npy)")
    try:
        records = _read_npy(path)
    except UnsafeFileError as error:
        raise UnsafeFileError(f"{path}: {error}") from None
    except (ValueError, OSError, pickle.UnpicklingError, EOFError) as error:
        raise ValueError(f"{path}: not a reference Megapixel MNIST file ({error})") from None
    if not isinstance(records, np.ndarray) or records.ndim != 1 or not all(isinstance(r, dict) for r in records):
        what = f"{records.dtype} array" if isinstance(records, np.ndarray) else type(records).__name__
        raise ValueError(f"{path}: expected a list of dicts with keys {list(RECORD_KEYS)}, got {what}")
    return list(records)


def _read_npy(path: Path) -> object:
    """A .npy array; an object array's pickle is read by `load_numpy_pickle`."""
    with path.open("rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f".npy format version {version} (expected 1.0 or 2.0)")
        _, _, dtype = read_header[version](handle)
        if dtype.hasobject:
            return load_numpy_pickle(handle)
    return np.load(path, allow_pickle=False)


def _check_record(record: dict, where: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"{where}: lacks key(s) {missing}")
    if len(record["input"]) != 2:
        raise ValueError(f"{where}: 'input' must be (flat_indices, values)")
    index = np.asarray(record["input"][0]).reshape(-1)  # the generator stores np.where's 1-tuple
    values = np.asarray(record["input"][1], dtype=np.float64).reshape(-1)
    if len(index) != len(values):
        raise ValueError(f"{where}: {len(index)} indices but {len(values)} values in 'input'")
    scalars = [key for key in ("majority", "max", "top") if np.ndim(record[key]) != 0]
    if scalars:
        raise ValueError(f"{where}: {scalars} must each be one integer")
    if np.asarray(record["multi"]).shape != (10,):
        raise ValueError(f"{where}: 'multi' has shape {np.asarray(record['multi']).shape}, expected (10,)")
    return index, values


def pack_records(records: list[dict], path: Path, numel: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Concatenated sparse arrays (index, uint8 values, offsets) and the task targets of all records."""
    checked = [_check_record(record, f"{path} item {i}") for i, record in enumerate(records)]
    index = np.concatenate([c[0] for c in checked]).astype(np.int64) if checked else np.zeros(0, np.int64)
    values = np.concatenate([c[1] for c in checked]) if checked else np.zeros(0)
    if len(index) and (index.min() < 0 or index.max() >= numel):
        raise ValueError(f"{path}: pixel indices reach {index.max()}, beyond the {numel} pixels of parameters.json")
    if len(values) and (values.min() < 0 or values.max() > 1):
        raise ValueError(f"{path}: pixel values span [{values.min()}, {values.max()}], expected [0, 1]")
    offsets = np.concatenate([[0], np.cumsum([len(c[0]) for c in checked])]).astype(np.int64)
    sparse = {"index": index, "values": np.rint(values * 255).astype(np.uint8), "offsets": offsets}
    targets = {key: np.array([int(r[key]) for r in records], dtype=np.int64) for key in ("majority", "max", "top")}
    targets["multi"] = np.array([np.asarray(r["multi"]) > 0 for r in records], dtype=np.int64).reshape(-1, 10)
    for key, target in targets.items():
        if len(target) and (target.min() < 0 or target.max() > 9):
            raise ValueError(f"{path}: '{key}' targets span {target.min()}..{target.max()}, expected digits 0..9")
    return sparse, targets


class ReferenceMegapixelMNIST(Dataset):
    """A split of reference-format Megapixel MNIST; items are (SparseImage 1×H×W uint8, {task: target}).

    Args:
        root: folder with parameters.json, train.npy and test.npy.
        split: 'train' or 'test'.
        tasks: names of the tasks whose targets are returned (default: all four).
    """

    TASKS = TASKS

    def __init__(self, root: str | Path, split: str = "train", tasks: list[str] | None = None) -> None:
        self.root = Path(root)
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.height, self.width = read_parameters(self.root)
        self.tasks = task_names(tasks)
        path = self.root / f"{split}.npy"
        self._sparse, self._targets = pack_records(load_records(path), path, self.height * self.width)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.height, self.width)

    def __len__(self) -> int:
        return len(self._sparse["offsets"]) - 1

    def __getitem__(self, i: int) -> tuple[SparseImage, dict[str, torch.Tensor]]:
        start, stop = self._sparse["offsets"][i], self._sparse["offsets"][i + 1]
        image = SparseImage(
            torch.from_numpy(self._sparse["index"][start:stop].copy()),
            torch.from_numpy(self._sparse["values"][start:stop].copy()),
            self.image_shape,
        )
        return image, {name: torch.as_tensor(self._targets[name][i]) for name in self.tasks}

    def labels(self) -> list[int]:
        """The `majority` target of every image (the class of the single-label task)."""
        return self._targets["majority"].tolist()

    def dense(self, i: int) -> np.ndarray:
        """Image i as a dense uint8 array (height, width)."""
        image = np.zeros(self.height * self.width, dtype=np.uint8)
        start, stop = self._sparse["offsets"][i], self._sparse["offsets"][i + 1]
        image[self._sparse["index"][start:stop]] = self._sparse["values"][start:stop]
        return image.reshape(self.height, self.width)
