"""Whole-slide dataset kinds: slides read patch by patch from their tissue coordinates (`slides`), and
pre-extracted feature bags (`features`, `camelyon`).

Both take a labels CSV (CLAM `case_id,slide_id,label`, or `slide_name,label`) and optionally a splits CSV (CLAM
`splits_k.csv`, TransMIL `fold{k}.csv`); without one, CAMELYON16's naming (`test_*` slides) gives the test split.
Validation is carved from train when the splits have none. Feature bags come as CLAM `h5_files/` / `pt_files/`,
TRIDENT `features_<encoder>/`, DBPS `pt/`, or IPS's one HDF5 file per split (a group per slide).
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from dbps.data.batches import SlideRef
from dbps.data.kinds import IMAGENET_MEAN, IMAGENET_STD, DataRequest, DataSplits, dataset_kind_builder
from dbps.data.loaders import carve_validation
from dbps.data.slides import FeatureBagFiles, IPSFeatureFile, LabelledItems
from dbps.tasks import TaskSpec
from dbps.wsi import (
    SLIDE_SUFFIXES,
    check_bag_headers,
    check_splits,
    list_coord_files,
    list_feature_bags,
    read_labels,
    read_splits,
)

LABEL_FILES = ("labels.csv", "label.csv")


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


@dataset_kind_builder(("features", "camelyon"),
                      summary="pre-extracted feature bags: CLAM h5_files/ pt_files/, TRIDENT features_<encoder>/, "
                              "DBPS pt/, IPS HDF5")
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


@dataset_kind_builder("slides", summary="whole-slide images read patch by patch at their tissue coordinates",
                      channels=3, mean=IMAGENET_MEAN, std=IMAGENET_STD)
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
