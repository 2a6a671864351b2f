"""Slide tables: labels (CLAM `case_id,slide_id,label`, DBPS `slide_name,label`, TransMIL folds) and splits.

Splits are CLAM `splits_{k}.csv` (columns `train,val,test` of slide ids, ragged) or TransMIL `fold{k}.csv`
(`train,train_label,val,val_label,test,test_label`). A slide in two splits (leakage) or in a split but not in
the labels is an error that names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from dbps.files import read_csv

SPLITS = ("train", "val", "test")


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise FileNotFoundError(f"table not found: {path}")
    table = read_csv(path)
    if not table:
        raise ValueError(f"{path}: empty table")
    header = [name.strip() for name in table[0]]
    rows = [{key: (row[i] if i < len(row) else "").strip() for i, key in enumerate(header)} for row in table[1:]]
    return header, rows


def _listed(names: Iterable[str], limit: int = 8) -> str:
    names = sorted(names)
    more = f" … and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(repr(name) for name in names[:limit]) + more


def _label_pairs(path: Path, header: list[str], rows: list[dict[str, str]]) -> list[tuple[str, str]]:
    """(slide id, label text) from whichever of the three layouts the header shows."""
    for key in ("slide_id", "slide_name"):
        if key in header and "label" in header:
            return [(row[key], row["label"]) for row in rows if row[key]]
    folds = [split for split in SPLITS if split in header and f"{split}_label" in header]
    if folds:
        return [(row[split], row[f"{split}_label"]) for split in folds for row in rows if row[split]]
    raise ValueError(
        f"{path}: expected columns slide_id,label (CLAM), slide_name,label (DBPS) or train,train_label,… (TransMIL); "
        f"found {','.join(header)}"
    )


def _class_names(texts: set[str]) -> list[str]:
    """Sorted label texts, numerically when they are all integers (so '10' comes after '2')."""
    try:
        return sorted(texts, key=int)
    except ValueError:
        return sorted(texts)


def read_labels(path: str | Path, label_dict: Mapping[str, int] | None = None) -> tuple[dict[str, int], list[str]]:
    """Slide id → class index, and the class names by index.

    Args:
        path: CLAM (`case_id,slide_id,label`), DBPS (`slide_name,label`) or TransMIL fold CSV.
        label_dict: label text → class index (CLAM's `label_dict`); by default the sorted distinct labels.
            Several texts may share an index; its name is then their texts joined by '/'.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    texts: dict[str, str] = {}
    for slide, text in _label_pairs(path, header, rows):
        if not text:
            raise ValueError(f"{path}: slide {slide!r} has an empty label")
        if texts.setdefault(slide, text) != text:
            raise ValueError(f"{path}: slide {slide!r} has two labels, {texts[slide]!r} and {text!r}")
    if label_dict is None:
        label_dict = {text: index for index, text in enumerate(_class_names(set(texts.values())))}
    unknown = set(texts.values()) - set(label_dict)
    if unknown:
        raise ValueError(f"{path}: labels {_listed(unknown)} are not in the label dictionary ({_listed(label_dict)})")
    num_classes = max(label_dict.values(), default=-1) + 1
    classes = ["/".join(text for text, index in label_dict.items() if index == i) for i in range(num_classes)]
    return {slide: label_dict[text] for slide, text in texts.items()}, classes


def read_splits(path: str | Path, labels: Mapping[str, object] | None = None) -> dict[str, list[str]]:
    """Split name ('train', 'val', 'test': those the file has) → slide ids, checked by `check_splits`.

    Args:
        path: CLAM `splits_{k}.csv` or TransMIL `fold{k}.csv`.
        labels: slide id → label; when given, every listed slide must be in it.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    present = [split for split in SPLITS if split in header]
    if not present:
        raise ValueError(f"{path}: expected columns train,val,test (CLAM) or train,train_label,… (TransMIL); "
                         f"found {','.join(header)}")
    splits = {split: [row[split] for row in rows if row[split]] for split in present}
    check_splits(splits, labels, source=str(path))
    return splits


def check_splits(
    splits: Mapping[str, list[str]], labels: Mapping[str, object] | None = None, source: str = "splits"
) -> None:
    """Raise if a slide is listed twice, in two splits (leakage), or (with `labels`) has no label."""
    seen: dict[str, str] = {}
    for split, slides in splits.items():
        for slide in slides:
            if slide in seen:
                where = f"twice in {split}" if seen[slide] == split else f"in both {seen[slide]} and {split}"
                raise ValueError(f"{source}: slide {slide!r} is {where}")
            seen[slide] = split
    if labels is not None:
        missing = set(seen) - set(labels)
        if missing:
            raise ValueError(f"{source}: {len(missing)} slides have no label: {_listed(missing)}")
