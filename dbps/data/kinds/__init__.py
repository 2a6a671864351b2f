"""Dataset kinds by name: what a config's `data.name` builds and the `data` defaults that name implies.

A kind is a function `DataRequest → DataSplits`, registered beside its definition with `@dataset_kind_builder`
(or `register_kind`). One module per family; `dbps/data/__init__.py` imports every module of this folder, so every
kind is registered once `dbps.data` is:

- `mnist`: Megapixel MNIST (`megapixel_mnist`, and the reference name `mnist`);
- `photos`: class folders (`folder` and the reference names), split lists (`list`), Swedish Traffic Signs (`traffic`);
- `slides`: whole-slide images (`slides`) and pre-extracted feature bags (`features`, `camelyon`).

A kind may also make its data before it is read (`prepare`, given a `PrepareRequest`: Megapixel MNIST generates
itself where `data.generate` asks) and name the tasks its datasets carry (`tasks`, for benchmarks that read no
data).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from torch.utils.data import Dataset

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


@dataclass(frozen=True)
class PrepareRequest:
    """What a kind's `prepare` is asked before the data is read: plain values from the config.

    Attributes:
        root: the dataset folder (`data.root`).
        generate: the `data.generate` settings, None when the config gives none.
        progress: show progress while generating.
        may_generate: False where nothing may be written (evaluation, every process but the first).
        root_named: the folder was named on the command line without `data.generate`: a dataset missing there is
            an error that says how to make it, never generated into a mistyped path.
        root_key: `data.root` as the user wrote it, for messages (`dataset_path (data.root)`).
    """

    root: Path
    generate: Mapping[str, Any] | None = None
    progress: bool = True
    may_generate: bool = True
    root_named: bool = False
    root_key: str = "data.root"


Prepare = Callable[[PrepareRequest], list[str]]


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
        prepare: makes the data before it is read when asked and missing (PrepareRequest → notes, one line each;
            errors are one line too), None for kinds that only read what is there.
        tasks: the tasks the kind's datasets carry whatever their files (benchmarks use them without data), empty
            when they depend on the files.
    """

    build: Callable[[DataRequest], DataSplits]
    defaults: Mapping[str, Any]
    summary: str
    prepare: Prepare | None = None
    tasks: tuple[TaskSpec, ...] = ()

    def __call__(self, request: DataRequest) -> DataSplits:
        return self.build(request)


DATASETS: Registry[DataSplits] = Registry("dataset")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def register_kind(names: str | tuple[str, ...], build: Callable[[DataRequest], DataSplits], summary: str, *,
                  prepare: Prepare | None = None, tasks: tuple[TaskSpec, ...] = (), **defaults: Any) -> None:
    """Register `build` under each name with the `data` defaults that name implies (and its `prepare`, `tasks`)."""
    kind = DatasetKind(build, defaults, summary, prepare, tuple(tasks))
    for name in (names,) if isinstance(names, str) else names:
        DATASETS.register(name)(kind)


Build = TypeVar("Build", bound=Callable[[DataRequest], DataSplits])


def dataset_kind_builder(names: str | tuple[str, ...], *, summary: str, prepare: Prepare | None = None,
                         tasks: tuple[TaskSpec, ...] = (), **defaults: Any) -> Callable[[Build], Build]:
    """Decorator form of `register_kind`: registers the function it decorates and returns it unchanged.

    Example:
        >>> @dataset_kind_builder("npy", summary="class folders of greyscale .npy arrays", channels=1)
        ... def npy_kind(request: DataRequest) -> DataSplits: ...
    """

    def decorator(build: Build) -> Build:
        register_kind(names, build, summary, prepare=prepare, tasks=tasks, **defaults)
        return build

    return decorator


def dataset_kind(name: str) -> DatasetKind:
    """The registered kind of a dataset name (an error listing the known names otherwise)."""
    return DATASETS.get(name)  # type: ignore[return-value]


__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataRequest",
    "DataSplits",
    "DatasetKind",
    "Prepare",
    "PrepareRequest",
    "dataset_kind",
    "dataset_kind_builder",
    "register_kind",
]
