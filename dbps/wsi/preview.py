"""A tiling preview: the slide thumbnail with the tissue mask tinted and outlined, and the kept patches outlined."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

_TISSUE = (0, 170, 60, 40)  # translucent green over tissue
_EDGE = (0, 150, 50, 255)  # its outline
_PATCH = (20, 40, 220, 200)  # blue patch outlines


def draw_tiling(
    thumbnail: np.ndarray, mask: np.ndarray, coords: np.ndarray, patch_size_level0: int, dimensions: tuple[int, int]
) -> Image.Image:
    """RGB preview of a tiling.

    Args:
        thumbnail: RGB uint8 (h, w, 3) of the whole slide.
        mask: boolean tissue mask (h, w).
        coords: (N, 2) level-0 top-left (x, y) of the kept patches.
        patch_size_level0: patch side in level-0 pixels.
        dimensions: level-0 (width, height).
    """
    height, width = thumbnail.shape[:2]
    scale_x, scale_y = width / dimensions[0], height / dimensions[1]
    layer = np.zeros((height, width, 4), dtype=np.uint8)
    layer[mask] = _TISSUE
    layer[mask & ~ndimage.binary_erosion(mask)] = _EDGE
    overlay = Image.fromarray(layer, "RGBA")
    draw = ImageDraw.Draw(overlay)
    for x, y in np.asarray(coords).tolist():
        box = (x * scale_x, y * scale_y, (x + patch_size_level0) * scale_x - 1, (y + patch_size_level0) * scale_y - 1)
        draw.rectangle(box, outline=_PATCH)
    image = Image.fromarray(thumbnail).convert("RGBA")
    return Image.alpha_composite(image, overlay).convert("RGB")
