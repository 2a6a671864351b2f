"""Swedish Traffic Signs (speed-limit subset) read as the IPS loader reads it: Set1/ and Set2/ with annotations.txt.

A line of annotations.txt is `file.jpg:SIGN;SIGN;...` (nothing after the colon when the image has no sign); a sign
is `VISIBILITY, x2, y2, x1, y1, TYPE, NAME`, or `MISC_SIGNS`, which is skipped. Numbers may carry trailing junk
(`1002.78l`), which is ignored. Labels: EMPTY (no sign) or the name of the best speed-limit sign, best meaning the
most visible (VISIBLE < BLURRED < SIDE_ROAD < OCCLUDED) and then the largest; the image is kept only if that sign
is VISIBLE, and images whose signs are all of other kinds are dropped. The data is never downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dbps.data.image_dataset import SplitFiles, check_files_exist
from dbps.files import read_text

TRAFFIC_CLASSES = ["EMPTY", "50_SIGN", "70_SIGN", "80_SIGN"]
VISIBILITIES = ("VISIBLE", "BLURRED", "SIDE_ROAD", "OCCLUDED")
SKIPPED_SIGN = "MISC_SIGNS"
_EXPECTED = "the Swedish Traffic Signs folders Set1/ and Set2/, each with annotations.txt and its images"


@dataclass(frozen=True)
class Sign:
    """One annotated sign: visibility, bounding-box area in pixels, type (e.g. PROHIBITORY) and name (e.g. 70_SIGN)."""

    visibility: str
    area: float
    type: str
    name: str


def _number(text: str, origin: str) -> float:
    """A float from `text`, ignoring trailing characters that are not part of it (as the reference does)."""
    for end in range(len(text), 0, -1):
        try:
            return float(text[:end])
        except ValueError:
            continue
    raise ValueError(f"{origin}: {text!r} is not a number")


def parse_sign(text: str, origin: str) -> Sign | None:
    """One `VISIBILITY, x2, y2, x1, y1, TYPE, NAME` entry; None for MISC_SIGNS."""
    parts = [part.strip() for part in text.split(",")]
    if parts[0] == SKIPPED_SIGN:
        return None
    if len(parts) < 7:
        raise ValueError(f"{origin}: sign {text.strip()!r} is not `VISIBILITY, x2, y2, x1, y1, TYPE, NAME`")
    if parts[6] in TRAFFIC_CLASSES and parts[0] not in VISIBILITIES:  # other signs are never ranked
        raise ValueError(f"{origin}: visibility {parts[0]!r} is not one of {list(VISIBILITIES)}")
    x_max, y_max, x_min, y_min = (_number(part, origin) for part in parts[1:5])
    return Sign(parts[0], (x_max - x_min) * (y_max - y_min), parts[5], parts[6])


def parse_annotation_line(line: str, origin: str) -> tuple[str, list[Sign]]:
    """`file.jpg:SIGN;SIGN;...` → the file name and its signs (MISC_SIGNS left out)."""
    name, separator, rest = line.strip().partition(":")
    if not separator or not name:
        raise ValueError(f"{origin}: {line.strip()!r} is not `file.jpg:SIGN;SIGN;...`")
    signs = [parse_sign(text, origin) for text in rest.split(";") if text.strip()]
    return name, [sign for sign in signs if sign is not None]


def traffic_label(signs: list[Sign]) -> int | None:
    """The class index of an image with these signs, or None when the reference drops the image."""
    if not signs:
        return TRAFFIC_CLASSES.index("EMPTY")
    limits = [sign for sign in signs if sign.name in TRAFFIC_CLASSES[1:]]
    if not limits:
        return None  # only other kinds of sign
    best = min(limits, key=lambda sign: (VISIBILITIES.index(sign.visibility), -sign.area))
    return TRAFFIC_CLASSES.index(best.name) if best.visibility == "VISIBLE" else None


def traffic_set(seed: int, train: bool) -> str:
    """Which set a split reads: seed 0 trains on Set1 and tests on Set2, seed 1 swaps them, and so on by parity."""
    return f"Set{1 + (seed + 1 + int(train)) % 2}"


def read_annotations(set_dir: Path) -> SplitFiles:
    """The kept images of one set folder and their labels."""
    annotations = set_dir / "annotations.txt"
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations}: not found; expected {_EXPECTED} (dbps never downloads them)")
    paths, labels = [], []
    for number, line in enumerate(read_text(annotations).splitlines(), start=1):
        if not line.strip():
            continue
        name, signs = parse_annotation_line(line, f"{annotations} line {number}")
        label = traffic_label(signs)
        if label is not None:
            paths.append(set_dir / name)
            labels.append(label)
    if not paths:
        raise ValueError(f"{annotations}: no image is kept by the speed-limit rules")
    check_files_exist(paths, annotations)
    return SplitFiles(paths, labels, list(TRAFFIC_CLASSES))


def traffic_splits(root: str | Path, seed: int = 0) -> dict[str, SplitFiles]:
    """{'train': ..., 'test': ...} of the Swedish Traffic Signs under `root`, split by `seed` as IPS does."""
    root = Path(root)
    return {split: read_annotations(root / traffic_set(seed, split == "train")) for split in ("train", "test")}
