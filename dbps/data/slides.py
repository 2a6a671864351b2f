"""Whole-slide datasets: slides read patch by patch from their tissue coordinates, and pre-extracted feature bags.

The datasets the slide kinds (`dbps.data.kinds.slides`) build: slides as `SlideRef`s, which collate into
`SlideBatch`es (`dbps.data.batches`) that read each slide's patches when the step comes, and feature bags from
CLAM / TRIDENT / DBPS files or IPS's HDF5.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dbps.data.batches import FeatureBag
from dbps.wsi import FeatureBag as FeatureFile


class LabelledItems(Dataset):
    """Instances (slides, feature files) with one label each; `load` turns item i into what the loader yields.

    Args:
        items: one per instance (e.g. a SlideRef, read only when its turn comes).
        labels: class index per instance.
        task_names: the tasks that all receive the label.
        names: instance names (slide ids) for prediction tables.
    """

    def __init__(self, items: list, labels: list[int], task_names: list[str], names: list[str]) -> None:
        self.items, self._labels, self.task_names, self._names = items, labels, task_names, names

    def __len__(self) -> int:
        return len(self.items)

    def load(self, i: int) -> object:
        return self.items[i]

    def __getitem__(self, i: int) -> tuple[object, dict[str, Tensor]]:
        return self.load(i), {name: torch.tensor(self._labels[i]) for name in self.task_names}

    def names(self) -> list[str]:
        return list(self._names)


class FeatureBagFiles(LabelledItems):
    """Feature files and their labels; items are (FeatureBag of (N, D) features and coordinates, {task: label})."""

    def load(self, i: int) -> FeatureBag:
        bag = FeatureFile(self.items[i])
        coords = bag.coords()
        return FeatureBag(bag.features(), torch.from_numpy(coords) if coords is not None else None)


class IPSFeatureFile(Dataset):
    """IPS's feature files: one HDF5 per split, a group per slide with `img` (N, D), `pos` and a `label` attribute."""

    def __init__(self, path: Path, task_names: list[str]) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such feature file (IPS layout: one HDF5 per split)")
        self.path, self.task_names = path, task_names
        try:
            with h5py.File(path, "r") as handle:
                self.groups = sorted(handle)
                self._labels = [int(np.asarray(handle[g].attrs["label"]).reshape(-1)[0]) for g in self.groups]
                self.dim = int(handle[self.groups[0]]["img"].shape[-1]) if self.groups else 0
        except (OSError, KeyError) as exc:
            raise ValueError(f"{path}: not an IPS feature file (groups with `img` and a `label` attribute): {exc}") \
                from None

    def __len__(self) -> int:
        return len(self.groups)

    def labels(self) -> list[int]:
        return list(self._labels)

    def __getitem__(self, i: int) -> tuple[FeatureBag, dict[str, Tensor]]:
        with h5py.File(self.path, "r") as handle:
            group = handle[self.groups[i]]
            features = torch.from_numpy(np.asarray(group["img"], dtype=np.float32))
        return FeatureBag(features), {name: torch.tensor(self._labels[i]) for name in self.task_names}

    def names(self) -> list[str]:
        return list(self.groups)
