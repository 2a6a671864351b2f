"""`dbps cv`: train every fold of k-fold splits (and every seed) into one folder, then summarise them.

Each fold is an ordinary run folder, PARENT/seed<s>/fold<k>/; a killed cross-validation continues, at the fold
it was in, with `dbps cv --resume PARENT`. PARENT/summary.csv has every test metric per fold, their mean and
standard deviation, and per seed the metrics of the pooled out-of-fold predictions with bootstrap 95 % intervals
of AUC, balanced accuracy and macro-F1; ROC and PR curves are PNGs beside it. Under torchrun every fold uses all
processes.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from dbps.cli.args import positive_int

log = logging.getLogger("dbps")


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers ≥ 0, got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated integers ≥ 0, got {text!r}")
    return seeds


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="cross-validate: a run per fold and seed, then summary.csv", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML file or preset name")
    source.add_argument("--resume", type=Path, metavar="PARENT", help="continue an interrupted cross-validation")
    parser.add_argument("--splits", type=Path, help="folder of splits_{k}.csv (`dbps splits`, or CLAM's)")
    parser.add_argument("--folds", type=positive_int, help="use the first FOLDS split files (default: all)")
    parser.add_argument("--seeds", type=_seeds, help="repeat every fold with these seeds, e.g. 0,1,2 (default: the "
                        "config's train.seed)")
    parser.add_argument("--dataset", help="dataset kind, e.g. features or slides")
    parser.add_argument("--out", type=Path, help="the parent folder of the fold runs")
    parser.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. model.aggregator=TransMIL")
    parser.set_defaults(run=run)


def _split_files(folder: Path, folds: int | None) -> list[Path]:
    if not folder.is_dir():
        raise FileNotFoundError(f"--splits {folder}: no such folder")
    files = []
    while (folder / f"splits_{len(files)}.csv").is_file():
        files.append(folder / f"splits_{len(files)}.csv")
    if not files:
        raise FileNotFoundError(f"--splits {folder}: no splits_0.csv (make them with `dbps splits`)")
    if folds is not None and folds > len(files):
        raise ValueError(f"--folds {folds}, but {folder} has {len(files)} split files")
    return files[:folds]


def run(args: argparse.Namespace) -> int:
    from dbps.config import load_config
    from dbps.engine import distributed
    from dbps.engine.crossval import resume_plan, run_folds, start_cv
    from dbps.engine.cv_report import summarise
    from dbps.engine.faults import TrainingStopped

    ctx = distributed.from_environment()
    try:
        if args.resume is not None:
            if args.config or args.splits or args.out or args.dataset or args.seeds or args.folds or args.overrides:
                raise ValueError("--resume continues a cross-validation as it was configured: give nothing else")
            parent, plan = args.resume, resume_plan(args.resume)
        else:
            if args.out is None or args.splits is None:
                raise ValueError("a new cross-validation needs --splits and --out")
            overrides = list(args.overrides) + ([f"data.name={args.dataset}"] if args.dataset else [])
            config, notes = load_config(args.config, overrides)
            for note in notes if ctx.is_main else []:
                log.info("note: %s", note)
            parent = args.out
            plan = start_cv(parent, config, _split_files(args.splits, args.folds), args.seeds or [config.train.seed],
                            ctx)
        runs = run_folds(plan, parent, ctx)
    except TrainingStopped as stop:
        log.error("dbps: %s; the cross-validation continues with `dbps cv --resume %s`", stop, args.resume or args.out)
        return stop.exit_code
    finally:
        distributed.shutdown(ctx)
    if ctx.is_main:
        rows = summarise(parent, runs, args.bootstrap)
        print(_report(rows, parent))
    return 0


def _report(rows: list[dict], parent: Path) -> str:
    by_run = {row["run"]: row for row in rows}
    mean, std = by_run["mean"], by_run["std"]
    lines = [f"\ncross-validation: {parent} ({sum('/fold' in r for r in by_run)} runs)"]
    for key in (k for k in mean if k != "run"):
        lines.append(f"  {key}: {mean[key]:.4f} ± {std[key]:.4f}")
    for name, row in by_run.items():
        if name.endswith("/pooled"):
            seed = name.split("/")[0]
            low, high = by_run[f"{seed}/ci95_low"], by_run[f"{seed}/ci95_high"]
            for key in (k for k in row if k != "run"):
                lines.append(f"  {seed} pooled out-of-fold {key}: {row[key]:.4f} [{low[key]:.4f}, {high[key]:.4f}]")
    lines.append(f"files: summary.csv, oof-predictions-seed*.csv, roc-*.png, pr-*.png in {parent}")
    return "\n".join(lines)
