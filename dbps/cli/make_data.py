"""`dbps make-data`: generate a synthetic dataset."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from dbps.cli.args import non_negative_int, positive_int
from dbps.config.schema import GenerateConfig


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    defaults = GenerateConfig()  # the generator's defaults, the same as data.generate's
    parser = sub.add_parser(name, help="generate a dataset (Megapixel MNIST)", description=__doc__)
    parser.add_argument("dataset", choices=["megapixel-mnist"])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--n-train", type=positive_int, default=defaults.n_train,
                        help=f"training images (default {defaults.n_train})")
    parser.add_argument("--n-test", type=positive_int, default=defaults.n_test,
                        help=f"test images (default {defaults.n_test})")
    parser.add_argument("--size", type=positive_int, default=defaults.size,
                        help=f"canvas side in pixels (default {defaults.size})")
    parser.add_argument("--noise", type=non_negative_int, default=defaults.n_noise,
                        help=f"noise placements per image (default {defaults.n_noise})")
    parser.add_argument("--seed", type=non_negative_int, default=defaults.seed)
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
