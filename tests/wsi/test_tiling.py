"""Tissue detection and the patch grid: Otsu and tissue fractions checked against brute force on a real H&E region."""

from __future__ import annotations

import numpy as np
import pytest

from dbps.wsi import TileSettings, level0_patch_size, open_slide, otsu_threshold, tile_slide, tissue_coords, tissue_mask
from dbps.wsi.tiling import grid_coords

pytest_plugins = ["tests.wsi_data"]


@pytest.fixture(scope="module")
def he_thumbnail(he_region):
    with open_slide(he_region) as slide:
        return slide.thumbnail(512), slide.dimensions


def _otsu_brute_force(values: np.ndarray) -> int:
    """Threshold maximising w0·w1·(μ0 − μ1)², trying every split."""
    best, best_t = -1.0, 0
    for t in range(255):
        low, high = values[values <= t].astype(float), values[values > t].astype(float)
        if len(low) and len(high):
            score = len(low) * len(high) * (low.mean() - high.mean()) ** 2
            if score > best:
                best, best_t = score, t
    return best_t


def test_otsu_matches_brute_force(he_thumbnail) -> None:
    saturation = (he_thumbnail[0].max(axis=2) - he_thumbnail[0].min(axis=2)).astype(np.uint8)
    assert otsu_threshold(saturation) == _otsu_brute_force(saturation)
    assert otsu_threshold(np.full((4, 4), 9, dtype=np.uint8)) == 9  # uniform: nothing is above the threshold


def test_tissue_fraction_of_the_real_region_is_about_a_third(he_thumbnail) -> None:
    thumbnail, _ = he_thumbnail
    mask = tissue_mask(thumbnail)
    assert mask.shape == thumbnail.shape[:2] and 0.25 < mask.mean() < 0.45  # ~29–36 % depending on blur and fill
    tissue, glass = thumbnail[mask].astype(float), thumbnail[~mask].astype(float)
    assert tissue.mean() < glass.mean() - 40  # stained tissue is darker than the glass around it
    assert not tissue_mask(np.full((64, 64, 3), 240, dtype=np.uint8)).any()  # blank glass: no tissue


def _brute_force_coords(mask: np.ndarray, dims: tuple[int, int], size: int, step: int, min_tissue: float):
    """Upsample the mask to level 0 (nearest), then average it under every whole patch."""
    width, height = dims
    rows = np.arange(height) * mask.shape[0] // height
    cols = np.arange(width) * mask.shape[1] // width
    level0 = mask[rows][:, cols]
    kept = []
    for y in range(0, height - size + 1, step):
        for x in range(0, width - size + 1, step):
            if level0[y : y + size, x : x + size].mean() >= min_tissue:
                kept.append((x, y))
    return np.array(kept, dtype=np.int64).reshape(-1, 2)


@pytest.mark.parametrize(("size", "step", "min_tissue"), [(256, 256, 0.5), (300, 200, 0.25), (512, 384, 0.9)])
def test_tiled_coordinates_equal_brute_force_from_the_mask(he_thumbnail, size, step, min_tissue) -> None:
    thumbnail, dims = he_thumbnail
    mask = tissue_mask(thumbnail)
    coords = tissue_coords(mask, dims, size, step, min_tissue)
    expected = _brute_force_coords(mask, dims, size, step, min_tissue)
    assert coords.dtype == np.int64 and np.array_equal(coords, expected)
    assert 0 < len(coords) < len(grid_coords(*dims, size, step))  # some patches kept, some dropped


def test_grid_holds_only_whole_patches_row_by_row() -> None:
    coords = grid_coords(1000, 700, 300, 250)
    assert coords.tolist() == [[0, 0], [250, 0], [500, 0], [0, 250], [250, 250], [500, 250]]
    assert len(grid_coords(100, 100, 300, 300)) == 0


def test_patch_size_at_level0_and_bad_magnifications() -> None:
    assert level0_patch_size(256, 40, 20) == 512 and level0_patch_size(256, 20, 20) == 256
    assert level0_patch_size(224, 40, 10) == 896
    with pytest.raises(ValueError, match="40× is above the slide's level-0 20×"):
        level0_patch_size(256, 20, 40)


def test_tile_slide_writes_overlap_at_the_target_scale(he_pyramid) -> None:
    settings = TileSettings(patch_size=256, magnification=10, overlap=64, min_tissue=0.5, thumbnail_size=512)
    with open_slide(he_pyramid) as slide:
        tiling = tile_slide(slide, settings, "cmu")
    assert tiling.patch_size_level0 == 512 and tiling.attrs["overlap"] == 64
    steps = np.diff(np.unique(tiling.coords[:, 0]))
    assert steps.min() == 512 - 128  # 64 px of overlap at 10× are 128 px at level 0
    with pytest.raises(ValueError, match="overlap"):
        TileSettings(patch_size=256, overlap=256)
