"""Images in: Megapixel MNIST, photo datasets (folders, lists, traffic signs), augmentation, sparse batches, loaders."""

from dbps.data.augment import TrainAugment
from dbps.data.datasets import DATASETS, DataSplits, build_loader, carve_validation, collate
from dbps.data.folder import ImageFolderDataset, folder_splits
from dbps.data.image_dataset import ImageDataset, SplitFiles
from dbps.data.images import read_image
from dbps.data.listfile import csv_splits, ddr_splits
from dbps.data.megapixel_mnist import MegapixelMNIST, make_megapixel_mnist, task_targets
from dbps.data.reference_mnist import ReferenceMegapixelMNIST
from dbps.data.sparse import SparseBatch, SparseImage, to_device
from dbps.data.traffic import traffic_splits

__all__ = [
    "DATASETS",
    "DataSplits",
    "ImageDataset",
    "ImageFolderDataset",
    "MegapixelMNIST",
    "ReferenceMegapixelMNIST",
    "SparseBatch",
    "SparseImage",
    "SplitFiles",
    "TrainAugment",
    "build_loader",
    "carve_validation",
    "collate",
    "csv_splits",
    "ddr_splits",
    "folder_splits",
    "make_megapixel_mnist",
    "read_image",
    "task_targets",
    "to_device",
    "traffic_splits",
]
