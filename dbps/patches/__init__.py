"""Patches: the grid over an image, random drop and shuffle, and sources that hand out patches by index."""

from dbps.choices import ShuffleStyle
from dbps.patches.grid import extract_patches, grid_coords, grid_shape, to_pair
from dbps.patches.order import num_kept, patch_order
from dbps.patches.sources import (
    FeaturePatches,
    ImagePatches,
    PatchSource,
    ScaledPatches,
    WrappedSource,
    gather_tokens,
    opened,
)

__all__ = [
    "FeaturePatches",
    "ImagePatches",
    "PatchSource",
    "ScaledPatches",
    "ShuffleStyle",
    "WrappedSource",
    "extract_patches",
    "gather_tokens",
    "grid_coords",
    "grid_shape",
    "num_kept",
    "opened",
    "patch_order",
    "to_pair",
]
