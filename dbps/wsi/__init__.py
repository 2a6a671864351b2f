"""Whole-slide images: readers, tissue and tiling, CLAM/TRIDENT coordinate and feature files, slide tables.

Feature extraction (which needs the encoders) lives in `dbps.wsi.extract`.
"""

from dbps.wsi.batch import SLIDE_SUFFIXES, BatchSummary, list_slides, run_slides
from dbps.wsi.coords_io import (
    PatchCoords,
    coords_attributes,
    count_coords,
    list_coord_files,
    read_coords,
    slide_name,
    write_coords,
)
from dbps.wsi.features_io import FeatureBag, features_complete, list_feature_bags, write_features
from dbps.wsi.reader import OpenSlideReader, SlideReader, best_level, magnification_from_mpp, open_slide, read_patch
from dbps.wsi.source import SlidePatches
from dbps.wsi.synthetic import write_pyramid_from_slide, write_synthetic_slide
from dbps.wsi.tables import check_splits, read_labels, read_splits
from dbps.wsi.tile import TileSettings, Tiling, tile_slide, tile_slides
from dbps.wsi.tiling import grid_coords, level0_patch_size, tissue_coords, tissue_fractions
from dbps.wsi.tissue import otsu_threshold, tissue_mask

__all__ = [
    "SLIDE_SUFFIXES",
    "BatchSummary",
    "FeatureBag",
    "OpenSlideReader",
    "PatchCoords",
    "SlidePatches",
    "SlideReader",
    "TileSettings",
    "Tiling",
    "best_level",
    "check_splits",
    "coords_attributes",
    "count_coords",
    "features_complete",
    "grid_coords",
    "level0_patch_size",
    "list_coord_files",
    "list_feature_bags",
    "list_slides",
    "magnification_from_mpp",
    "open_slide",
    "otsu_threshold",
    "read_coords",
    "read_labels",
    "read_patch",
    "read_splits",
    "run_slides",
    "slide_name",
    "tile_slide",
    "tile_slides",
    "tissue_coords",
    "tissue_fractions",
    "tissue_mask",
    "write_coords",
    "write_features",
    "write_pyramid_from_slide",
    "write_synthetic_slide",
]
