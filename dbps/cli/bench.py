"""`dbps bench`: time and peak memory per training step for each method and image size."""

from __future__ import annotations

import argparse
from pathlib import Path

from dbps.cli.args import non_negative_int, positive_float, positive_int, positive_ints


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="benchmark speed and memory", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML file or preset name (model, M, I, S come from it)")
    parser.add_argument("--methods", default="full,ips,dbps,dbps+", help="comma-separated (default: all four)")
    parser.add_argument("--sizes", type=positive_ints, default=[1500, 3000], help="image sides in pixels: 1500,3000")
    parser.add_argument("--batch", type=positive_int, help="images per step (default: the config's batch size)")
    parser.add_argument("--steps", type=positive_int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=non_negative_int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--peak-tflops", type=positive_float, help="bf16 peak of the GPU (fraction-of-peak column)")
    parser.add_argument("--out", type=Path, default=Path("bench.csv"), help="CSV path; the plot goes beside it")
    parser.add_argument("--no-isolate", dest="isolate", action="store_false",
                        help="on a CPU, measure every method in this process instead of a fresh one each: faster, "
                        "but a peak then includes what earlier measurements left mapped")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbps.bench import plot, run_benchmark, write_csv
    from dbps.config import load_config
    from dbps.files import check_output_file

    check_output_file(args.out, "--out")
    config, _ = load_config(args.config, args.overrides)
    results = run_benchmark(
        config,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        sizes=args.sizes,
        batch=args.batch or config.train.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        peak_tflops=args.peak_tflops,
        isolate=args.isolate,
    )
    write_csv(results, args.out)
    plot(results, args.out.with_suffix(".png"))
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0
