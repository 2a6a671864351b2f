"""Whole-slide datasets: slides read patch by patch from their tissue coordinates, and pre-extracted feature bags.

Both take a labels CSV (CLAM `case_id,slide_id,label`, or `slide_name,label`) and optionally a splits CSV (CLAM
`splits_k.csv`, TransMIL `fold{k}.csv`); without one, CAMELYON16's naming (`test_*` slides) gives the test split.
Validation is carved from train when the splits have none. Feature bags come as CLAM `h5_files/` / `pt_files/`,
TRIDENT `features_<encoder>/`, DBPS `pt/`, or IPS's one HDF5 file per split (a group per slide).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from dbps.data.batches import FeatureBag, Level0Overlay, PatchSpec, Targets, move_targets
from dbps.data.datasets import IMAGENET_MEAN, IMAGENET_STD, DataRequest, DataSplits, carve_validation, register_kind
from dbps.data.stain_augment import slide_stain
from dbps.patches import PatchSource
from dbps.tasks import TaskSpec
from dbps.wsi import (
    SLIDE_SUFFIXES,
    SlidePatches,
    check_bag_headers,
    check_splits,
    list_coord_files,
    list_feature_bags,
    read_labels,
    read_splits,
)
from dbps.wsi import FeatureBag as FeatureFile

LABEL_FILES = ("labels.csv", "label.csv")


@dataclass(frozen=True)
class SlideRef:
    """One slide of a dataset: its file and its patch coordinates file (read when the slide's turn comes)."""

    slide: Path
    coords: Path

    @classmethod
    def collate(cls, refs: list[SlideRef], targets: Targets, spec: PatchSpec) -> SlideBatch:
        return SlideBatch(refs, targets, spec)


@dataclass
class SlideBatch:
    """Slides of one step; each is its own group (slides differ in patch count) and its own patch source."""

    refs: list[SlideRef]
    targets: Targets
    spec: PatchSpec
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    read_threads: int = 2
    jitter_seeds: list[int] | None = None  # one HED-jitter draw per slide of the step, set by `augment`

    def __len__(self) -> int:
        return len(self.refs)

    def to(self, device: torch.device, non_blocking: bool = False) -> SlideBatch:
        targets = move_targets(self.targets, device, non_blocking)
        return dataclasses.replace(self, targets=targets, device=device)

    def pin_memory(self) -> SlideBatch:
        return self

    def tensors(self) -> Iterator[Tensor]:
        yield from self.targets.values()

    def augment(self, generator: torch.Generator | None) -> SlideBatch:
        if self.spec.stain_jitter is None:
            return self
        device = generator.device if generator is not None else None
        seeds = torch.randint(0, 2**62, (len(self.refs),), generator=generator, device=device).tolist()
        return dataclasses.replace(self, jitter_seeds=seeds)

    def groups(self, max_size: int) -> Iterator[SlideBatch]:
        for i in range(len(self.refs)):
            part = slice(i, i + 1)
            seeds = self.jitter_seeds[part] if self.jitter_seeds is not None else None
            yield dataclasses.replace(self, refs=self.refs[part], jitter_seeds=seeds,
                                      targets={k: v[part] for k, v in self.targets.items()})

    def source(self, dtype: torch.dtype = torch.float32) -> PatchSource:
        if len(self.refs) != 1:
            raise ValueError("a batch of slides needs `groups` before `source`: each slide is its own source")
        ref = self.refs[0]
        source = SlidePatches.from_coords_file(
            ref.slide, ref.coords, mean=self.spec.mean, std=self.spec.std, dtype=dtype, device=self.device,
            num_workers=self.read_threads,
        )
        jitter = self.spec.stain_jitter if self.jitter_seeds is not None else None
        if self.spec.stain_norm is not None or jitter is not None:
            seed = self.jitter_seeds[0] if self.jitter_seeds else 0
            source.transform = slide_stain(source, self.spec.stain_norm, jitter, seed)  # type: ignore[arg-type]
        return source

    def overlay(self, index: int, source: PatchSource) -> Level0Overlay:
        if not isinstance(source, SlidePatches):
            raise TypeError(f"a slide's overlay needs its own SlidePatches, got {type(source).__name__}")
        return Level0Overlay(source.coords().numpy(), source.patch_size_level0, source.reader)


class LabelledItems(Dataset):
    """Instances (slides, feature files) with one label each; `load` turns item i into what the loader yields.

    Args:
        items: one per instance (e.g. a SlideRef, read only when its turn comes).
        labels: class index per instance.
        task_names: the tasks that all receive the label.
        names: instance names (slide ids) for prediction tables.
    """

    def __init__(self, items: list, labels: list[int], task_names: list[str], names: list[str]) -> None:
        self.items, self._labels, self.task_names, self._names = items, labels, task_names, names

    def __len__(self) -> int:
        return len(self.items)

    def load(self, i: int) -> object:
        return self.items[i]

    def __getitem__(self, i: int) -> tuple[object, dict[str, Tensor]]:
        return self.load(i), {name: torch.tensor(self._labels[i]) for name in self.task_names}

    def names(self) -> list[str]:
        return list(self._names)


class FeatureBagFiles(LabelledItems):
    """Feature files and their labels; items are (FeatureBag of (N, D) features and coordinates, {task: label})."""

    def load(self, i: int) -> FeatureBag:
        bag = FeatureFile(self.items[i])
        coords = bag.coords()
        return FeatureBag(bag.features(), torch.from_numpy(coords) if coords is not None else None)


class IPSFeatureFile(Dataset):
    """IPS's feature files: one HDF5 per split, a group per slide with `img` (N, D), `pos` and a `label` attribute."""

    def __init__(self, path: Path, task_names: list[str]) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such feature file (IPS layout: one HDF5 per split)")
        self.path, self.task_names = path, task_names
        try:
            with h5py.File(path, "r") as handle:
                self.groups = sorted(handle)
                self._labels = [int(np.asarray(handle[g].attrs["label"]).reshape(-1)[0]) for g in self.groups]
                self.dim = int(handle[self.groups[0]]["img"].shape[-1]) if self.groups else 0
        except (OSError, KeyError) as exc:
            raise ValueError(f"{path}: not an IPS feature file (groups with `img` and a `label` attribute): {exc}") \
                from None

    def __len__(self) -> int:
        return len(self.groups)

    def labels(self) -> list[int]:
        return list(self._labels)

    def __getitem__(self, i: int) -> tuple[FeatureBag, dict[str, Tensor]]:
        with h5py.File(self.path, "r") as handle:
            group = handle[self.groups[i]]
            features = torch.from_numpy(np.asarray(group["img"], dtype=np.float32))
        return FeatureBag(features), {name: torch.tensor(self._labels[i]) for name in self.task_names}

    def names(self) -> list[str]:
        return list(self.groups)


def _labels_file(request: DataRequest) -> Path:
    if request.labels:
        return Path(request.labels)
    for name in LABEL_FILES:
        if (request.root / name).is_file():
            return request.root / name
    raise FileNotFoundError(f"{request.root}: no labels (set data.labels to a CSV `case_id,slide_id,label` or "
                            f"`slide_name,label`; looked for {', '.join(LABEL_FILES)})")


def _split_ids(request: DataRequest, labels: dict[str, int], available: set[str]) -> dict[str, list[str]]:
    """Slide ids per split: the splits CSV, else CAMELYON16's naming (`test_*` is test), else an error."""
    if request.splits:
        splits = read_splits(request.splits, labels)
    else:
        listed = sorted(set(labels) & available)
        test = [slide for slide in listed if slide.lower().startswith("test")]
        if not test:
            raise ValueError(f"{request.root}: no test slides: set data.splits to a CLAM splits_k.csv or a TransMIL "
                             "fold csv (or name test slides test_*, as CAMELYON16 does)")
        splits = {"train": [s for s in listed if s not in test], "test": test}
        check_splits(splits, labels)
    missing = sorted(slide for ids in splits.values() for slide in ids if slide not in available)
    if missing:
        raise FileNotFoundError(f"{request.root}: {len(missing)} slides of the splits have no file: "
                                f"{', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}")
    return splits


def _coverage_notes(labels: dict[str, int], available: set[str], where: object) -> list[str]:
    """Notes on labelled slides without a file and slide files without a label (both left out)."""
    notes = []
    for what, names in (("labelled slide(s) have no file in", set(labels) - available),
                        ("slide file(s) have no label and are left out, in", available - set(labels))):
        if names:
            shown = ", ".join(sorted(names)[:5]) + (" …" if len(names) > 5 else "")
            notes.append(f"{len(names)} {what} {where}: {shown}")
    return notes


def _splits_of(make: type[LabelledItems], items: dict[str, object], labels: dict[str, int],
               splits: dict[str, list[str]], request: DataRequest,
               names: list[str]) -> tuple[Dataset, Dataset, Dataset]:
    def dataset(ids: list[str]) -> Dataset:
        return make([items[s] for s in ids], [labels[s] for s in ids], names, ids)

    train = dataset(splits["train"])
    if splits.get("val"):
        return train, dataset(splits["val"]), dataset(splits["test"])
    train, val = carve_validation(train, request.val_fraction, request.seed)
    return train, val, dataset(splits["test"])


def _tasks(names: list[str], classes: list[str]) -> list[TaskSpec]:
    return [TaskSpec(name, len(classes), class_names=tuple(classes)) for name in names]


def features_kind(request: DataRequest) -> DataSplits:
    """Feature bags of a CLAM / TRIDENT / DBPS folder with a labels CSV, or IPS's per-split HDF5 files."""
    names = request.task_names or ["label"]
    notes = []
    if "train" in request.files:
        if _file(request, "train").is_file():
            return _ips_features(request, names)
        notes.append(f"data.train_file: {_file(request, 'train')} does not exist; reading the feature bags in "
                     f"{request.root} (CLAM / TRIDENT / DBPS layout) instead")
    bags = list_feature_bags(request.root)
    labels, classes = read_labels(_labels_file(request))
    splits = _split_ids(request, labels, set(bags))
    train, val, test = _splits_of(FeatureBagFiles, bags, labels, splits, request, names)  # type: ignore[arg-type]
    used = [bags[slide] for ids in splits.values() for slide in ids]
    encoder, dim = check_bag_headers(used, request.feature_encoder, request.feature_width)
    if encoder is not None:
        notes.append(f"feature bags of encoder {encoder!r}, {dim} features per patch")
    notes += _coverage_notes(labels, set(bags), request.root)
    notes.append(f"{len(classes)} classes ({', '.join(classes)}); "
                 + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
    return DataSplits(train, val, test, _tasks(names, classes), 0, None, feature_dim=dim, notes=notes)


def _file(request: DataRequest, split: str) -> Path:
    name = Path(request.files[split])
    return name if name.is_absolute() else request.root / name


def _ips_features(request: DataRequest, names: list[str]) -> DataSplits:
    if "test" not in request.files:
        raise ValueError("data.test_file: IPS feature files come per split; give the test file too")
    full, test = IPSFeatureFile(_file(request, "train"), names), IPSFeatureFile(_file(request, "test"), names)
    val = IPSFeatureFile(_file(request, "val"), names) if "val" in request.files else None
    train: Dataset = full
    if val is None:
        train, val = carve_validation(full, request.val_fraction, request.seed)
    classes = [str(c) for c in range(max(full.labels() + test.labels()) + 1)]
    return DataSplits(train, val, test, _tasks(names, classes), 0, None, feature_dim=full.dim)


def slides_kind(request: DataRequest) -> DataSplits:
    """Slides (any format OpenSlide reads) in `data.root`, their tissue coordinates in `data.coords`."""
    names = request.task_names or ["label"]
    if not request.coords:
        raise ValueError("data.coords: slides need their patch coordinates (`dbps tile SLIDES --out DIR`, or CLAM / "
                         "TRIDENT output): set it to that folder")
    coords = list_coord_files(request.coords)
    files = {path.stem: path for path in sorted(request.root.iterdir()) if path.suffix.lower() in SLIDE_SUFFIXES}
    refs = {name: SlideRef(files[name], coords[name]) for name in files.keys() & coords.keys()}
    labels, classes = read_labels(_labels_file(request))
    splits = _split_ids(request, labels, set(refs))
    train, val, test = _splits_of(LabelledItems, refs, labels, splits, request, names)  # type: ignore[arg-type]
    note = f"{len(classes)} classes ({', '.join(classes)}); " + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
    where = f"{request.root} (with coordinates in {request.coords})"
    notes = [*_coverage_notes(labels, set(refs), where), note]
    return DataSplits(train, val, test, _tasks(names, classes), 3, None, notes=notes)


register_kind(("features", "camelyon"), features_kind,
              "pre-extracted feature bags: CLAM h5_files/ pt_files/, TRIDENT features_<encoder>/, DBPS pt/, IPS HDF5")
register_kind("slides", slides_kind, "whole-slide images read patch by patch at their tissue coordinates",
              channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
