"""The synthetic pyramidal slide: OpenSlide opens every level, tissue is where the mask says, memory stays small."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from PIL import Image

from dbps.wsi import TileSettings, open_slide, tile_slide, write_synthetic_slide
from dbps.wsi.tiling import grid_coords, tissue_fractions


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_synthetic_slide(tmp_path_factory.mktemp("synthetic") / "slide.tiff", 4096, 3072, period=512, seed=1)


def _saturation(pixels: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(pixels).convert("HSV"))[..., 1]


def test_openslide_reads_every_level_and_the_magnification(synthetic) -> None:
    import openslide

    assert openslide.OpenSlide(str(synthetic)).properties["openslide.vendor"] == "generic-tiff"
    with open_slide(synthetic) as slide:
        assert slide.level_dimensions == ((4096, 3072), (2048, 1536), (1024, 768))
        assert slide.level_downsamples == (1.0, 2.0, 4.0)
        assert slide.mpp == pytest.approx(0.25) and slide.magnification == 40.0


def test_lower_levels_are_the_downsampled_level0(synthetic) -> None:
    with open_slide(synthetic) as slide:
        level0 = slide.read_region((1024, 1024), 0, (1024, 1024)).astype(np.float32)
        level2 = slide.read_region((1024, 1024), 2, (256, 256)).astype(np.float32)
    block_mean = level0.reshape(256, 4, 256, 4, 3).mean(axis=(1, 3))
    assert np.abs(block_mean - level2).mean() < 2.0
    assert np.abs(block_mean - level2[::-1]).mean() > 5 * np.abs(block_mean - level2).mean()


def test_patches_are_tissue_like_where_the_mask_says_tissue(synthetic) -> None:
    settings = TileSettings(patch_size=256, magnification=40, min_tissue=0.0, thumbnail_size=1024)
    with open_slide(synthetic) as slide:
        tiling = tile_slide(slide, settings, "slide")
        fractions = tissue_fractions(tiling.mask, 4096, 3072, 256, 256).ravel()
        assert 0.3 < tiling.mask.mean() < 0.7  # asked for half tissue
        tissue = [slide.read_region(tuple(xy), 0, (256, 256)) for xy in tiling.coords[fractions == 1.0][:12]]
        glass = [slide.read_region(tuple(xy), 0, (256, 256)) for xy in tiling.coords[fractions == 0.0][:12]]
    assert len(tissue) == len(glass) == 12 and len(tiling.coords) == len(grid_coords(4096, 3072, 256, 256))
    for patch in tissue:  # pink stroma with purple nuclei: saturated, and red above green
        assert _saturation(patch).mean() > 40 and (patch[..., 0] > patch[..., 1]).mean() > 0.95
        assert (patch.mean(axis=-1) < 120).mean() > 0.01  # some dark nuclei
    for patch in glass:  # white glass, but for the odd edge of tissue the low-resolution mask smoothed away
        assert (_saturation(patch) < 10).mean() > 0.97 and np.median(patch) > 230


def test_writing_a_large_slide_never_holds_it(tmp_path) -> None:
    tracemalloc.start()
    write_synthetic_slide(tmp_path / "large.tiff", 8192, 8192, period=256, levels=2)  # 201 MB of RGB pixels
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20e6
    with open_slide(tmp_path / "large.tiff") as slide:
        assert slide.level_dimensions == ((8192, 8192), (4096, 4096))
    with pytest.raises(ValueError, match="period must be a power of 2"):
        write_synthetic_slide(tmp_path / "bad.tiff", 512, 512, period=300)
