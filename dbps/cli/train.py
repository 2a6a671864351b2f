"""`dbps train`: train from a YAML config or preset with KEY=VALUE overrides, or resume an interrupted run.

Several GPUs (or CPU processes): `torchrun --nproc-per-node N -m dbps train …`.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbps.config import Config
    from dbps.engine.distributed import Distributed

log = logging.getLogger("dbps")

# What a resumed run may change: where things are and how they are logged, and the knobs a diverged run needs.
RESUMABLE_KEYS = (
    "data.root", "data.num_workers", "data.pin_memory", "train.device", "train.lr", "train.grad_clip",
    "train.max_bad_steps", "train.checkpoint_every", "log.",
)  # fmt: skip


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="train a model", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML file or preset name (e.g. quickstart)")
    source.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run exactly")
    parser.add_argument("--dataset", help="dataset name, e.g. a reference name: mnist, traffic, cqu_bpdd, …")
    parser.add_argument("--out", type=Path, help="run folder (default: log.out_dir/<run name>)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. M=50 train.epochs=3")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dbps.config import save_config
    from dbps.engine import distributed
    from dbps.engine.build import Run
    from dbps.engine.faults import TrainingStopped, out_of_memory_message
    from dbps.engine.loop import fit

    ctx = distributed.from_environment()
    try:
        config, run_dir, resume = _resumed(args) if args.resume else _new(args, ctx)
        built = Run.from_config(config, progress=config.log.progress, dist=ctx)  # every check, before any write
        if ctx.is_main:
            log.info("%s run folder: %s", "resuming" if resume else "new", run_dir)
            if resume and args.overrides:
                save_config(config, run_dir / "config.yaml")  # later resumes and `dbps eval` see the new paths
        with _cleared_if_unstarted(run_dir, ctx.is_main and not resume):
            summary = fit(built, run_dir, resume=resume)
    except TrainingStopped as stop:
        log.error("dbps: %s", stop)
        return stop.exit_code
    except torch.OutOfMemoryError:
        raise ValueError(out_of_memory_message(str(torch.cuda.current_device()))) from None
    finally:
        distributed.shutdown(ctx)
    if ctx.is_main:
        print(_report(summary, run_dir))
    return 0


@contextmanager
def _cleared_if_unstarted(run_dir: Path, active: bool) -> Iterator[None]:
    """A new run that fails before its first checkpoint (a bad image, out of memory) leaves its folder as it found
    it, absent or empty, so that the same command can simply be run again."""
    existed = run_dir.is_dir()
    try:
        yield
    except BaseException:
        if active and run_dir.is_dir() and not (run_dir / "last.pt").exists():
            for entry in list(run_dir.iterdir()) if existed else [run_dir]:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        raise


def _new(args: argparse.Namespace, ctx: Distributed) -> tuple[Config, Path, bool]:
    from dbps.config import load_config

    overrides = list(args.overrides) + ([f"data.name={args.dataset}"] if args.dataset else [])
    config, notes = load_config(args.config, overrides)
    for note in notes if ctx.is_main else []:
        log.info("note: %s", note)
    run_dir = args.out or Path(config.log.out_dir) / (
        config.log.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{config.selection.method.value}"
    )
    run_dir = ctx.broadcast(run_dir)  # one folder, named by rank 0
    _check_fresh(run_dir)
    return config, run_dir, False


def _check_fresh(run_dir: Path) -> None:
    """A new run never lands on a finished or interrupted run, nor in a folder holding other files."""
    from dbps.files import check_output_folder

    if (run_dir / "summary.json").exists():
        raise FileExistsError(f"{run_dir} holds a finished run; choose another --out")
    if (run_dir / "last.pt").exists() or (run_dir / "config.yaml").exists():
        raise FileExistsError(f"{run_dir} holds an interrupted run; continue it with `dbps train --resume {run_dir}` "
                              "or choose another --out")  # fmt: skip
    check_output_folder(run_dir, "run folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise FileExistsError(f"{run_dir} is not empty and holds no dbps run; choose an empty or new --out")


def _resumed(args: argparse.Namespace) -> tuple[Config, Path, bool]:
    from dbps.config import config_from_dict, read_yaml

    run_dir: Path = args.resume
    if args.dataset or args.out:
        raise ValueError("--resume continues a run as it was configured: drop --dataset and --out")
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml, so not a dbps run folder")
    if (run_dir / "summary.json").exists():
        raise FileExistsError(f"{run_dir} holds a finished run; nothing to resume (start a new one with --out)")
    if not (run_dir / "last.pt").is_file():
        raise FileNotFoundError(f"{run_dir}: no last.pt, the run stopped before its first checkpoint; start it again")
    saved, _ = config_from_dict(read_yaml(run_dir / "config.yaml"))
    config, _ = config_from_dict(read_yaml(run_dir / "config.yaml"), args.overrides)
    changed = [key for key in _differences(saved.to_dict(), config.to_dict()) if not key.startswith(RESUMABLE_KEYS)]
    if changed:
        raise ValueError(f"cannot change {', '.join(changed)} when resuming: the run would not continue the same "
                         f"training (allowed: {', '.join(RESUMABLE_KEYS)}*)")  # fmt: skip
    return config, run_dir, True


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in old.keys() | new.keys():
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return sorted(keys)


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
    confusion = ["confusion-test-*.png"] if any(run_dir.glob("confusion-test-*.png")) else []
    pictures = [*summary.get("pictures", []), *confusion]
    if pictures:
        lines.append(f"look at: {', '.join(pictures)} in {run_dir}")
    return "\n".join(lines) + "\n" + json.dumps(summary["test"])
