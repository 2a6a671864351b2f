"""Photo dataset kinds, and the reference repositories' `--dataset` names mapped onto them.

- `folder` (`cqu_bpdd`, `eyes`, `xbd`, `fmow`, `mame`): root/{train,test}/<class>/* photos, optional val/;
- `list`: CSV lists `path,label[,split]`, or DDR's `name label` text files;
- `traffic`: Swedish Traffic Signs (Set1/, Set2/ with annotations.txt).
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from dbps.data.folder import folder_splits
from dbps.data.image_dataset import ImageDataset, SplitFiles
from dbps.data.kinds import IMAGENET_MEAN, IMAGENET_STD, DataRequest, DataSplits, dataset_kind_builder
from dbps.data.listfile import csv_splits, ddr_splits
from dbps.data.loaders import carve_validation
from dbps.data.traffic import traffic_splits
from dbps.tasks import TaskSpec

PHOTO_DEFAULTS = {"channels": 3, "mean": IMAGENET_MEAN, "std": IMAGENET_STD,
                  "augment": {"color_jitter": 0.1, "translate": 100}}


def photo_splits(files: dict[str, SplitFiles], request: DataRequest, notes: list[str] | None = None) -> DataSplits:
    """Image datasets of the splits found (validation carved from train when there is none), one label per task."""
    names = request.task_names or ["label"]
    channels = request.channels or 3

    def dataset(split: str) -> ImageDataset:
        return ImageDataset(files[split], channels=channels, resize=request.resize, task_names=names)

    train: Dataset = dataset("train")
    if "val" in files:
        val: Dataset = dataset("val")
    else:
        train, val = carve_validation(train, request.val_fraction, request.seed)
    classes = files["train"].classes
    tasks = [TaskSpec(name, len(classes), class_names=tuple(classes)) for name in names]
    notes = list(notes or [])
    counts = ", ".join(f"{split} {len(part.paths)}" for split, part in files.items())
    notes.append(f"{len(classes)} classes ({', '.join(classes[:8])}{', …' if len(classes) > 8 else ''}); {counts}")
    return DataSplits(train, val, dataset("test"), tasks, channels, request.resize, notes=notes)


def _is_ddr(root: Path) -> bool:
    return (root / "DR_grading" / "train.txt").is_file() or (root / "train.txt").is_file()


@dataset_kind_builder(("folder", "cqu_bpdd", "eyes", "xbd", "fmow", "mame"),
                      summary="photos in root/{train,test}/<class>/ (optional val/); DDR's lists are recognised",
                      **PHOTO_DEFAULTS)
def folder_kind(request: DataRequest) -> DataSplits:
    """Class folders; a DDR release (DR_grading/ with its `name label` lists) is read as such."""
    if _is_ddr(request.root) and not (request.root / "train").is_dir():
        return list_kind(request)
    return photo_splits(folder_splits(request.root), request)


@dataset_kind_builder("list", summary="photos listed in CSV files (path,label[,split]) or DDR text lists",
                      **PHOTO_DEFAULTS)
def list_kind(request: DataRequest) -> DataSplits:
    """Split lists: a CSV per split or one CSV with a split column (`data.train_file` …), or DDR's text lists."""
    if not request.files:
        if _is_ddr(request.root):
            return photo_splits(ddr_splits(request.root, keep_ungradable=not request.drop_ungradable), request)
        found = [name for name in ("train.csv", "data.csv", "labels.csv") if (request.root / name).is_file()]
        if not found:
            raise FileNotFoundError(f"{request.root}: no list given (data.train_file) and no train.csv, data.csv or "
                                    "DR_grading/train.txt found")
        files = csv_splits(request.root / found[0], image_root=request.root)
    else:
        files = {}
        for split, name in request.files.items():
            path = Path(name) if Path(name).is_absolute() else request.root / name
            part = csv_splits(path, image_root=request.root, default_split=split,
                              classes=files["train"].classes if "train" in files else None)
            files |= {key: value for key, value in part.items() if key == split or key not in files}
    missing = [split for split in ("train", "test") if split not in files]
    if missing:
        raise ValueError(f"{request.root}: the lists hold no {' and no '.join(missing)} rows")
    return photo_splits(files, request)


@dataset_kind_builder("traffic", summary="Swedish Traffic Signs (Set1/, Set2/, annotations.txt), 4 classes",
                      **PHOTO_DEFAULTS | {"resize": (1200, 1600),
                                          "augment": {"color_jitter": 0.1, "translate": 100, "erase_fraction": 0.1}})
def traffic_kind(request: DataRequest) -> DataSplits:
    """Swedish Traffic Signs; `train.seed` 0 trains on Set1 and tests on Set2, as the IPS loader does."""
    return photo_splits(traffic_splits(request.root, request.seed), request)
