"""`dbps extract-features`: encode the tiled patches of slides into TRIDENT-style feature bags (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dbps.cli.args import device, positive_int


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="encode tiled patches into feature h5 files", description=__doc__)
    parser.add_argument("slides", nargs="+", type=Path, metavar="SLIDE_OR_FOLDER")
    parser.add_argument("--coords", type=Path, required=True, help="folder written by `dbps tile` (or CLAM/TRIDENT)")
    parser.add_argument("--encoder", required=True, help="timm model name or small_cnn")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT/features_<encoder>/<slide>.h5")
    parser.add_argument("--weights", type=Path, help="local weights file (.safetensors/.pth)")
    parser.add_argument("--pretrained", action="store_true", help="timm's pretrained weights (cached or downloaded)")
    parser.add_argument("--stages", type=positive_int, help="keep only the first STAGES stages of the backbone")
    parser.add_argument("--dim", type=positive_int, help="project the features to DIM (random unless --weights)")
    parser.add_argument("--patch-size", type=positive_int, help="resize patches to this side (default: the tiling's)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="patches per forward pass (default 64)")
    parser.add_argument("--workers", type=positive_int, default=2, help="patch-reading threads (default 2)")
    parser.add_argument("--device", type=device, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dbps.files import check_output_folder
    from dbps.wsi import list_slides
    from dbps.wsi.extract import build_feature_encoder, encoder_tag, extract_features

    check_output_folder(args.out, "--out")
    slides = list_slides(args.slides)
    device = args.device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = build_feature_encoder(
        args.encoder, weights=args.weights, pretrained=args.pretrained, stages=args.stages, dim=args.dim
    ).to(device)
    tag = encoder_tag(args.encoder, args.stages, args.dim)
    summary = extract_features(
        slides, args.coords, encoder, args.out, tag=tag, batch_size=args.batch_size, patch_size=args.patch_size,
        num_workers=args.workers, progress=not args.no_progress,
    )  # fmt: skip
    print(summary.line("encoded", args.out / f"features_{tag}" / "errors.log"))
    return 1 if summary.failed else 0
