"""The patch grid over a slide at a target magnification, kept where the tissue mask covers enough of a patch.

A low-resolution mask stands for the level-0 image by nearest neighbour: level-0 pixel X falls in mask column
X · mask_width // width (rows likewise). A patch's tissue fraction is the share of its level-0 pixels whose
mask pixel is tissue, computed exactly and separably, without ever making a level-0 mask.
"""

from __future__ import annotations

import numpy as np


def level0_patch_size(patch_size: int, level0_magnification: float, target_magnification: float) -> int:
    """Side in level-0 pixels of a `patch_size` patch at `target_magnification` (256 at 20× on a 40× slide → 512)."""
    if patch_size < 1:
        raise ValueError(f"patch size must be ≥ 1, got {patch_size}")
    if target_magnification <= 0:
        raise ValueError(f"target magnification must be positive, got {target_magnification}")
    if target_magnification > level0_magnification * 1.001:
        raise ValueError(
            f"target magnification {target_magnification:g}× is above the slide's level-0 {level0_magnification:g}×"
        )
    return max(1, round(patch_size * level0_magnification / target_magnification))


def grid_starts(length: int, size: int, step: int) -> np.ndarray:
    """Start offsets of the patches of side `size`, `step` apart, that fit entirely in `length` pixels."""
    if step < 1:
        raise ValueError(f"patch step must be ≥ 1 (overlap smaller than the patch), got {step}")
    return np.arange(0, max(length - size + 1, 0), step, dtype=np.int64)


def grid_coords(width: int, height: int, size: int, step: int) -> np.ndarray:
    """Level-0 top-left (x, y) of every whole patch, row by row: (N, 2) int64."""
    xs, ys = grid_starts(width, size, step), grid_starts(height, size, step)
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1)
    return grid.reshape(-1, 2)


def _coverage(starts: np.ndarray, size: int, length: int, cells: int) -> np.ndarray:
    """(patches, cells): how many of each patch's level-0 pixels fall in each mask cell along one axis."""
    bounds = -(-np.arange(cells + 1, dtype=np.int64) * length // cells)  # cell j holds pixels [bounds[j], bounds[j+1])
    lo = np.maximum(starts[:, None], bounds[None, :-1])
    hi = np.minimum(starts[:, None] + size, bounds[None, 1:])
    return np.clip(hi - lo, 0, None).astype(np.float64)


def tissue_fractions(mask: np.ndarray, width: int, height: int, size: int, step: int) -> np.ndarray:
    """Tissue fraction of every grid patch, (rows, cols) float64, rows and columns as `grid_coords` orders them.

    Args:
        mask: boolean (mask_height, mask_width) standing for the whole level-0 image.
        width: level-0 width.
        height: level-0 height.
        size: patch side in level-0 pixels.
        step: distance between patch starts in level-0 pixels.
    """
    rows = _coverage(grid_starts(height, size, step), size, height, mask.shape[0])
    cols = _coverage(grid_starts(width, size, step), size, width, mask.shape[1])
    return (rows @ mask.astype(np.float64)) @ cols.T / float(size * size)


def tissue_coords(mask: np.ndarray, dimensions: tuple[int, int], size: int, step: int, min_tissue: float) -> np.ndarray:
    """Level-0 top-left (x, y) of the grid patches whose tissue fraction is at least `min_tissue`: (N, 2) int64.

    Args:
        mask: boolean tissue mask standing for the whole slide (any resolution).
        dimensions: level-0 (width, height).
        size: patch side in level-0 pixels.
        step: distance between patch starts in level-0 pixels (size minus the overlap).
        min_tissue: fraction in [0, 1]; 0 keeps the whole grid.
    """
    if not 0.0 <= min_tissue <= 1.0:
        raise ValueError(f"minimum tissue fraction must be in [0, 1], got {min_tissue}")
    width, height = dimensions
    keep = tissue_fractions(mask, width, height, size, step) >= min_tissue
    return grid_coords(width, height, size, step)[keep.ravel()]
