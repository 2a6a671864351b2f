"""Pictures: an image with its per-patch attention as a heatmap, salient and context patches outlined; confusion
matrices; learning curves."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dbps.files import atomic_write
from dbps.wsi.heatmap import score_overlay, score_top

if TYPE_CHECKING:
    from PIL import Image, ImageFont


PANEL_SIDES = (384, 1024)  # a panel's longer side is scaled into this range: small images up, large ones down
_MARGIN, _HEADER, _CAPTION, _BAR, _BAR_LABELS = 12, 34, 22, 14, 60
_INK, _PAPER = (20, 20, 20), (255, 255, 255)


def save_heatmap(
    image: np.ndarray,
    scores: np.ndarray,
    coords: np.ndarray,
    patch_size: tuple[int, int],
    salient: np.ndarray,
    context: np.ndarray,
    title: str,
    path: Path,
) -> None:
    """Write a two-panel PNG: the image with salient (red) and context (yellow) patches, and the attention map.

    Drawn with Pillow, tens of milliseconds per picture (a matplotlib figure took 0.6 s): `dbps predict` draws one
    per image.

    Args:
        image: C×H×W (C = 1 or 3) in [0, 1].
        scores: per-patch attention (N,), NaN where a patch has none.
        coords: top-left (y, x) of each patch (N, 2).
        patch_size: (height, width) of a patch.
        salient: indices of the salient patches.
        context: indices of the context (sub-salient) patches.
        title: figure title.
        path: PNG path.
    """
    from PIL import Image, ImageDraw

    picture = panel_pixels(image)
    height, width = image.shape[-2:]
    coords_xy, size_wh = np.asarray(coords)[:, ::-1], (patch_size[1], patch_size[0])
    unscored = np.full(len(scores), np.nan)
    outlined = score_overlay(picture, (width, height), coords_xy, size_wh, unscored, salient, context)
    tinted = score_overlay(picture, (width, height), coords_xy, size_wh, np.asarray(scores, dtype=float), [], [])
    pw, ph = outlined.size
    top = _HEADER + _CAPTION
    canvas = Image.new("RGB", (3 * _MARGIN + 2 * pw + 2 * _BAR + _BAR_LABELS, top + ph + _MARGIN), _PAPER)
    canvas.paste(outlined, (_MARGIN, top))
    canvas.paste(tinted, (2 * _MARGIN + pw, top))
    draw = ImageDraw.Draw(canvas)
    draw.text((_MARGIN, 8), title, fill=_INK, font=_font(16))
    draw.text((_MARGIN, _HEADER), "salient (red) and context (yellow) patches", fill=_INK, font=_font(13))
    draw.text((2 * _MARGIN + pw, _HEADER), "attention over all patches", fill=_INK, font=_font(13))
    _colour_bar(canvas, (3 * _MARGIN + 2 * pw, top), ph, score_top(np.asarray(scores, dtype=float)))
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG", compress_level=3))


def panel_pixels(image: np.ndarray) -> np.ndarray:
    """C×H×W in [0, 1] as RGB uint8, scaled so that its longer side lies in PANEL_SIDES (by an integer factor up,
    by area averaging down)."""
    from PIL import Image

    pixels = np.clip(image[:3], 0.0, 1.0)
    rgb = np.repeat(pixels, 3, axis=0) if pixels.shape[0] == 1 else pixels
    picture = Image.fromarray((np.moveaxis(rgb, 0, -1) * 255 + 0.5).astype(np.uint8))
    longest = max(picture.size)
    if longest < PANEL_SIDES[0]:
        factor = -(-PANEL_SIDES[0] // longest)
        picture = picture.resize((picture.width * factor, picture.height * factor), Image.Resampling.NEAREST)
    elif longest > PANEL_SIDES[1]:
        shrink = PANEL_SIDES[1] / longest
        picture = picture.resize((max(1, round(picture.width * shrink)), max(1, round(picture.height * shrink))),
                                 Image.Resampling.BOX)
    return np.asarray(picture)


def _colour_bar(canvas: Image.Image, at: tuple[int, int], height: int, top: float) -> None:
    """The inferno scale from 0 (bottom) to `top` (the largest attention shown), labelled."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    ramp = (colormaps["inferno"](np.linspace(1.0, 0.0, height))[:, :3] * 255).astype(np.uint8)
    canvas.paste(Image.fromarray(np.repeat(ramp[:, None], _BAR, axis=1)), at)
    draw = ImageDraw.Draw(canvas)
    x, y = at[0] + _BAR + 4, at[1]
    draw.text((x, y), f"{top:.3g}", fill=_INK, font=_font(12))
    draw.text((x, y + height - 14), "0", fill=_INK, font=_font(12))
    draw.text((x, y + height // 2 - 7), "attention", fill=_INK, font=_font(12))


@functools.cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def save_confusion(matrix: np.ndarray, names: list[str], title: str, path: Path) -> None:
    """Write a confusion matrix as a PNG: true classes down, predicted across, each cell tinted by its share of its
    row (the recall on the diagonal) and labelled with its count.

    Drawn with Pillow, a few milliseconds (a matplotlib figure took 0.45 s, paid per task at every evaluation).
    """
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    k = len(names)
    font, small = _font(13), _font(11)
    cell = max(34, 10 + max(round(small.getlength(str(v))) for v in matrix.ravel()))
    rotate = max(font.getlength(n) for n in names) > cell - 4  # long class names stand upright under the grid
    label_w = round(max(font.getlength(n) for n in names)) + 8
    below = label_w if rotate else 22
    left, top = _MARGIN + 20 + label_w, _HEADER + 4
    canvas = Image.new("RGB", (max(left + k * cell + _MARGIN, round(font.getlength(title)) + 2 * _MARGIN),
                               top + k * cell + below + 24), _PAPER)
    draw = ImageDraw.Draw(canvas)
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    colours = (colormaps["Blues"](rates)[..., :3] * 255).astype(np.uint8)
    for (i, j), count in np.ndenumerate(matrix):
        x, y = left + j * cell, top + i * cell
        draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=tuple(int(c) for c in colours[i, j]))
        ink = _PAPER if rates[i, j] > 0.5 else _INK
        draw.text((x + cell / 2, y + cell / 2), str(count), fill=ink, font=small, anchor="mm")
    for c, name in enumerate(names):
        draw.text((left - 6, top + c * cell + cell / 2), name, fill=_INK, font=font, anchor="rm")
        x = left + c * cell + cell // 2
        if rotate:
            width = round(font.getlength(name)) + 2
            label = Image.new("RGB", (width, 18), _PAPER)
            ImageDraw.Draw(label).text((0, 9), name, fill=_INK, font=font, anchor="lm")
            canvas.paste(label.rotate(90, expand=True), (x - 9, top + k * cell + 4 + label_w - 8 - width))
        else:
            draw.text((x, top + k * cell + 4), name, fill=_INK, font=font, anchor="mt")
    draw.text((left + k * cell / 2, top + k * cell + below + 4), "predicted", fill=_INK, font=font, anchor="mt")
    side = Image.new("RGB", (round(font.getlength("true")) + 4, 18), _PAPER)
    ImageDraw.Draw(side).text((2, 9), "true", fill=_INK, font=font, anchor="lm")
    canvas.paste(side.rotate(90, expand=True), (_MARGIN, top + k * cell // 2 - side.width // 2))
    draw.text((_MARGIN, 10), title, fill=_INK, font=_font(16))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: canvas.save(tmp, format="PNG", compress_level=3))


def save_learning_curve(rows: list[dict[str, str]], metrics: list[str], path: Path) -> None:
    """Write a two-panel PNG of a run's metrics.csv rows: losses, and each task's metric, per epoch.

    Args:
        rows: metrics.csv rows (`epoch`, `train_loss`, `val_loss`, `val_<task>_<metric>`, and `test_…` when the
            test split was evaluated every epoch).
        metrics: the `<task>_<metric>` columns to draw on the right (each task's own metric), as fractions:
            validation solid, test dashed, whichever the rows hold.
        path: PNG path.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def column(name: str) -> list[float]:
        return [float(row.get(name) or "nan") for row in rows]

    present = set(rows[0]) if rows else set()
    epochs = [int(row["epoch"]) for row in rows]
    fig, (losses, scores) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, label in (("train_loss", "training"), ("val_loss", "validation"), ("test_loss", "test")):
        if name in present:
            losses.plot(epochs, column(name), marker="o", label=label)
    for split, style in (("val", "-"), ("test", "--")):
        for name in metrics:
            if f"{split}_{name}" in present:
                scores.plot(epochs, [100 * v for v in column(f"{split}_{name}")], style, marker="o",
                            label=f"{name} ({'validation' if split == 'val' else 'test'})")
    losses.set(xlabel="epoch", ylabel="loss", title="loss")
    scores.set(xlabel="epoch", ylabel="%", title="metrics")
    for ax in (losses, scores):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        ax.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100))
    plt.close(fig)
