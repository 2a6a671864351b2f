"""Whole-slide images: readers, tissue and tiling, CLAM/TRIDENT coordinate and feature files, slide tables.

Feature extraction (which needs the encoders) lives in `dbps.engine.extract`: nothing here imports the models.
"""

from __future__ import annotations

import importlib
from typing import Any

# name → module: imported on first use, so `import dbps` does not pay for scipy and tifffile
_LAZY = {
    "BatchSummary": "dbps.wsi.batch",
    "FeatureBag": "dbps.wsi.features_io",
    "OpenSlideReader": "dbps.wsi.reader",
    "PatchCoords": "dbps.wsi.coords_io",
    "SLIDE_SUFFIXES": "dbps.wsi.batch",
    "SlidePatches": "dbps.wsi.source",
    "SlideReader": "dbps.wsi.reader",
    "TileSettings": "dbps.wsi.tile",
    "Tiling": "dbps.wsi.tile",
    "best_level": "dbps.wsi.reader",
    "check_bag_headers": "dbps.wsi.features_io",
    "check_splits": "dbps.wsi.tables",
    "coords_attributes": "dbps.wsi.coords_io",
    "count_coords": "dbps.wsi.coords_io",
    "features_complete": "dbps.wsi.features_io",
    "grid_coords": "dbps.wsi.tiling",
    "level0_patch_size": "dbps.wsi.tiling",
    "list_coord_files": "dbps.wsi.coords_io",
    "list_feature_bags": "dbps.wsi.features_io",
    "list_slides": "dbps.wsi.batch",
    "magnification_from_mpp": "dbps.wsi.reader",
    "open_slide": "dbps.wsi.reader",
    "otsu_threshold": "dbps.wsi.tissue",
    "read_coords": "dbps.wsi.coords_io",
    "read_labels": "dbps.wsi.tables",
    "read_patch": "dbps.wsi.reader",
    "read_splits": "dbps.wsi.tables",
    "run_slides": "dbps.wsi.batch",
    "slide_name": "dbps.wsi.coords_io",
    "tile_slide": "dbps.wsi.tile",
    "tile_slides": "dbps.wsi.tile",
    "tissue_coords": "dbps.wsi.tiling",
    "tissue_fractions": "dbps.wsi.tiling",
    "tissue_mask": "dbps.wsi.tissue",
    "write_coords": "dbps.wsi.coords_io",
    "write_features": "dbps.wsi.features_io",
    "write_pyramid_from_slide": "dbps.wsi.synthetic",
    "write_synthetic_slide": "dbps.wsi.synthetic",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
