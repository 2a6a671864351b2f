"""Slide reading on real files: levels and metadata, patches at a magnification, errors that name the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dbps.wsi import best_level, magnification_from_mpp, open_slide, read_patch

pytest_plugins = ["tests.wsi_data"]


def _one_line_naming(exc: pytest.ExceptionInfo, path: Path) -> None:
    message = str(exc.value)
    assert str(path) in message and "\n" not in message


def test_missing_unopenable_and_unreadable_files_are_one_line_errors_naming_them(openslide_files, tmp_path) -> None:
    with pytest.raises(FileNotFoundError) as missing:
        open_slide(tmp_path / "absent.svs")
    _one_line_naming(missing, tmp_path / "absent.svs")
    for name in ("unopenable.tiff", "unreadable.svs"):  # the second opens, then fails on its first tile
        with pytest.raises(ValueError) as bad:
            open_slide(openslide_files / name)
        _one_line_naming(bad, openslide_files / name)
    text = tmp_path / "notes.svs"
    text.write_text("not a slide")
    with pytest.raises(ValueError, match="not a slide format") as unknown:
        open_slide(text)
    _one_line_naming(unknown, text)


def test_levels_and_metadata_of_real_files(openslide_files, he_region, he_pyramid) -> None:
    with open_slide(openslide_files / "boxes.tiff") as boxes:
        assert boxes.dimensions == (300, 250) and len(boxes.level_dimensions) == 4
        assert boxes.level_downsamples[1] == 2.0 and boxes.magnification is None  # 352 µm/px: not a microscope
    with open_slide(he_region) as region:
        assert region.dimensions == (2220, 2967) and region.mpp == pytest.approx(0.499)
        assert region.magnification == 20.0  # from the Aperio objective power
    with open_slide(he_pyramid) as pyramid:  # generic TIFF: the magnification comes from µm/px
        assert pyramid.level_dimensions == ((2220, 2964), (1110, 1482), (555, 741))  # cropped to multiples of 4
        assert pyramid.level_downsamples == (1.0, 2.0, 4.0) and pyramid.magnification == 20.0
        assert max(pyramid.thumbnail(300).shape[:2]) == 300
    with open_slide(openslide_files / "small.svs", magnification=40) as small:
        assert small.magnification == 40  # the caller's value wins over the file's


def test_magnification_from_microns_per_pixel() -> None:
    assert [magnification_from_mpp(m) for m in (0.12, 0.25, 0.2527, 0.499, 1.0, 2.0)] == [80, 40, 40, 20, 10, 5]
    assert magnification_from_mpp(3.0) is None


def test_best_level_is_the_coarsest_still_sharp_enough() -> None:
    downsamples = (1.0, 2.0, 4.016, 8.086)
    assert [best_level(downsamples, d) for d in (0.5, 1.0, 1.9, 2.0, 3.9, 4.0, 8.1, 64)] == [0, 0, 0, 1, 1, 2, 3, 3]


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _resized_level0(slide, xy: tuple[int, int], size0: int, resample: Image.Resampling) -> np.ndarray:
    return np.asarray(Image.fromarray(slide.read_region(xy, 0, (size0, size0))).resize((256, 256), resample))


def test_patches_at_lower_magnifications_match_resized_level0_reads(he_pyramid) -> None:
    with open_slide(he_pyramid) as slide:
        for xy in ((700, 900), (1200, 1500)):
            assert np.array_equal(read_patch(slide, xy, 256, 256), slide.read_region(xy, 0, (256, 256)))  # 20×
            at_10x = read_patch(slide, xy, 512, 256)  # level 1 as it is: the 2 × 2 mean of level 0
            assert at_10x.shape == (256, 256, 3) and at_10x.dtype == np.uint8
            assert _mean_abs_diff(at_10x, _resized_level0(slide, xy, 512, Image.Resampling.BOX)) < 1.0
            at_7_5x = read_patch(slide, xy, 683, 256)  # level 1, then resized by 3/4
            reference = _resized_level0(slide, xy, 683, Image.Resampling.BILINEAR)
            shifted = _resized_level0(slide, (xy[0] + 4, xy[1] + 4), 683, Image.Resampling.BILINEAR)
            assert _mean_abs_diff(at_7_5x, reference) < 8.0
            assert _mean_abs_diff(at_7_5x, reference) < 0.5 * _mean_abs_diff(at_7_5x, shifted)


def test_pixels_outside_the_slide_are_white(he_pyramid, tmp_path) -> None:
    copy = tmp_path / "copy.tiff"
    shutil.copy(he_pyramid, copy)
    with open_slide(copy) as slide:
        region = slide.read_region((-64, -64), 0, (128, 128))
        assert (region[:64, :] == 255).all() and (region[:, :64] == 255).all()
        assert (region[64:, 64:] < 255).any()
