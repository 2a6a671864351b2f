"""`dbps tile`: find the tissue on slides and write their patch coordinates (TRIDENT/CLAM h5) and previews."""

from __future__ import annotations

import argparse
from pathlib import Path

from dbps.cli.args import fraction, non_negative_int, positive_float, positive_int


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="tile slides into tissue patch coordinates", description=__doc__)
    parser.add_argument("slides", nargs="+", type=Path, metavar="SLIDE_OR_FOLDER")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT/patches/<slide>.h5, OUT/thumbnails/")
    parser.add_argument("--patch-size", type=positive_int, default=256, help="patch side at the magnification (256)")
    parser.add_argument("--magnification", type=positive_float, default=20.0, help="target magnification (default 20)")
    parser.add_argument("--overlap", type=non_negative_int, default=0, help="pixels shared by neighbours (default 0)")
    parser.add_argument("--min-tissue", type=fraction, default=0.5, help="smallest tissue fraction kept (default 0.5)")
    parser.add_argument("--thumbnail-size", type=positive_int, default=2048, help="longer side of the thumbnail (2048)")
    parser.add_argument("--level0-magnification", type=positive_float, help="for files that record no magnification")
    parser.add_argument("--force", action="store_true", help="redo slides already tiled")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbps.files import check_output_folder
    from dbps.wsi import TileSettings, list_slides, tile_slides

    check_output_folder(args.out, "--out")
    settings = TileSettings(
        patch_size=args.patch_size, magnification=args.magnification, overlap=args.overlap,
        min_tissue=args.min_tissue, thumbnail_size=args.thumbnail_size, level0_magnification=args.level0_magnification,
    )
    summary = tile_slides(list_slides(args.slides), args.out, settings, force=args.force, progress=not args.no_progress)
    print(summary.line("tiled", args.out / "errors.log"))
    return 1 if summary.failed else 0
