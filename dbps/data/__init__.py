"""Data in: dataset kinds (Megapixel MNIST, photo folders and lists, traffic signs, slides, feature bags), batches
and how they become patch sources, augmentation, loaders."""

import importlib
import pkgutil

from dbps.data import kinds, slides
from dbps.data.augment import TrainAugment
from dbps.data.batches import (
    Batch,
    Collate,
    FeatureBag,
    FeatureBatch,
    ImageBatch,
    ImageOverlay,
    Level0Overlay,
    Overlay,
    PatchSpec,
    RaggedImageBatch,
    SparseImageBatch,
)
from dbps.data.folder import ImageFolderDataset, folder_splits
from dbps.data.image_dataset import ImageDataset, SplitFiles
from dbps.data.images import read_image
from dbps.data.kinds import (
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataRequest,
    DatasetKind,
    DataSplits,
    dataset_kind,
    dataset_kind_builder,
    register_kind,
)
from dbps.data.listfile import csv_splits, ddr_splits
from dbps.data.loaders import build_loader, carve_validation, instance_names
from dbps.data.megapixel_mnist import MegapixelMNIST, make_data_command, make_megapixel_mnist, task_targets
from dbps.data.prefetch import DevicePrefetcher
from dbps.data.reference_mnist import ReferenceMegapixelMNIST
from dbps.data.sampler import EpochSampler
from dbps.data.sparse import SparseBatch, SparseImage
from dbps.data.traffic import traffic_splits


def _register_kind_families() -> None:
    """Import every module of dbps/data/kinds/ in name order (the order `dbps datasets` lists their kinds): each
    registers its kinds on import, so a new family of kinds is one new file there and nothing else."""
    for module in sorted(pkgutil.iter_modules(kinds.__path__), key=lambda info: info.name):
        importlib.import_module(f"{kinds.__name__}.{module.name}")


_register_kind_families()

__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Batch",
    "Collate",
    "DataRequest",
    "DataSplits",
    "DatasetKind",
    "DevicePrefetcher",
    "EpochSampler",
    "FeatureBag",
    "FeatureBatch",
    "ImageBatch",
    "ImageDataset",
    "ImageFolderDataset",
    "ImageOverlay",
    "Level0Overlay",
    "MegapixelMNIST",
    "Overlay",
    "PatchSpec",
    "RaggedImageBatch",
    "ReferenceMegapixelMNIST",
    "SparseBatch",
    "SparseImage",
    "SparseImageBatch",
    "SplitFiles",
    "TrainAugment",
    "build_loader",
    "carve_validation",
    "csv_splits",
    "dataset_kind",
    "dataset_kind_builder",
    "ddr_splits",
    "folder_splits",
    "instance_names",
    "kinds",
    "make_data_command",
    "make_megapixel_mnist",
    "read_image",
    "register_kind",
    "slides",
    "task_targets",
    "traffic_splits",
]
