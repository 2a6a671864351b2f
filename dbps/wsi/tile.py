"""Tiling slides: tissue mask, patch grid at a target magnification, TRIDENT/CLAM coordinates and a preview PNG."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dbps.files import atomic_write
from dbps.wsi.batch import BatchSummary, run_slides
from dbps.wsi.coords_io import coords_attributes, read_attributes, write_coords
from dbps.wsi.preview import draw_tiling
from dbps.wsi.reader import SlideReader, open_slide
from dbps.wsi.tiling import level0_patch_size, tissue_coords
from dbps.wsi.tissue import tissue_mask


@dataclass(frozen=True)
class TileSettings:
    """How slides are cut into patches.

    Attributes:
        patch_size: patch side in pixels at the target magnification.
        magnification: target magnification (20 → 20×).
        overlap: pixels (at the target magnification) shared by neighbouring patches.
        min_tissue: smallest tissue fraction of a kept patch, in [0, 1].
        thumbnail_size: longer side of the thumbnail the tissue is found on.
        level0_magnification: for slides whose files record neither objective nor microns per pixel.
    """

    patch_size: int = 256
    magnification: float = 20.0
    overlap: int = 0
    min_tissue: float = 0.5
    thumbnail_size: int = 2048
    level0_magnification: float | None = None

    def __post_init__(self) -> None:
        if self.patch_size < 1:
            raise ValueError(f"patch size must be ≥ 1, got {self.patch_size}")
        if not 0 <= self.overlap < self.patch_size:
            raise ValueError(f"overlap must be in [0, patch size {self.patch_size}), got {self.overlap}")
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ValueError(f"minimum tissue fraction must be in [0, 1], got {self.min_tissue}")
        if self.thumbnail_size < 16:
            raise ValueError(f"thumbnail size must be ≥ 16, got {self.thumbnail_size}")


@dataclass
class Tiling:
    """One slide's tiling: the kept patches and what they were found on."""

    coords: np.ndarray  # (N, 2) int64 level-0 top-left (x, y)
    patch_size_level0: int
    thumbnail: np.ndarray  # RGB uint8
    mask: np.ndarray  # boolean, the thumbnail's size
    attrs: dict[str, Any]  # TRIDENT (+ CLAM) attributes of the coordinates


def tile_slide(reader: SlideReader, settings: TileSettings, name: str, savetodir: str | Path = "") -> Tiling:
    """Find the tissue on a thumbnail and keep the grid patches that cover enough of it."""
    if reader.magnification is None:
        raise ValueError(
            f"{reader.path}: the file records neither objective nor microns per pixel: give the level-0 magnification"
        )
    size0 = level0_patch_size(settings.patch_size, reader.magnification, settings.magnification)
    step = size0 - round(settings.overlap * size0 / settings.patch_size)
    thumbnail = reader.thumbnail(settings.thumbnail_size)
    mask = tissue_mask(thumbnail)
    coords = tissue_coords(mask, reader.dimensions, size0, step, settings.min_tissue)
    attrs = coords_attributes(
        reader, name=name, patch_size=settings.patch_size, patch_size_level0=size0,
        target_magnification=settings.magnification, overlap=settings.overlap, savetodir=savetodir,
    )
    return Tiling(coords, size0, thumbnail, mask, attrs)


def coords_file(out_dir: Path, name: str) -> Path:
    return out_dir / "patches" / f"{name}.h5"


def preview_file(out_dir: Path, name: str) -> Path:
    return out_dir / "thumbnails" / f"{name}.png"


def _same_settings(path: Path, settings: TileSettings) -> str | None:
    """None when the coordinates at `path` were cut with `settings`, else what differs."""
    _, attrs = read_attributes(path)
    wanted = {"patch_size": settings.patch_size, "target_magnification": settings.magnification,
              "overlap": settings.overlap}
    differ = [f"{key} {attrs.get(key)} (not {value})" for key, value in wanted.items() if attrs.get(key) != value]
    return ", ".join(differ) or None


def tile_slides(
    slides: list[Path], out_dir: Path, settings: TileSettings, *, force: bool = False, progress: bool = True
) -> BatchSummary:
    """Tile every slide into `out_dir/patches/<slide>.h5` and `out_dir/thumbnails/<slide>.png`.

    A slide whose coordinates exist with the same settings is skipped unless `force`; one with other settings
    fails (named in `out_dir/errors.log`) rather than being overwritten.
    """

    def is_done(slide: Path) -> bool:
        path = coords_file(out_dir, slide.stem)
        return (
            not force
            and path.is_file()
            and preview_file(out_dir, slide.stem).is_file()
            and (_same_settings(path, settings) is None)
        )

    def job(slide: Path) -> int:
        path = coords_file(out_dir, slide.stem)
        if path.is_file() and not force and (differ := _same_settings(path, settings)):
            raise ValueError(f"{path} exists with other settings: {differ}; pass --force or another --out")
        with open_slide(slide, settings.level0_magnification) as reader:
            tiling = tile_slide(reader, settings, slide.stem, out_dir.resolve())
            dimensions = reader.dimensions
        image = draw_tiling(tiling.thumbnail, tiling.mask, tiling.coords, tiling.patch_size_level0, dimensions)
        atomic_write(preview_file(out_dir, slide.stem), lambda tmp: image.save(tmp, format="PNG"))
        write_coords(path, tiling.coords, tiling.attrs)  # last: its presence marks the slide done
        return len(tiling.coords)

    return run_slides(slides, job, is_done=is_done, error_log=out_dir / "errors.log", desc="tiling", progress=progress)
