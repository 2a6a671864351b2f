"""Slide heatmaps: per-patch scores over the thumbnail, a CSV of scores at level-0 coordinates, and a GeoJSON of the
salient patches that QuPath opens (File → Import objects, or drag it onto the slide).

Coordinates are OpenSlide's level-0 pixels (those of the coordinate files). QuPath's OpenSlide server crops a slide
to its `openslide.bounds-x/-y/-width/-height` (MIRAX, Leica SCN and others record them), so its (0, 0) is OpenSlide's
(bounds-x, bounds-y): the GeoJSON and the CSV's `qupath_x`, `qupath_y` are moved by that offset.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from dbps.files import atomic_write

_SALIENT = (230, 20, 20, 255)
_CONTEXT = (240, 200, 0, 255)


def score_top(scores: np.ndarray) -> float:
    """The score that the overlay's brightest colour stands for: the largest finite score (1 when there is none)."""
    finite = np.isfinite(scores)
    return float(np.max(scores[finite])) if finite.any() else 1.0


def score_overlay(thumbnail: np.ndarray, dimensions: tuple[int, int], coords: np.ndarray,
                  patch_size_level0: int | tuple[int, int], scores: np.ndarray, salient: np.ndarray,
                  context: np.ndarray) -> Image.Image:
    """The thumbnail with each scored patch tinted by its score (inferno) and salient / context patches outlined.

    Where patches overlap, the higher score is the one shown.

    Args:
        thumbnail: RGB uint8 (h, w, 3) of the whole slide.
        dimensions: level-0 (width, height).
        coords: (N, 2) level-0 top-left (x, y).
        patch_size_level0: patch side in level-0 pixels, or its (width, height).
        scores: (N,) attention per patch, NaN where unscored.
        salient: indices of the salient patches (outlined red).
        context: indices of the context patches (outlined yellow).
    """
    from matplotlib import colormaps

    height, width = thumbnail.shape[:2]
    sx, sy = width / dimensions[0], height / dimensions[1]
    pw, ph = (patch_size_level0, patch_size_level0) if isinstance(patch_size_level0, int) else patch_size_level0
    valid = np.isfinite(scores)
    shares = np.where(valid, scores / max(score_top(scores), 1e-12), 0.0)
    colours = (colormaps["inferno"](shares) * 255).astype(np.uint8)
    layer = Image.new("RGBA", (width, height))
    draw = ImageDraw.Draw(layer)
    boxes = [(x * sx, y * sy, (x + pw) * sx - 1, (y + ph) * sy - 1) for x, y in coords]
    for i in np.flatnonzero(valid)[np.argsort(scores[valid], kind="stable")].tolist():  # the highest drawn last
        draw.rectangle(boxes[i], fill=(*colours[i, :3].tolist(), 150))
    for indices, colour in ((context, _CONTEXT), (salient, _SALIENT)):
        for i in np.asarray(indices).tolist():
            draw.rectangle(boxes[i], outline=colour, width=max(1, round(min(width, height) / 400)))
    return Image.alpha_composite(Image.fromarray(thumbnail).convert("RGBA"), layer).convert("RGB")


def write_scores_csv(path: Path, coords: np.ndarray, scores: np.ndarray, salient: np.ndarray, context: np.ndarray,
                     offset: tuple[int, int] = (0, 0)) -> None:
    """One row per patch: level-0 x, y, its score, whether it was salient or context, and x, y in QuPath's image
    (less the slide's bounds `offset`)."""
    role = np.full(len(coords), "", dtype=object)
    role[np.asarray(context, dtype=np.int64)] = "context"
    role[np.asarray(salient, dtype=np.int64)] = "salient"

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["x", "y", "score", "role", "qupath_x", "qupath_y"])
            for (x, y), score, kind in zip(coords.tolist(), scores.tolist(), role, strict=True):
                score_text = "" if score != score else f"{score:.6g}"
                writer.writerow([x, y, score_text, kind, x - offset[0], y - offset[1]])

    atomic_write(path, write)


def write_geojson(path: Path, coords: np.ndarray, patch_size_level0: int, scores: np.ndarray, indices: np.ndarray,
                  name: str, offset: tuple[int, int] = (0, 0)) -> None:
    """The patches `indices` as GeoJSON polygons in QuPath's pixels (level 0, less the slide's bounds `offset`),
    with their scores."""
    features = []
    for rank, i in enumerate(np.asarray(indices).tolist()):
        x, y = (int(v) - shift for v, shift in zip(coords[i], offset, strict=True))
        ring = [[x, y], [x + patch_size_level0, y], [x + patch_size_level0, y + patch_size_level0],
                [x, y + patch_size_level0], [x, y]]
        score = float(scores[i]) if np.isfinite(scores[i]) else None
        features.append({
            "type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": {"objectType": "annotation", "name": f"{name} #{rank + 1}", "score": score,
                           "classification": {"name": name, "color": list(_SALIENT[:3])}},
        })
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps({"type": "FeatureCollection", "features": features})))
