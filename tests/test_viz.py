"""Heatmaps of photos: where the outlines and the colours land, how the panels are scaled, and what overlaps show."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps
from PIL import Image

from dbps import viz


def _grid(side: int, patch: int, stride: int) -> np.ndarray:
    starts = np.arange(0, side - patch + 1, stride)
    ys, xs = np.meshgrid(starts, starts, indexing="ij")
    return np.stack([ys.ravel(), xs.ravel()], axis=1)


def _panels(path) -> tuple[np.ndarray, np.ndarray, int]:
    """The left and right panels of a saved heatmap, and the panel side (square images only)."""
    canvas = np.asarray(Image.open(path).convert("RGB"))
    top = viz._HEADER + viz._CAPTION
    side = canvas.shape[0] - top - viz._MARGIN
    left = canvas[top : top + side, viz._MARGIN : viz._MARGIN + side]
    x = 2 * viz._MARGIN + side
    return left, canvas[top : top + side, x : x + side], side


def test_outlines_and_tints_land_on_their_patches(tmp_path) -> None:
    image = np.zeros((1, 200, 200), dtype=np.float32)  # black, so any colour is the drawing's
    coords = _grid(200, 50, 50)  # 16 tiles
    scores = np.full(16, np.nan)
    scores[[0, 5, 15]] = [0.2, 1.0, 0.6]
    viz.save_heatmap(image, scores, coords, (50, 50), np.array([5]), np.array([15]), "t", tmp_path / "h.png")
    left, right, side = _panels(tmp_path / "h.png")
    assert side == 400  # 200 px scaled up twice, to at least PANEL_SIDES[0]
    y5, x5 = 2 * coords[5]
    assert tuple(left[y5, x5 + 50]) == (230, 20, 20)  # the salient patch's top edge: red
    y15, x15 = 2 * coords[15]
    assert tuple(left[y15 + 50, x15]) == (240, 200, 0)  # the context patch's left edge: yellow
    assert not left[y5 + 50, x5 + 50].any()  # inside an outline the image is untouched

    def tint(index: int) -> np.ndarray:
        y, x = 2 * coords[index] + 50
        return right[y, x].astype(int)

    inferno = (colormaps["inferno"](np.array([0.2, 1.0]))[:, :3] * 255).astype(int)
    expected = inferno * 150 // 255  # alpha 150 over black
    assert np.abs(tint(0) - expected[0]).max() <= 2 and np.abs(tint(5) - expected[1]).max() <= 2
    assert not tint(1).any()  # an unscored patch keeps the image


def test_where_patches_overlap_the_higher_score_shows(tmp_path) -> None:
    image = np.zeros((1, 100, 100), dtype=np.float32)
    coords = np.array([[0, 0], [0, 25]])  # two 50² patches sharing x in [25, 50)
    for scores, winner in (([1.0, 0.1], 0), ([0.1, 1.0], 1)):
        viz.save_heatmap(image, np.array(scores), coords, (50, 50), np.array([], int), np.array([], int), "t",
                         tmp_path / "o.png")
        _, right, side = _panels(tmp_path / "o.png")
        scale = side // 100
        shared = right[10 * scale, 40 * scale].astype(int)
        alone = right[10 * scale, (10 if winner == 0 else 70) * scale].astype(int)
        assert np.array_equal(shared, alone)


@pytest.mark.parametrize(("shape", "longest"), [((3, 2000, 1000), 1024), ((1, 280, 140), 560), ((3, 600, 500), 600)])
def test_panels_are_scaled_into_the_panel_range(shape: tuple[int, int, int], longest: int) -> None:
    picture = viz.panel_pixels(np.random.default_rng(0).random(shape, dtype=np.float32))
    assert picture.dtype == np.uint8 and picture.shape[2] == 3 and max(picture.shape[:2]) == longest
    assert picture.shape[0] / picture.shape[1] == pytest.approx(shape[1] / shape[2], rel=0.01)


def test_values_outside_the_unit_range_are_clipped_not_wrapped() -> None:
    image = np.array([[[-0.5, 1.5, 0.5]]], dtype=np.float32).repeat(400, axis=1)
    picture = viz.panel_pixels(image)
    assert picture[0, 0].tolist() == [0, 0, 0] and picture[0, -1].tolist() == [128, 128, 128]
    assert picture[0, picture.shape[1] // 2].tolist() == [255, 255, 255]


def test_confusion_cells_are_tinted_by_their_share_of_the_row(tmp_path) -> None:
    matrix = np.array([[9, 1, 0], [0, 10, 0], [2, 2, 4]])
    viz.save_confusion(matrix, ["cat", "dog", "a very long class name"], "label (test)", tmp_path / "c.png")
    pixels = np.asarray(Image.open(tmp_path / "c.png").convert("RGB")).reshape(-1, 3)
    found = {tuple(int(v) for v in p) for p in np.unique(pixels, axis=0)}

    def tint(rate: float) -> tuple[int, ...]:
        return tuple(int(v) for v in (np.asarray(colormaps["Blues"](rate)[:3]) * 255).astype(np.uint8))

    for rate in (0.9, 0.1, 0.0, 1.0, 0.25, 0.5):  # recall 9 / 10, 10 / 10, 4 / 8; off the diagonal 1 / 10, 2 / 8
        assert tint(rate) in found, rate
    assert tint(4 / 9) not in found  # shares of the row, not of the column
