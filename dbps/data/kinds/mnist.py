"""Megapixel MNIST, from `dbps make-data` or from the reference generator's files (`megapixel_mnist`, and the
reference repositories' `--dataset mnist`)."""

from __future__ import annotations

from dbps.data.kinds import DataRequest, DataSplits, dataset_kind_builder
from dbps.data.loaders import carve_validation
from dbps.data.megapixel_mnist import MegapixelMNIST
from dbps.data.reference_mnist import ReferenceMegapixelMNIST


@dataset_kind_builder(("megapixel_mnist", "mnist"),
                      summary="Megapixel MNIST (4 tasks), made by `dbps make-data` or the reference generator",
                      channels=1)
def megapixel_mnist_splits(request: DataRequest) -> DataSplits:
    """Megapixel MNIST from `dbps make-data` (meta.json) or from the reference generator (parameters.json).

    Validation is carved from train; test is touched once, at the end.
    """
    if request.resize is not None:
        raise ValueError("data.resize: Megapixel MNIST images are used at the size they were made")
    root = request.root
    if (root / "meta.json").is_file() or not (root / "parameters.json").is_file():
        full, test = MegapixelMNIST(root, "train", request.task_names), MegapixelMNIST(root, "test", request.task_names)
    else:
        full = ReferenceMegapixelMNIST(root, "train", request.task_names)
        test = ReferenceMegapixelMNIST(root, "test", request.task_names)
    train, val = carve_validation(full, request.val_fraction, request.seed)
    chosen = [task for task in MegapixelMNIST.TASKS if task.name in full.tasks]
    channels, height, width = full.image_shape
    return DataSplits(train, val, test, chosen, channels, (height, width))
