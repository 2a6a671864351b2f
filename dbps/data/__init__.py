"""Images in: Megapixel MNIST generation, digit sources, datasets, sparse batches and loaders."""

from dbps.data.datasets import DATASETS, DataSplits, build_loader, carve_validation, collate
from dbps.data.megapixel_mnist import MegapixelMNIST, make_megapixel_mnist, task_targets
from dbps.data.sparse import SparseBatch, SparseImage, to_device

__all__ = [
    "DATASETS",
    "DataSplits",
    "MegapixelMNIST",
    "SparseBatch",
    "SparseImage",
    "build_loader",
    "carve_validation",
    "collate",
    "make_megapixel_mnist",
    "task_targets",
    "to_device",
]
