"""`dbps extract-features`: encode the tiled patches of slides into TRIDENT-style feature bags (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="encode tiled patches into feature h5 files", description=__doc__)
    parser.add_argument("slides", nargs="+", type=Path, metavar="SLIDE_OR_FOLDER")
    parser.add_argument("--coords", type=Path, required=True, help="folder written by `dbps tile` (or CLAM/TRIDENT)")
    parser.add_argument("--encoder", required=True, help="timm model name or small_cnn")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT/features_<encoder>/<slide>.h5")
    parser.add_argument("--weights", type=Path, help="local weights file (.safetensors/.pth)")
    parser.add_argument("--pretrained", action="store_true", help="timm's pretrained weights (cached or downloaded)")
    parser.add_argument("--stages", type=int, help="keep only the first STAGES stages of the backbone")
    parser.add_argument("--dim", type=int, help="project the features to DIM (a random projection unless --weights)")
    parser.add_argument("--patch-size", type=int, help="resize patches to this side (default: the tiling's)")
    parser.add_argument("--batch-size", type=int, default=64, help="patches per forward pass (default 64)")
    parser.add_argument("--workers", type=int, default=2, help="patch-reading threads (default 2)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dbps.wsi import list_slides
    from dbps.wsi.extract import build_feature_encoder, encoder_tag, extract_features

    for flag in ("batch_size", "workers", "patch_size", "stages", "dim"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be ≥ 1, got {getattr(args, flag)}")
    slides = list_slides(args.slides)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
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
