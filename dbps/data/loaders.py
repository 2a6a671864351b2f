"""Loaders and what they read: seeded DataLoaders, validation carved from train, the names of a dataset's instances."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset


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
