"""Patches: the grid over an image, random drop and shuffle, sources that hand out patches by index, and the
source of each batch kind of `dbps.data` (`batch_source`, with `batch_overlay` for where its patches lie)."""

from dbps.choices import ShuffleStyle
from dbps.patches.batches import batch_overlay, batch_source
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
    "batch_overlay",
    "batch_source",
    "extract_patches",
    "gather_tokens",
    "grid_coords",
    "grid_shape",
    "num_kept",
    "opened",
    "patch_order",
    "to_pair",
]
