"""Whole-slide datasets: slides read patch by patch from their tissue coordinates, and pre-extracted feature bags.

The items the slide kinds (`dbps.data.kinds.slides`) build: `SlideRef`s, which collate into `SlideBatch`es that
read each slide's patches when the step comes, and feature bags from CLAM / TRIDENT / DBPS files or IPS's HDF5.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dbps.data.batches import FeatureBag, Level0Overlay, PatchSpec, Targets, move_targets
from dbps.data.stain_augment import slide_stain
from dbps.patches import PatchSource
from dbps.wsi import FeatureBag as FeatureFile
from dbps.wsi import SlidePatches


@dataclass(frozen=True)
class SlideRef:
    """One slide of a dataset: its file and its patch coordinates file (read when the slide's turn comes)."""

    slide: Path
    coords: Path

    @classmethod
    def collate(cls, refs: list[SlideRef], targets: Targets, spec: PatchSpec) -> SlideBatch:
        return SlideBatch(refs, targets, spec)


@dataclass
class SlideBatch:
    """Slides of one step; each is its own group (slides differ in patch count) and its own patch source."""

    refs: list[SlideRef]
    targets: Targets
    spec: PatchSpec
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    read_threads: int = 2
    jitter_seeds: list[int] | None = None  # one HED-jitter draw per slide of the step, set by `augment`

    def __len__(self) -> int:
        return len(self.refs)

    def to(self, device: torch.device, non_blocking: bool = False) -> SlideBatch:
        targets = move_targets(self.targets, device, non_blocking)
        return dataclasses.replace(self, targets=targets, device=device)

    def pin_memory(self) -> SlideBatch:
        return self

    def tensors(self) -> Iterator[Tensor]:
        yield from self.targets.values()

    def augment(self, generator: torch.Generator | None) -> SlideBatch:
        if self.spec.stain_jitter is None:
            return self
        device = generator.device if generator is not None else None
        seeds = torch.randint(0, 2**62, (len(self.refs),), generator=generator, device=device).tolist()
        return dataclasses.replace(self, jitter_seeds=seeds)

    def groups(self, max_size: int) -> Iterator[SlideBatch]:
        for i in range(len(self.refs)):
            part = slice(i, i + 1)
            seeds = self.jitter_seeds[part] if self.jitter_seeds is not None else None
            yield dataclasses.replace(self, refs=self.refs[part], jitter_seeds=seeds,
                                      targets={k: v[part] for k, v in self.targets.items()})

    def source(self, dtype: torch.dtype = torch.float32) -> PatchSource:
        if len(self.refs) != 1:
            raise ValueError("a batch of slides needs `groups` before `source`: each slide is its own source")
        ref = self.refs[0]
        source = SlidePatches.from_coords_file(
            ref.slide, ref.coords, mean=self.spec.mean, std=self.spec.std, dtype=dtype, device=self.device,
            num_workers=self.read_threads,
        )
        jitter = self.spec.stain_jitter if self.jitter_seeds is not None else None
        if self.spec.stain_norm is not None or jitter is not None:
            seed = self.jitter_seeds[0] if self.jitter_seeds else 0
            source.transform = slide_stain(source, self.spec.stain_norm, jitter, seed)  # type: ignore[arg-type]
        return source

    def overlay(self, index: int, source: PatchSource) -> Level0Overlay:
        if not isinstance(source, SlidePatches):
            raise TypeError(f"a slide's overlay needs its own SlidePatches, got {type(source).__name__}")
        return Level0Overlay(source.coords().numpy(), source.patch_size_level0, source.reader)


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
