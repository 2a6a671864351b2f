"""`dbps make-data`: generate a synthetic dataset."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dbps.cli.args import non_negative_int, positive_int


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="generate a dataset (Megapixel MNIST)", description=__doc__)
    parser.add_argument("dataset", choices=["megapixel-mnist"])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--n-train", type=positive_int, default=5000, help="training images (default 5000)")
    parser.add_argument("--n-test", type=positive_int, default=1000, help="test images (default 1000)")
    parser.add_argument("--size", type=positive_int, default=1500, help="canvas side in pixels (default 1500)")
    parser.add_argument("--noise", type=non_negative_int, default=50, help="noise placements per image (default 50)")
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument(
        "--digits", type=Path, help="full MNIST: an .npz (x_train, y_train, x_test, y_test) or IDX folder"
    )
    parser.add_argument("--force", action="store_true", help="overwrite an existing dataset")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbps.data import make_megapixel_mnist
    from dbps.files import check_output_folder

    check_output_folder(args.out, "--out")
    if (args.out / "meta.json").exists() and not args.force:
        raise FileExistsError(f"{args.out} already holds a dataset; pass --force to overwrite it")
    start = time.perf_counter()
    make_megapixel_mnist(args.out, n_train=args.n_train, n_test=args.n_test, size=args.size, n_noise=args.noise,
                         seed=args.seed, digits=args.digits)
    print(f"wrote {args.n_train} + {args.n_test} images to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0
