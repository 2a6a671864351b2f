"""`dbps predict`: predictions and attention heatmaps for images of a split."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from dbps.cli.args import positive_int


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="predict and draw attention heatmaps", description=__doc__)
    parser.add_argument("target", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("--split", choices=["test", "val", "train"], default="test")
    parser.add_argument("--count", type=positive_int, default=8, help="images to predict (default 8)")
    parser.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/predictions-<split>)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from torch.utils.data import Subset

    from dbps.engine.build import Run
    from dbps.engine.predictions import predict_rows
    from dbps.engine.run_folder import locked_if_inside
    from dbps.files import atomic_write, check_output_folder

    built, checkpoint_path = Run.from_checkpoint(args.target, args.overrides)
    out = args.out or checkpoint_path.parent / f"predictions-{args.split}"
    check_output_folder(out, "--out" if args.out else "output folder")
    dataset = getattr(built.data, args.split)
    subset = Subset(dataset, range(min(args.count, len(dataset))))  # type: ignore[arg-type]
    with locked_if_inside(out, checkpoint_path.parent, "dbps predict"):
        rows = predict_rows(built, subset, out, prefix=args.split)
        fields = list(dict.fromkeys(key for row in rows for key in row))

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields)
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(out / "predictions.csv", write)
    pictures = sum(1 for row in rows if row.get("heatmap"))
    print(f"wrote predictions.csv ({len(rows)} rows) and {pictures} heatmaps to {out}")
    return 0
