"""Dataset registry, validation carving, collation and loaders."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Subset

from dbps.data.megapixel_mnist import MegapixelMNIST
from dbps.data.sparse import SparseBatch, SparseImage
from dbps.registry import Registry
from dbps.tasks import TaskSpec


@dataclass
class DataSplits:
    """Train / validation / test datasets and what a model needs to know about their images.

    Attributes:
        train, val, test: datasets yielding (image, {task: target}).
        tasks: the tasks the dataset defines.
        image_shape: C, H, W of every image.
        mean, std: per-channel normalisation applied on the device, or None.
    """

    train: Dataset
    val: Dataset
    test: Dataset
    tasks: list[TaskSpec]
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


DATASETS: Registry[DataSplits] = Registry("dataset")


def carve_validation(dataset: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset]:
    """Split off a seeded random `fraction` of `dataset` as validation (at least one item when fraction > 0)."""
    n = len(dataset)  # type: ignore[arg-type]
    n_val = max(1, round(n * fraction)) if fraction > 0 else 0
    if n_val >= n:
        raise ValueError(f"data.val_fraction {fraction} leaves no training images out of {n}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, order[n_val:]), Subset(dataset, order[:n_val])


@DATASETS.register("megapixel_mnist")
def megapixel_mnist_splits(root: str | Path, *, val_fraction: float, seed: int, tasks: list[str] | None) -> DataSplits:
    """Generated Megapixel MNIST: validation carved from train (test is touched once, at the end)."""
    full = MegapixelMNIST(root, "train", tasks)
    train, val = carve_validation(full, val_fraction, seed)
    test = MegapixelMNIST(root, "test", tasks)
    chosen = [task for task in MegapixelMNIST.TASKS if task.name in full.tasks]
    return DataSplits(train, val, test, chosen, full.image_shape)


def collate(
    items: list[tuple[Tensor | SparseImage, dict[str, Tensor]]],
) -> tuple[Tensor | SparseBatch, dict[str, Tensor]]:
    """Stack images (dense) or concatenate them (sparse), and stack each task's targets."""
    images = [item[0] for item in items]
    batch = SparseBatch.collate(images) if isinstance(images[0], SparseImage) else torch.stack(images)  # type: ignore[arg-type]
    targets = {name: torch.stack([item[1][name] for item in items]) for name in items[0][1]}
    return batch, targets


def build_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    num_workers: int = 0,
    pin_memory: bool = False,
    seed: int = 0,
    collate_fn: Callable = collate,
) -> DataLoader:
    """A DataLoader with seeded shuffling, persistent workers and prefetching when workers are used."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate_fn,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
        prefetch_factor=4 if num_workers > 0 else None,
    )
