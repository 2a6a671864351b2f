"""Pyramidal slides written tile by tile with tifffile: a synthetic tissue-like slide, or a real region's pyramid.

The files are generic tiled TIFF, as OpenSlide reads them: BigTIFF, 256² zlib-compressed RGB tiles (no codec
package needed), level 0 first, each halved level a top-level page with subfile type 1, and the microns per pixel
in the resolution tags (OpenSlide infers the magnification from them). The synthetic slide is never in memory:
each tile is made from a small low-resolution tissue field and a small periodic stain texture.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage
from tqdm import tqdm

from dbps.files import atomic_write
from dbps.wsi.reader import open_slide

TILE = 256
_GLASS = np.array([242, 242, 242], dtype=np.uint8)
_STROMA = np.array([232, 170, 200], dtype=np.float32)  # eosin pink
_NUCLEUS = np.array([120, 60, 150], dtype=np.uint8)  # haematoxylin purple


def _halve(image: np.ndarray) -> np.ndarray:
    """2 × 2 mean (rounded) of an (H, W, 3) uint8 image with even sides."""
    h, w = image.shape[0] // 2, image.shape[1] // 2
    blocks = image[: 2 * h, : 2 * w].reshape(h, 2, w, 2, 3).astype(np.uint16).sum(axis=(1, 3))
    return ((blocks + 2) // 4).astype(np.uint8)


def _write_levels(
    path: Path, shapes: list[tuple[int, int]], tile: Callable[[int, int, int], bytes], mpp: float, progress: bool
) -> None:
    """Write levels of (height, width) `shapes`; `tile(level, column, row)` gives a zlib-compressed 256² RGB tile."""

    def tiles(level: int, bar: tqdm) -> Iterator[bytes]:
        height, width = shapes[level]
        for row in range(-(-height // TILE)):
            for column in range(-(-width // TILE)):
                bar.update()
                yield tile(level, column, row)

    def write(tmp: Path) -> None:
        total = sum(-(-h // TILE) * -(-w // TILE) for h, w in shapes)
        with tifffile.TiffWriter(tmp, bigtiff=True) as tif, tqdm(total=total, disable=not progress, unit="tile") as bar:
            for level, (height, width) in enumerate(shapes):
                per_cm = 1e4 / (mpp * 2**level)
                tif.write(
                    tiles(level, bar), shape=(height, width, 3), dtype=np.uint8, tile=(TILE, TILE), photometric="rgb",
                    compression="zlib", subfiletype=1 if level else 0, resolution=(per_cm, per_cm),
                    resolutionunit="CENTIMETER", metadata=None,
                )

    atomic_write(Path(path), write)


def _compress(tile: np.ndarray, level: int = 1) -> bytes:
    return zlib.compress(np.ascontiguousarray(tile).tobytes(), level)


class _TissueTexture:
    """Tiles of a slide with tissue blobs (a smoothed random field, thresholded) stained with a periodic texture."""

    def __init__(self, width: int, height: int, tissue_fraction: float, seed: int, period: int = 2048) -> None:
        rng = np.random.default_rng(seed)
        self.cell = max(32, -(-max(width, height) // 96))  # ~96 field cells along the longer side
        rows, cols = -(-height // self.cell) + 2, -(-width // self.cell) + 2
        field = ndimage.gaussian_filter(rng.standard_normal((rows, cols)), sigma=4.0, mode="reflect")
        self.field = field
        self.threshold = float(np.quantile(field[:-2, :-2], 1.0 - tissue_fraction))
        nuclei = ndimage.gaussian_filter(rng.standard_normal((period, period), dtype=np.float32), 3, mode="wrap")
        shade = ndimage.gaussian_filter(rng.standard_normal((period, period), dtype=np.float32), 12, mode="wrap")
        shade = np.clip(np.round(shade / shade.std() * 1.5), -2, 2)[..., None]  # five flat tones: compresses well
        stain = (_STROMA + shade * np.array([-8, -10, -6], dtype=np.float32)).astype(np.uint8)
        stain[nuclei > 1.4 * nuclei.std()] = _NUCLEUS
        self.stains = [stain]  # one periodic texture per level, each the 2 × 2 mean of the one above
        while self.stains[-1].shape[0] > 1:
            self.stains.append(_halve(self.stains[-1]))
        self._cache: dict[tuple[int, ...], bytes] = {}

    def _field_at(self, start: int, scale: int) -> tuple[np.ndarray, np.ndarray]:
        """Field cell index and bilinear weight of the 256 pixel centres from level pixel `start` at `scale`."""
        position = (start + np.arange(TILE) + 0.5) * scale / self.cell - 0.5
        index = np.clip(np.floor(position).astype(np.int64), 0, None)
        return index, np.clip(position - index, 0.0, 1.0)

    def tile(self, level: int, column: int, row: int) -> bytes:
        scale = 2**level
        ys, wy = self._field_at(row * TILE, scale)
        xs, wx = self._field_at(column * TILE, scale)
        ys, xs = np.minimum(ys, self.field.shape[0] - 2), np.minimum(xs, self.field.shape[1] - 2)
        corners = self.field[ys[0] : ys[-1] + 2, xs[0] : xs[-1] + 2]  # bilinear values lie within these
        stain = self.stains[min(level, len(self.stains) - 1)]
        period = stain.shape[0]
        key = (level, column * TILE % period, row * TILE % period)
        if corners.min() > self.threshold:  # all tissue: the tile repeats with the texture's period
            if key not in self._cache:
                self._cache[key] = _compress(self._stained(stain, column, row), 6)
            return self._cache[key]
        if corners.max() <= self.threshold:  # all glass
            return self._cache.setdefault((level,), _compress(np.broadcast_to(_GLASS, (TILE, TILE, 3)), 6))
        top, bottom = self.field[ys], self.field[ys + 1]
        rows_at = top * (1 - wy[:, None]) + bottom * wy[:, None]  # (256, field columns): rows interpolated first
        values = rows_at[:, xs] * (1 - wx) + rows_at[:, xs + 1] * wx
        tissue = values > self.threshold
        return _compress(np.where(tissue[..., None], self._stained(stain, column, row), _GLASS))

    @staticmethod
    def _stained(stain: np.ndarray, column: int, row: int) -> np.ndarray:
        period = stain.shape[0]
        ys = (row * TILE + np.arange(TILE)) % period
        xs = (column * TILE + np.arange(TILE)) % period
        return stain[ys[:, None], xs[None, :]]


def _level_shapes(height: int, width: int, levels: int | None, smallest: int = 1024) -> list[tuple[int, int]]:
    shapes = [(height, width)]
    while (levels is None and max(shapes[-1]) > smallest) or (levels is not None and len(shapes) < levels):
        shapes.append((max(1, shapes[-1][0] // 2), max(1, shapes[-1][1] // 2)))
    return shapes


def write_synthetic_slide(
    path: str | Path,
    width: int,
    height: int,
    *,
    tissue_fraction: float = 0.5,
    mpp: float = 0.25,
    levels: int | None = None,
    seed: int = 0,
    period: int = 2048,
    progress: bool = False,
) -> Path:
    """Write a tissue-like pyramidal slide of any size, tile by tile, never holding it in memory.

    Tissue is pink stroma with purple nuclei in blobs over white glass; tiles entirely in tissue repeat with the
    texture's period (and are compressed once), so even 150,000 × 120,000 pixels take minutes, not hours.

    Args:
        path: the .tiff to write.
        width: level-0 width.
        height: level-0 height.
        tissue_fraction: share of the slide covered by tissue.
        mpp: microns per level-0 pixel (0.25 reads as 40×).
        levels: pyramid levels (default: halve until the longer side is ≤ 1024).
        seed: seed of the tissue layout and texture.
        period: side of the repeating stain texture (a power of 2; its memory is ~11 bytes per pixel²).
        progress: show a progress bar over tiles.
    """
    if width < 1 or height < 1 or not 0.0 < tissue_fraction < 1.0:
        raise ValueError(f"need sides ≥ 1 and 0 < tissue_fraction < 1, got {width}, {height}, {tissue_fraction}")
    if period < 16 or period & (period - 1):
        raise ValueError(f"period must be a power of 2 ≥ 16, got {period}")
    texture = _TissueTexture(width, height, tissue_fraction, seed, period)
    _write_levels(Path(path), _level_shapes(height, width, levels), texture.tile, mpp, progress)
    return Path(path)


def write_pyramid_from_slide(source: str | Path, path: str | Path, levels: int = 3) -> Path:
    """Turn a (small) single-level slide into a real pyramid: level 0 cropped to multiples of 2^(levels−1), halved.

    The whole level 0 is read into memory: meant for regions such as test fixtures, not whole slides.

    Args:
        source: a slide OpenSlide reads, whose microns per pixel are recorded.
        path: the .tiff to write.
        levels: pyramid levels.
    """
    with open_slide(source) as reader:
        factor = 2 ** (levels - 1)
        width, height = (side // factor * factor for side in reader.dimensions)
        if width * height > 2**28:
            raise ValueError(f"{source}: {width} × {height} pixels is too large to convert in memory")
        if reader.mpp is None:
            raise ValueError(f"{source}: the slide records no microns per pixel")
        images = [reader.read_region((0, 0), 0, (width, height))]
        mpp = reader.mpp
    while len(images) < levels:
        images.append(_halve(images[-1]))

    def tile(level: int, column: int, row: int) -> bytes:
        block = np.zeros((TILE, TILE, 3), dtype=np.uint8)
        part = images[level][row * TILE : (row + 1) * TILE, column * TILE : (column + 1) * TILE]
        block[: part.shape[0], : part.shape[1]] = part
        return _compress(block, 6)

    _write_levels(Path(path), [image.shape[:2] for image in images], tile, mpp, progress=False)
    return Path(path)
