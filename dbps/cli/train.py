"""`dbps train`: train from a YAML config or preset, with KEY=VALUE overrides."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

log = logging.getLogger("dbps")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="train a model", description=__doc__)
    parser.add_argument("--config", required=True, help="YAML file or preset name (e.g. quickstart)")
    parser.add_argument("--dataset", help="dataset name (overrides data.name)")
    parser.add_argument("--out", type=Path, help="run folder (default: log.out_dir/<run name>)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. M=50 train.epochs=3")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbps.config import load_config
    from dbps.engine.loop import fit

    overrides = list(args.overrides) + ([f"data.name={args.dataset}"] if args.dataset else [])
    config, notes = load_config(args.config, overrides)
    for note in notes:
        log.info("note: %s", note)
    run_dir = args.out or Path(config.log.out_dir) / (
        config.log.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{config.selection.method.value}"
    )
    if (run_dir / "summary.json").exists():
        raise FileExistsError(f"{run_dir} holds a finished run; choose another --out")
    log.info("run folder: %s", run_dir)
    summary = fit(config, run_dir)
    print(_report(summary, run_dir))
    return 0


def _report(summary: dict, run_dir: Path) -> str:
    lines = [f"\nfinished: {run_dir}", "test metrics (the checkpoint with the best validation score):"]
    for task, values in summary["test"].items():
        lines.append("  " + task + ": " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in values.items()))
    throughput = summary["train_images_per_second"]
    lines.append(
        f"training took {summary['train_seconds']:.0f} s ({throughput:.1f} images/s), "
        f"peak memory {summary['peak_memory_mb']:.0f} MB on {summary['device']}"
    )
    lines.append(f"files: config.yaml, metrics.csv (per epoch), best.pt, last.pt, summary.json in {run_dir}")
    return "\n".join(lines) + "\n" + json.dumps(summary["test"])
