"""Patch-coordinate h5 files: written TRIDENT- and CLAM-compatible, read from either with attributes missing.

Both tools store `coords` (N × 2, level-0 top-left x, y) with attributes on that dataset. TRIDENT writes
`<job>/<mag>x_<ps>px_<ov>px_overlap/patches/<slide>_patches.h5` with `patch_size` (at the target
magnification), `patch_size_level0`, `level0_magnification`, `target_magnification`, `overlap`, …; CLAM writes
`patches/<slide>.h5` with `patch_size` (at `patch_level`), `patch_level`, `downsample`, `level_dim`, …. Older files
lack some of these: what follows from the rest, the folder name or the slide is inferred; what does not is named.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from dbps.files import atomic_write
from dbps.wsi.reader import SlideReader
from dbps.wsi.tiling import level0_patch_size

_SETTINGS_FOLDER = re.compile(r"^(\d+(?:\.\d+)?)x_(\d+)px_(\d+)px_overlap$")


@dataclass(frozen=True)
class PatchCoords:
    """The patches of one slide: level-0 (x, y) top-left corners and the geometry needed to read them."""

    path: Path
    coords: np.ndarray  # (N, 2) int64
    patch_size: int  # side of a patch as read (at the target magnification)
    patch_size_level0: int  # side of a patch in level-0 pixels
    target_magnification: float | None
    level0_magnification: float | None
    overlap: int
    name: str


def coords_attributes(
    reader: SlideReader, *, name: str, patch_size: int, patch_size_level0: int, target_magnification: float,
    overlap: int, savetodir: str | Path,
) -> dict[str, Any]:
    """TRIDENT's attributes for a slide's coordinates, plus CLAM's when a pyramid level is at the target scale.

    CLAM readers read `patch_size` pixels at `patch_level`, so its attributes are written only when a level has
    exactly the target downsample (e.g. 20× patches of a 20× slide); otherwise they would read another scale.
    """
    if reader.magnification is None:
        raise ValueError(f"{reader.path}: level-0 magnification unknown (the file records no objective or µm/pixel)")
    width, height = reader.dimensions
    attrs: dict[str, Any] = {
        "patch_size": patch_size, "patch_size_level0": patch_size_level0,
        "level0_magnification": float(reader.magnification), "target_magnification": float(target_magnification),
        "overlap": overlap, "name": name, "savetodir": str(savetodir), "level0_width": width, "level0_height": height,
    }
    for level, (level_width, level_height) in enumerate(reader.level_dimensions):
        downsample = (width / level_width, height / level_height)
        if round(patch_size * downsample[0]) == patch_size_level0 == round(patch_size * downsample[1]):
            dims = (level_width, level_height)
            attrs |= {"patch_level": level, "downsample": downsample, "downsampled_level_dim": dims, "level_dim": dims}
            break
    return attrs


def write_coords(path: Path, coords: np.ndarray, attrs: dict[str, Any]) -> None:
    """Write `coords` (N, 2) int64 with `attrs` on the dataset, atomically."""

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as handle:
            dataset = handle.create_dataset("coords", data=np.asarray(coords, dtype=np.int64).reshape(-1, 2))
            dataset.attrs.update(attrs)

    atomic_write(path, write)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def read_attributes(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The `coords` array of a coordinate file and its attributes (the file's own attributes as fallback)."""
    try:
        with h5py.File(path, "r") as handle:
            if "coords" not in handle:
                raise ValueError(f"{path}: no 'coords' dataset (found: {', '.join(handle) or 'nothing'})")
            dataset = handle["coords"]
            attrs = {key: _plain(value) for key, value in handle.attrs.items()}
            attrs |= {key: _plain(value) for key, value in dataset.attrs.items()}
            coords = np.asarray(dataset[()], dtype=np.int64)
    except OSError as exc:
        raise ValueError(f"{path}: not a readable h5 file ({exc})") from None
    if coords.size == 0:
        coords = coords.reshape(0, 2)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"{path}: 'coords' must be N × 2, got shape {coords.shape}")
    return coords, attrs


def count_coords(path: Path) -> int:
    """Number of patches in a coordinate file, without reading them."""
    try:
        with h5py.File(path, "r") as handle:
            if "coords" not in handle:
                raise ValueError(f"{path}: no 'coords' dataset")
            return int(handle["coords"].shape[0])
    except OSError as exc:
        raise ValueError(f"{path}: not a readable h5 file ({exc})") from None


def _folder_settings(path: Path) -> tuple[float, int, int] | None:
    """(magnification, patch size, overlap) from TRIDENT's `<mag>x_<ps>px_<ov>px_overlap/patches/` folder."""
    match = _SETTINGS_FOLDER.match(path.parent.parent.name)
    return (float(match[1]), int(match[2]), int(match[3])) if match else None


def _downsample(attrs: dict[str, Any], slide: SlideReader | None) -> float | None:
    """CLAM's `downsample` of `patch_level` (recorded, or taken from the slide's pyramid)."""
    if attrs.get("downsample") is not None:
        return float(np.atleast_1d(attrs["downsample"])[0])
    level = attrs.get("patch_level")
    if level == 0:
        return 1.0
    if level is not None and slide is not None:
        return slide.dimensions[0] / slide.level_dimensions[int(level)][0]
    return None


def read_coords(path: str | Path, slide: SlideReader | None = None) -> PatchCoords:
    """Read a CLAM or TRIDENT coordinate file, inferring missing geometry from the other attributes.

    `patch_size_level0` is taken from the file, else from `patch_size` × CLAM's `downsample` (or `patch_level`
    with the slide), else from `patch_size` and the two magnifications (the slide's own when the file lacks
    it; the target one from a `<mag>x_<ps>px_<ov>px_overlap` folder name). What cannot be inferred is named.

    Args:
        path: the h5 file.
        slide: the slide the coordinates belong to, to infer from its pyramid and magnification.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"coordinate file not found: {path}")
    coords, attrs = read_attributes(path)
    folder = _folder_settings(path)
    level0 = attrs.get("level0_magnification") or (slide.magnification if slide is not None else None)
    target = attrs.get("target_magnification") or (folder[0] if folder else None)
    patch_size = attrs.get("patch_size") or (folder[1] if folder else None)
    size0 = attrs.get("patch_size_level0")
    if size0 is None and patch_size is not None:
        downsample = _downsample(attrs, slide)
        if downsample is not None:
            size0 = round(patch_size * downsample)
        elif level0 and target:
            size0 = level0_patch_size(int(patch_size), level0, target)
    if patch_size is None and size0 is not None and level0 and target:
        patch_size = round(size0 * target / level0)
    if patch_size is None or size0 is None:
        raise ValueError(_cannot_infer(path, attrs, slide))
    if target is None and level0:
        target = level0 * patch_size / size0
    overlap = attrs.get("overlap", folder[2] if folder else 0)
    name = str(attrs.get("name") or slide_name(path))
    return PatchCoords(path, coords, int(patch_size), int(size0), target, level0 or None, int(overlap), name)


def _cannot_infer(path: Path, attrs: dict[str, Any], slide: SlideReader | None) -> str:
    """One line naming every attribute that was missing and could not be inferred."""
    missing = [key for key in ("patch_size", "patch_size_level0", "downsample") if key not in attrs]
    if "patch_level" in attrs and "downsample" in missing:
        missing[missing.index("downsample")] = "downsample (patch_level needs the slide)"
    if "level0_magnification" not in attrs:
        missing.append("level0_magnification" + (" (the slide records none)" if slide is not None else " (no slide)"))
    if "target_magnification" not in attrs:
        missing.append("target_magnification")
    return (
        f"{path}: cannot tell the patch size at level 0: missing {', '.join(missing)} "
        f"and not in a <mag>x_<size>px_<overlap>px_overlap folder"
    )


def slide_name(path: Path) -> str:
    """Slide name of a coordinate or feature file: its stem, without TRIDENT's `_patches` suffix."""
    return path.stem.removesuffix("_patches")


def list_coord_files(root: str | Path) -> dict[str, Path]:
    """Slide name → coordinate file in a folder of CLAM (`patches/`) or TRIDENT (`<settings>/patches/`) layout.

    `root` may be the job folder, the settings folder, the `patches` folder itself, or a plain folder of h5 files.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"coordinate folder not found: {root}")
    folder = root
    if (root / "patches").is_dir():
        folder = root / "patches"
    else:
        settings = sorted(p for p in root.iterdir() if _SETTINGS_FOLDER.match(p.name) and (p / "patches").is_dir())
        if len(settings) > 1:
            raise ValueError(f"{root} holds several patch settings ({', '.join(p.name for p in settings)}): pass one")
        if settings:
            folder = settings[0] / "patches"
    files = {slide_name(path): path for path in sorted(folder.glob("*.h5"))}
    if not files:
        raise ValueError(f"{root}: no coordinate files (looked for patches/*.h5, <settings>/patches/*.h5 and *.h5)")
    return files
