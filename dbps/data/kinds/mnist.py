"""Megapixel MNIST, from `dbps make-data` or from the reference generator's files (`megapixel_mnist`, and the
reference repositories' `--dataset mnist`)."""

from __future__ import annotations

import logging
from pathlib import Path

from dbps.config.schema import ConfigError
from dbps.data.kinds import DataRequest, DataSplits, PrepareRequest, dataset_kind_builder
from dbps.data.loaders import carve_validation
from dbps.data.megapixel_mnist import TASKS, MegapixelMNIST, make_data_command, make_megapixel_mnist
from dbps.data.reference_mnist import ReferenceMegapixelMNIST

log = logging.getLogger(__name__)
MARKERS = ("meta.json", "parameters.json")  # a dataset of ours, or of the reference generator


def generate_megapixel_mnist(request: PrepareRequest) -> list[str]:
    """Megapixel MNIST generated into `request.root` when `data.generate` asks and no dataset is there.

    The same generator as `dbps make-data`, with the settings of `data.generate` (whose defaults are its own).
    """
    if request.generate is None or any((request.root / name).is_file() for name in MARKERS):
        return []
    if not request.may_generate:
        raise FileNotFoundError(f"{request.root}: no dataset there (training generates it; evaluation does not)")
    if request.root_named:
        command = make_data_command(request.root, **request.generate)
        raise FileNotFoundError(
            f"{request.root_key} {request.root}: no dataset there; make it with `{command}`, or give data.generate "
            "too to generate it there while training (a path named on the command line is never filled on its own)"
        )
    log.info("generating Megapixel MNIST into %s", request.root)
    try:
        make_megapixel_mnist(request.root, **request.generate, progress=request.progress)
    except (ValueError, FileExistsError) as exc:
        raise ConfigError(f"data.generate: {exc}") from None
    return []


def megapixel_mnist_split(
    root: Path, split: str, tasks: list[str] | None = None
) -> MegapixelMNIST | ReferenceMegapixelMNIST:
    """One split of a Megapixel MNIST folder in either layout: `dbps make-data`'s (meta.json) or the reference
    generator's (parameters.json)."""
    if (root / "meta.json").is_file() or not (root / "parameters.json").is_file():
        return MegapixelMNIST(root, split, tasks)
    return ReferenceMegapixelMNIST(root, split, tasks)


@dataset_kind_builder(("megapixel_mnist", "mnist"),
                      summary="Megapixel MNIST (4 tasks), made by `dbps make-data` or the reference generator",
                      prepare=generate_megapixel_mnist, tasks=TASKS, channels=1)
def megapixel_mnist_splits(request: DataRequest) -> DataSplits:
    """Megapixel MNIST from `dbps make-data` (meta.json) or from the reference generator (parameters.json).

    Validation is carved from train; test is touched once, at the end.
    """
    if request.resize is not None:
        raise ValueError("data.resize: Megapixel MNIST images are used at the size they were made")
    full = megapixel_mnist_split(request.root, "train", request.task_names)
    test = megapixel_mnist_split(request.root, "test", request.task_names)
    train, val = carve_validation(full, request.val_fraction, request.seed)
    chosen = [task for task in MegapixelMNIST.TASKS if task.name in full.tasks]
    channels, height, width = full.image_shape
    return DataSplits(train, val, test, chosen, channels, (height, width))
