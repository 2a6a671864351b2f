"""Tissue detection: Otsu threshold on the HSV saturation of a median-blurred thumbnail, holes filled."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter
from scipy import ndimage


def otsu_threshold(values: np.ndarray) -> int:
    """The uint8 threshold t that best separates `values ≤ t` from `values > t` (maximum between-class variance)."""
    counts = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    weight = np.cumsum(counts)  # pixels at or below each level
    mass = np.cumsum(counts * np.arange(256))
    total, total_mass = weight[-1], mass[-1]
    below, above = weight, total - weight
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mass * below - total * mass) ** 2 / (below * above)
    between[(below == 0) | (above == 0)] = -1.0  # every pixel on one side: no split
    if between.max() < 0:
        return int(values.max())  # a uniform image: nothing stands out from it
    return int(np.argmax(between))


def tissue_mask(thumbnail: np.ndarray, median_size: int = 7) -> np.ndarray:
    """Boolean tissue mask of an RGB uint8 thumbnail (H, W, 3), same height and width.

    Stained tissue is saturated and glass is not: the saturation channel is median-blurred (removing dust and
    noise), split by Otsu's threshold, and the holes inside tissue (lumina, fat) are filled.

    Args:
        thumbnail: RGB uint8 (H, W, 3).
        median_size: odd side of the median filter, in thumbnail pixels.
    """
    if thumbnail.ndim != 3 or thumbnail.shape[2] != 3 or thumbnail.dtype != np.uint8:
        raise ValueError(f"thumbnail must be uint8 RGB (H, W, 3), got {thumbnail.dtype} {thumbnail.shape}")
    saturation = Image.fromarray(thumbnail).convert("HSV").getchannel("S")
    if median_size > 1:
        saturation = saturation.filter(ImageFilter.MedianFilter(median_size))
    values = np.asarray(saturation)
    mask = values > otsu_threshold(values)
    return ndimage.binary_fill_holes(mask)
