"""Datasets shipped as lists: CSV `path,label[,split]` files and DDR-style `name label` text files."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from dbps.data.image_dataset import SplitFiles, check_files_exist
from dbps.data.images import is_image_file
from dbps.files import read_csv, read_text

log = logging.getLogger(__name__)

SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
DDR_GRADES = ["no_dr", "mild", "moderate", "severe", "proliferative", "ungradable"]
DDR_UNGRADABLE = 5


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _class_indices(labels: Sequence[str], classes: Sequence[str] | None, origin: Path) -> tuple[list[int], list[str]]:
    """Labels as class indices: integers are indices, anything else a class name (sorted names when not given)."""
    if all(_is_int(label) for label in labels):
        indices = [int(label) for label in labels]
        names = list(classes) if classes is not None else [str(c) for c in range(max(indices, default=-1) + 1)]
        bad = [i for i in indices if not 0 <= i < len(names)]
        if bad:
            raise ValueError(f"{origin}: label {bad[0]} is outside the {len(names)} classes {names}")
        return indices, names
    names = list(classes) if classes is not None else sorted(set(labels))
    unknown = sorted(set(labels) - set(names))
    if unknown:
        raise ValueError(f"{origin}: label(s) {unknown[:5]} are not among the classes {names}")
    lookup = {name: i for i, name in enumerate(names)}
    return [lookup[label] for label in labels], names


def _read_rows(csv_path: Path) -> list[list[str]]:
    rows = [[cell.strip() for cell in row] for row in read_csv(csv_path) if any(cell.strip() for cell in row)]
    if rows and not is_image_file(rows[0][0]):
        rows = rows[1:]  # a header: its first cell is no image file name
    for number, row in enumerate(rows, start=1):
        if len(row) not in (2, 3) or not row[0] or not row[1]:
            raise ValueError(f"{csv_path}: row {number} {row} is not `path,label[,split]`")
    if not rows:
        raise ValueError(f"{csv_path}: no rows (expected `path,label[,split]`)")
    return rows


def csv_splits(
    csv_path: str | Path,
    *,
    image_root: str | Path | None = None,
    classes: Sequence[str] | None = None,
    default_split: str = "train",
) -> dict[str, SplitFiles]:
    """Read a CSV of `path,label[,split]` rows (a header row is optional and recognised by its first cell).

    Args:
        csv_path: the list file.
        image_root: folder that relative paths start from; default: the CSV's folder. Absolute paths stay as they are.
        classes: class names (index = position). None: integer labels name classes "0".."max", other labels are
            class names sorted alphabetically, over all rows of the file.
        default_split: the split of rows without a third column. Split values: train, val (or valid, validation),
            test.

    Raises:
        FileNotFoundError: the CSV or some listed images are missing (the first few are named, with the count).
        ValueError: a malformed row, an unknown split or label.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"{csv_path}: no such list file")
    root = Path(image_root) if image_root is not None else csv_path.parent
    rows = _read_rows(csv_path)
    given = [row[2] if len(row) == 3 else default_split for row in rows]
    splits = [SPLIT_NAMES.get(split.lower()) for split in given]
    if None in splits:
        number = splits.index(None)
        raise ValueError(f"{csv_path}: row {number + 1} has split {given[number]!r}; known: {sorted(SPLIT_NAMES)}")
    indices, names = _class_indices([row[1] for row in rows], classes, csv_path)
    paths = [root / row[0] for row in rows]
    check_files_exist(paths, csv_path)
    result: dict[str, SplitFiles] = {}
    for split in dict.fromkeys(splits):
        chosen = [i for i, s in enumerate(splits) if s == split]
        result[split] = SplitFiles([paths[i] for i in chosen], [indices[i] for i in chosen], names)  # type: ignore[index]
    return result


def _read_ddr_list(list_path: Path) -> list[tuple[str, int]]:
    entries = []
    for number, line in enumerate(read_text(list_path).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) >= len(DDR_GRADES):
            raise ValueError(f"{list_path}: line {number} {line.strip()!r} is not `name grade` with grade 0..5")
        entries.append((parts[0], int(parts[1])))
    return entries


def ddr_splits(root: str | Path, *, keep_ungradable: bool = False) -> dict[str, SplitFiles]:
    """DDR diabetic-retinopathy grading: DR_grading/{train,valid,test}.txt next to DR_grading/{train,valid,test}/.

    Each list line is `name grade`; grades 0–4 are no DR, mild, moderate, severe and proliferative DR, grade 5 is
    "ungradable" (too poor to grade). The reference `eyes` configs have 5 classes, so ungradable images are left
    out by default (how many is logged); `keep_ungradable=True` keeps them as a sixth class.

    Args:
        root: the DR_grading folder, or a folder that holds it.
        keep_ungradable: keep grade-5 images as class 5.

    Returns:
        {'train': ..., 'test': ...} plus 'val' when valid.txt exists.
    """
    root = Path(root)
    if (root / "DR_grading").is_dir():
        root = root / "DR_grading"
    classes = DDR_GRADES if keep_ungradable else DDR_GRADES[:DDR_UNGRADABLE]
    result: dict[str, SplitFiles] = {}
    for split, stem in (("train", "train"), ("val", "valid"), ("test", "test")):
        list_path = root / f"{stem}.txt"
        if not list_path.is_file():
            if split == "val":
                continue
            expected = f"DR_grading/{stem}.txt and DR_grading/{stem}/"
            raise FileNotFoundError(f"{list_path}: no such list (expected {expected})")
        entries = _read_ddr_list(list_path)
        kept = [(name, grade) for name, grade in entries if keep_ungradable or grade != DDR_UNGRADABLE]
        if len(kept) < len(entries):
            log.info("note: DDR %s: left out %d ungradable (grade 5) images", stem, len(entries) - len(kept))
        paths = [root / stem / name for name, _ in kept]
        check_files_exist(paths, list_path)
        result[split] = SplitFiles(paths, [grade for _, grade in kept], list(classes))
    return result
