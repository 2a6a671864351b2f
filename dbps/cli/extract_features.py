"""`dbps extract-features`: encode the tiled patches of slides into TRIDENT-style feature bags (resumable)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dbps.cli.args import device, positive_int


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="encode tiled patches into feature h5 files", description=__doc__)
    parser.add_argument("slides", nargs="+", type=Path, metavar="SLIDE_OR_FOLDER")
    parser.add_argument("--coords", type=Path, required=True, help="folder written by `dbps tile` (or CLAM/TRIDENT)")
    parser.add_argument("--encoder", required=True,
                        help="a named pathology encoder (uni_v1, virchow2, …), a timm model name, or small_cnn")
    parser.add_argument("--out", type=Path, required=True, help="writes OUT/features_<encoder>/<slide>.h5")
    parser.add_argument("--weights", type=Path,
                        help="local weights file (.safetensors/.pth/.bin), or a JSON of encoder name → file")
    parser.add_argument("--pretrained", action="store_true", help="timm's pretrained weights (cached or downloaded)")
    parser.add_argument("--stages", type=positive_int, help="keep only the first STAGES stages of the backbone")
    parser.add_argument("--dim", type=positive_int, help="project the features to DIM (random unless --weights)")
    parser.add_argument("--patch-size", type=positive_int, help="resize patches to this side (default: the tiling's)")
    parser.add_argument("--batch-size", type=positive_int, default=64, help="patches per forward pass (default 64)")
    parser.add_argument("--workers", type=positive_int, default=2, help="patch-reading threads (default 2)")
    parser.add_argument("--stain-norm", choices=("macenko", "reinhard"), help="stain-normalise patches first")
    parser.add_argument("--stain-reference", type=Path, metavar="TILE",
                        help="reference tile of the normalisation (Macenko has a standard one without it)")
    parser.add_argument("--stain-fit", choices=("slide", "image"), default="slide",
                        help="fit the normalisation per slide (a sample of its patches; default) or per patch")
    parser.add_argument("--device", type=device, help="cpu, cuda, cuda:1 … (default: cuda when available)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dbps.data.stain_augment import StainNormaliser
    from dbps.engine.extract import build_feature_encoder, encoder_tag, extract_features
    from dbps.files import check_output_folder
    from dbps.wsi import list_slides

    check_output_folder(args.out, "--out")
    stain = None
    if args.stain_norm is not None:
        stain = StainNormaliser.from_tile(args.stain_norm, args.stain_reference, args.stain_fit)
    elif args.stain_reference is not None:
        raise ValueError("--stain-reference needs --stain-norm macenko or reinhard")
    slides = list_slides(args.slides)
    device = args.device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    encoder = build_feature_encoder(
        args.encoder, weights=args.weights, pretrained=args.pretrained, stages=args.stages, dim=args.dim
    ).to(device)
    tag = encoder_tag(args.encoder, args.stages, args.dim, args.stain_norm)
    summary = extract_features(
        slides, args.coords, encoder, args.out, tag=tag, batch_size=args.batch_size, patch_size=args.patch_size,
        num_workers=args.workers, progress=not args.no_progress, stain_norm=stain,
    )
    print(summary.line("encoded", args.out / f"features_{tag}" / "errors.log"))
    return 1 if summary.failed else 0
