"""Dataset kinds by name: what a config's `data.name` builds, the defaults it implies, and the loaders."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from dbps.registry import Registry
from dbps.tasks import TaskSpec


@dataclass(frozen=True)
class DataRequest:
    """What a dataset kind is asked to build (from the `data` group of a config, defaults applied).

    Attributes:
        root: the dataset folder.
        task_names: the tasks the run trains, or None for every task of the dataset. Single-label datasets
            give their one label under each requested name.
        val_fraction: share of train carved off as validation when the dataset has no validation split.
        seed: seed of that carving (and of seeded splits).
        channels: image channels wanted (1 or 3), None for the kind's own.
        resize: (height, width) every image is resized to, None to keep native sizes.
        files: split list or feature files by split ('train', 'val', 'test'), when given.
        labels: labels CSV, when given.
        splits: splits CSV, when given.
        coords: folder of slide patch coordinates, when given.
        drop_ungradable: leave out DDR's 'ungradable' grade.
        feature_encoder: the encoder feature bags must have been extracted with (checked against their attributes).
        feature_width: the width D feature bags must have (that encoder's), when known.
    """

    root: Path
    task_names: list[str] | None = None
    val_fraction: float = 0.1
    seed: int = 0
    channels: int | None = None
    resize: tuple[int, int] | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    labels: str | None = None
    splits: str | None = None
    coords: str | None = None
    drop_ungradable: bool = True
    feature_encoder: str | None = None
    feature_width: int | None = None


@dataclass
class DataSplits:
    """Train / validation / test datasets and what a model needs to know about their instances.

    Attributes:
        train, val, test: datasets yielding (instance, {task: target}).
        tasks: the tasks, under the requested names.
        channels: image channels (feature bags: 0).
        image_size: (height, width) shared by every image, None when sizes vary or for feature bags.
        feature_dim: width of feature vectors for feature bags, else None.
        notes: what was decided about the data (left-out items, inferred settings), one line each.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    tasks: list[TaskSpec]
    channels: int
    image_size: tuple[int, int] | None
    feature_dim: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DatasetKind:
    """A registered dataset name: how it is built and which `data.*` settings it implies.

    Attributes:
        build: DataRequest → DataSplits.
        defaults: `data` fields this name sets when the config leaves them null (channels, resize, mean, std,
            augment), e.g. ImageNet normalisation and the reference augmentation for photo datasets.
        summary: one line for listings and docs.
    """

    build: Callable[[DataRequest], DataSplits]
    defaults: Mapping[str, Any]
    summary: str

    def __call__(self, request: DataRequest) -> DataSplits:
        return self.build(request)


DATASETS: Registry[DataSplits] = Registry("dataset")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def register_kind(names: str | tuple[str, ...], build: Callable[[DataRequest], DataSplits], summary: str,
                  **defaults: Any) -> None:
    """Register `build` under each name with the `data` defaults that name implies."""
    for name in (names,) if isinstance(names, str) else names:
        DATASETS.register(name)(DatasetKind(build, defaults, summary))


def dataset_kind(name: str) -> DatasetKind:
    """The registered kind of a dataset name (an error listing the known names otherwise)."""
    return DATASETS.get(name)  # type: ignore[return-value]


def instance_names(dataset: Dataset) -> list[str]:
    """Names of a dataset's instances (slide or file names when the dataset has them, else their positions)."""
    if isinstance(dataset, Subset):
        parent = instance_names(dataset.dataset)
        return [parent[i] for i in dataset.indices]
    names = getattr(dataset, "names", None)
    if names is not None:
        return list(names())
    paths = getattr(dataset, "paths", None)
    if paths is not None:
        return [Path(p).name for p in paths]
    return [str(i) for i in range(len(dataset))]  # type: ignore[arg-type]


def carve_validation(dataset: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    """Split off a seeded random `fraction` of `dataset` as validation (at least one item when fraction > 0)."""
    n = len(dataset)  # type: ignore[arg-type]
    n_val = max(1, round(n * fraction)) if fraction > 0 else 0
    if n_val >= n:
        raise ValueError(f"data.val_fraction {fraction} leaves no training images out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, order[n_val:]), Subset(dataset, order[:n_val])


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    collate: Callable[[list[Any]], Any],
    shuffle: bool = False,
    sampler: Sampler | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader with seeded shuffling (or a given sampler), persistent workers and prefetching with workers."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )
