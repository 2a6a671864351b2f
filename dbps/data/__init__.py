"""Data in: dataset kinds, Megapixel MNIST generation, batches and how they become patch sources, loaders."""

from dbps.data.batches import (
    Batch,
    Collate,
    FeatureBag,
    FeatureBatch,
    ImageBatch,
    PatchSpec,
    RaggedImageBatch,
    SparseImageBatch,
)
from dbps.data.datasets import (
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataRequest,
    DatasetKind,
    DataSplits,
    build_loader,
    carve_validation,
    dataset_kind,
    register_kind,
)
from dbps.data.megapixel_mnist import MegapixelMNIST, make_megapixel_mnist, task_targets
from dbps.data.prefetch import DevicePrefetcher
from dbps.data.sampler import EpochSampler
from dbps.data.sparse import SparseBatch, SparseImage

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
    "MegapixelMNIST",
    "PatchSpec",
    "RaggedImageBatch",
    "SparseBatch",
    "SparseImage",
    "SparseImageBatch",
    "build_loader",
    "carve_validation",
    "dataset_kind",
    "make_megapixel_mnist",
    "register_kind",
    "task_targets",
]
