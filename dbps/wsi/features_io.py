"""Feature bags: CLAM `h5_files/` and `pt_files/`, TRIDENT `features_<encoder>/`; opened lazily, written TRIDENT-style.

An h5 bag holds `features` (N × D float32) and `coords` (N × 2 level-0 x, y); TRIDENT's `features` carries the
attributes `encoder`, `name` (the slide) and `savetodir`, and dbps adds `embed_dim` (D). A `.pt` bag is a bare
N × D tensor (CLAM, TransMIL) or a dict with `features`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from dbps.files import atomic_write
from dbps.safe_load import load_safely
from dbps.wsi.coords_io import slide_name

H5_SUFFIXES = (".h5", ".hdf5")


class FeatureBag:
    """One slide's features, opened without reading them: `num_patches` and `dim` come from the file's header.

    Args:
        path: an h5 file with `features` (and `coords`), or a `.pt` tensor file.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"feature file not found: {self.path}")
        self.is_h5 = self.path.suffix.lower() in H5_SUFFIXES
        self.encoder: str | None = None
        if self.is_h5:
            with self._open() as handle:
                dataset = self._dataset(handle)
                shape = dataset.shape
                encoder = dataset.attrs.get("encoder")
                self.encoder = encoder.decode() if isinstance(encoder, bytes) else encoder
        else:
            shape = tuple(self._load_pt().shape)
        if len(shape) == 3 and shape[0] == 1:  # some tools save a leading batch axis
            shape = shape[1:]
        if len(shape) != 2:
            raise ValueError(f"{self.path}: features must be N × D, got shape {tuple(shape)}")
        self.num_patches, self.dim = int(shape[0]), int(shape[1])

    def _open(self) -> h5py.File:
        try:
            return h5py.File(self.path, "r")
        except OSError as exc:
            raise ValueError(f"{self.path}: not a readable h5 file ({exc})") from None

    def _dataset(self, handle: h5py.File) -> h5py.Dataset:
        if "features" not in handle:
            raise ValueError(f"{self.path}: no 'features' dataset (found: {', '.join(handle) or 'nothing'})")
        return handle["features"]

    def _load_pt(self) -> Tensor:
        try:  # memory-mapped: the header is read now, the rows only when indexed
            data = load_safely(self.path, mmap=True)
        except ValueError as exc:
            raise ValueError(f"{self.path}: not a readable tensor file ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("features"), Tensor):
            data = data["features"]
        if not isinstance(data, Tensor):
            raise ValueError(f"{self.path}: expected a tensor or a dict with 'features', got {type(data).__name__}")
        return data

    def features(self, rows: np.ndarray | None = None) -> Tensor:
        """float32 (N, D), or only `rows` (any order) of it: only what is asked for is read."""
        if self.is_h5:
            with self._open() as handle:
                dataset = self._dataset(handle)
                lead: tuple[int, ...] = (0,) if dataset.ndim == 3 else ()
                if rows is None:
                    data = dataset[(*lead, slice(None))]
                else:  # h5 reads increasing, distinct rows: read those once, then put them in the asked order
                    unique, inverse = np.unique(np.asarray(rows, dtype=np.int64), return_inverse=True)
                    data = dataset[(*lead, unique)][inverse]
            return torch.from_numpy(np.asarray(data, dtype=np.float32))
        data = self._load_pt()
        data = data[0] if data.dim() == 3 else data
        return (data if rows is None else data[torch.as_tensor(rows)]).float().clone()

    def coords(self) -> np.ndarray | None:
        """Level-0 (x, y) top-left corners (N, 2) int64, or None when the file holds none (`.pt`)."""
        if not self.is_h5:
            return None
        with self._open() as handle:
            return np.asarray(handle["coords"][()], dtype=np.int64).reshape(-1, 2) if "coords" in handle else None


def write_features(
    path: Path,
    features: np.ndarray | Tensor | Iterable[np.ndarray | Tensor],
    coords: np.ndarray,
    *,
    encoder: str,
    dim: int | None = None,
    coords_attrs: dict[str, Any] | None = None,
    feature_attrs: dict[str, Any] | None = None,
) -> None:
    """Write a TRIDENT-style bag atomically: `features` (N × D float32) with TRIDENT's attributes, and `coords`.

    Args:
        path: the h5 file to write.
        features: an N × D array, or an iterable of row batches (filled in as they come, never all in memory).
        coords: (N, 2) level-0 (x, y).
        encoder: name stored in the `encoder` attribute.
        dim: D; needed only when `features` is an iterable that may yield nothing (N = 0).
        coords_attrs: attributes for `coords` (the patch geometry, copied from the coordinate file).
        feature_attrs: more attributes for `features` (e.g. how patches were stain-normalised).
    """
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    if isinstance(features, np.ndarray | Tensor):
        dim = features.shape[1]
        features = [features]

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as handle:
            handle.create_dataset("coords", data=coords).attrs.update(coords_attrs or {})
            dataset, filled = None, 0
            for batch in features:
                rows = batch.detach().float().cpu().numpy() if isinstance(batch, Tensor) else batch
                if dataset is None:
                    dataset = handle.create_dataset("features", shape=(len(coords), rows.shape[1]), dtype=np.float32)
                dataset[filled : filled + len(rows)] = rows
                filled += len(rows)
            if dataset is None:
                if dim is None:
                    raise ValueError(f"{path}: no features and no dim given")
                dataset = handle.create_dataset("features", shape=(0, dim), dtype=np.float32)
            if filled != len(coords):
                raise ValueError(f"{path}: {filled} feature rows for {len(coords)} coordinates")
            dataset.attrs.update({"encoder": encoder, "embed_dim": dataset.shape[1], "name": slide_name(path),
                                  "savetodir": str(path.parent), **(feature_attrs or {})})

    atomic_write(path, write)


def check_bag_headers(bags: Iterable[Path], encoder: str | None = None, width: int | None = None
                      ) -> tuple[str | None, int]:
    """The encoder name and width D shared by feature bags, read from their headers; ValueError naming a bag that
    differs from the others, or from the `encoder` (recorded name) and `width` asked for.

    Bags without a recorded encoder (CLAM h5, `.pt`) are checked for their width only.
    """
    seen_encoder: tuple[str, Path] | None = None
    seen_width: tuple[int, Path] | None = None
    for path in bags:
        bag = FeatureBag(path)
        if seen_width is None:
            seen_width = (bag.dim, path)
        elif bag.dim != seen_width[0]:
            raise ValueError(f"{path}: features of width {bag.dim}, but {seen_width[1]} has {seen_width[0]}: "
                             "bags of two encoders?")
        if bag.encoder is None:
            continue
        if encoder is not None and not _same_encoder(bag.encoder, encoder):
            raise ValueError(f"{path}: features of encoder {bag.encoder!r}, not {encoder!r} (data.feature_encoder)")
        if seen_encoder is None:
            seen_encoder = (bag.encoder, path)
        elif not _same_encoder(bag.encoder, seen_encoder[0]):
            raise ValueError(f"{path}: features of encoder {bag.encoder!r}, but {seen_encoder[1]} has "
                             f"{seen_encoder[0]!r}")
    if seen_width is None:
        raise ValueError("no feature bags to check")
    if width is not None and seen_width[0] != width:
        raise ValueError(f"{seen_width[1]}: features of width {seen_width[0]}, but {encoder} gives {width}")
    return (seen_encoder[0] if seen_encoder else None), seen_width[0]


def _same_encoder(a: str, b: str) -> bool:
    """TRIDENT writes `kaiko-vits16` where dbps writes `kaiko_vits16`."""
    return a.replace("-", "_").lower() == b.replace("-", "_").lower()


def features_complete(path: Path, num_patches: int) -> bool:
    """Whether `path` is a readable h5 bag with `num_patches` rows of features and coordinates."""
    try:
        with h5py.File(path, "r") as handle:
            return all(key in handle and handle[key].shape[0] == num_patches for key in ("features", "coords"))
    except OSError:
        return False


def list_feature_bags(root: str | Path) -> dict[str, Path]:
    """Slide name → feature file under `root`: CLAM `h5_files/` + `pt_files/`, TRIDENT `features_<encoder>/`, `pt/`.

    An h5 bag (which has coordinates) wins over a `.pt` one of the same slide. `root` may also be the folder of
    files itself.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"feature folder not found: {root}")
    trident = sorted(p for p in root.glob("features_*") if p.is_dir())
    if len(trident) > 1:
        raise ValueError(f"{root} holds features of several encoders ({', '.join(p.name for p in trident)}): pass one")
    folders = [root, *trident, root / "h5_files", root / "pt_files", root / "pt"]
    bags: dict[str, Path] = {}
    for suffixes in (("*.pt", "*.pth"), tuple(f"*{suffix}" for suffix in H5_SUFFIXES)):
        for folder in folders:
            for pattern in suffixes:
                bags |= {slide_name(path): path for path in sorted(folder.glob(pattern))}
    if not bags:
        raise ValueError(f"{root}: no feature files (looked for features_*/, h5_files/, pt_files/, pt/ and *.h5/*.pt)")
    return bags
