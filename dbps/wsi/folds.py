"""Patient-grouped, label-stratified k-fold splits written as CLAM `splits_{k}.csv`, checked for leakage.

scikit-learn's `StratifiedGroupKFold` cuts the slides into k folds that keep every patient (CLAM's `case_id`)
in one fold and each fold's class balance close to the whole's. Fold k is the test set of split k, fold k + 1
(mod k) its validation set, the other folds its training set: every slide is tested exactly once, and no patient
is in two sets of a split. Labels without patients (`slide_name,label`) make each slide its own patient.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import numpy as np

from dbps.files import write_text
from dbps.wsi.tables import SPLITS, _read_rows, check_splits, read_labels, read_splits


def read_patients(path: str | Path) -> dict[str, str]:
    """Slide id → patient id from a CLAM labels CSV (`case_id`); each slide its own patient without that column."""
    header, rows = _read_rows(Path(path))
    key = "slide_id" if "slide_id" in header else "slide_name"
    if key not in header:
        raise ValueError(f"{path}: expected a slide_id (CLAM) or slide_name (DBPS) column; found {','.join(header)}")
    patients: dict[str, str] = {}
    for row in rows:
        slide = row[key]
        if not slide:
            continue
        patient = row.get("case_id") or slide
        if patients.setdefault(slide, patient) != patient:
            raise ValueError(f"{path}: slide {slide!r} belongs to two patients, {patients[slide]!r} and {patient!r}")
    return patients


def patient_folds(labels: dict[str, int], patients: dict[str, str], folds: int, seed: int = 0) -> list[list[str]]:
    """The slides of each of `folds` patient-grouped, label-stratified folds (sorted within a fold).

    Raises:
        ValueError: fewer patients than folds, or a class with fewer patients than folds (a fold without it).
    """
    from sklearn.model_selection import StratifiedGroupKFold

    slides = sorted(labels)
    groups = [patients[slide] for slide in slides]
    if folds < 2:
        raise ValueError(f"k-fold splits need at least 2 folds, got {folds}")
    if len(set(groups)) < folds:
        raise ValueError(f"{len(set(groups))} patients cannot fill {folds} folds")
    per_class = Counter()
    for _, label in {(patients[s], labels[s]) for s in slides}:
        per_class[label] += 1
    scarce = {label: count for label, count in per_class.items() if count < folds}
    if scarce:
        shown = ", ".join(f"class {label}: {count}" for label, count in sorted(scarce.items()))
        raise ValueError(f"too few patients for {folds} stratified folds ({shown}); use fewer folds")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    y = np.array([labels[slide] for slide in slides])
    return [sorted(slides[i] for i in test) for _, test in splitter.split(np.zeros(len(slides)), y, groups)]


def fold_splits(folds: list[list[str]], validation: bool = True) -> list[dict[str, list[str]]]:
    """Split k: test = fold k, val = fold k + 1 (mod k) when `validation`, train = the others."""
    splits = []
    for k, test in enumerate(folds):
        val = folds[(k + 1) % len(folds)] if validation else []
        held = set(test) | set(val)
        train = sorted(slide for fold in folds for slide in fold if slide not in held)
        splits.append({"train": train, "val": list(val), "test": list(test)})
    return splits


def check_patient_leakage(splits: dict[str, list[str]], patients: dict[str, str], source: str = "splits") -> None:
    """Raise when a slide or a patient is in two sets of a split (a patient's slides must stay together)."""
    check_splits(splits, source=source)
    where: dict[str, str] = {}
    for split, slides in splits.items():
        for slide in slides:
            patient = patients.get(slide, slide)
            if where.setdefault(patient, split) != split:
                raise ValueError(f"{source}: patient {patient!r} has slides in both {where[patient]} and {split}")


def _csv_text(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def write_fold_splits(splits: list[dict[str, list[str]]], out_dir: Path, labels: dict[str, int],
                      classes: list[str]) -> list[Path]:
    """`splits_{k}.csv` (CLAM: columns train,val,test of slide ids, ragged) and `splits_{k}_descriptor.csv`
    (slides per class and split), each written atomically; returns the split files."""
    written = []
    for k, split in enumerate(splits):
        longest = max(len(split[name]) for name in SPLITS)
        rows: list[list[object]] = [["", *SPLITS]]
        rows += [[i, *(split[name][i] if i < len(split[name]) else "" for name in SPLITS)] for i in range(longest)]
        path = out_dir / f"splits_{k}.csv"
        write_text(path, _csv_text(rows))
        counts = [[name, *(sum(labels[s] == c for s in split[part]) for part in SPLITS)]
                  for c, name in enumerate(classes)]
        write_text(out_dir / f"splits_{k}_descriptor.csv", _csv_text([["", *SPLITS], *counts]))
        written.append(path)
    return written


def make_splits(labels_csv: Path, out_dir: Path, folds: int, seed: int = 0, validation: bool = True) -> list[Path]:
    """Read the labels, cut patient-grouped stratified folds, write CLAM split files, and read them back checked."""
    labels, classes = read_labels(labels_csv)
    patients = read_patients(labels_csv)
    splits = fold_splits(patient_folds(labels, patients, folds, seed), validation)
    for k, split in enumerate(splits):
        check_patient_leakage(split, patients, f"split {k}")
    written = write_fold_splits(splits, out_dir, labels, classes)
    for path, split in zip(written, splits, strict=True):
        back = read_splits(path, labels)
        if {name: back.get(name, []) for name in SPLITS} != split:
            raise AssertionError(f"{path}: reads back differently from what was written")
    return written
