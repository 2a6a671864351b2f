"""`dbps train`: train from a YAML config or preset with KEY=VALUE overrides, or resume an interrupted run.

Several GPUs (or CPU processes): `torchrun --nproc-per-node N -m dbps train …`.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
)


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
        existed = run_dir.is_dir()
        with _held(run_dir, resume, ctx):
            if ctx.is_main:
                log.info("%s run folder: %s", "resuming" if resume else "new", run_dir)
                if resume and args.overrides:
                    save_config(config, run_dir / "config.yaml")  # later resumes and `dbps eval` see the new paths
            with _cleared_if_unstarted(run_dir, existed, ctx.is_main and not resume):
                try:
                    summary = fit(built, run_dir, resume=resume)
                except OSError as exc:  # a full disk, a lost mount: say what is left and how to go on
                    raise _what_is_left(exc, run_dir) if exc.errno and exc.filename else exc from None
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
def _held(run_dir: Path, resume: bool, ctx: Distributed) -> Iterator[None]:
    """The run folder's lock, held by rank 0 for the whole run; the checks that the folder can take this run are
    made again once it is held (another command may have started, finished or left files in it meanwhile)."""
    from dbps.engine.run_folder import locked

    with ExitStack() as stack:
        problem = None
        if ctx.is_main:
            try:
                stack.enter_context(locked(run_dir, f"dbps train{' --resume' if resume else ''}"))
                check = _check_resumable if resume else _check_fresh
                check(run_dir)
            except (OSError, ValueError) as exc:
                problem = exc
        problem = ctx.broadcast(problem)  # every process stops when rank 0 cannot have the folder
        if problem is not None:
            raise problem
        yield


@contextmanager
def _cleared_if_unstarted(run_dir: Path, existed: bool, active: bool) -> Iterator[None]:
    """A new run that fails before its first checkpoint (a bad image, out of memory) leaves its folder as it found
    it (`existed` or not), absent or empty, so that the same command can simply be run again."""
    try:
        yield
    except BaseException:
        if active and run_dir.is_dir() and not (run_dir / "last.pt").exists():
            for entry in list(run_dir.iterdir()) if existed else [run_dir]:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        raise


def _new(args: argparse.Namespace, ctx: Distributed) -> tuple[Config, Path, bool]:
    from dbps.config import load_config
    from dbps.engine.run_folder import check_not_in_use

    overrides = list(args.overrides) + ([f"data.name={args.dataset}"] if args.dataset else [])
    config, notes = load_config(args.config, overrides)
    for note in notes if ctx.is_main else []:
        log.info("note: %s", note)
    run_dir = args.out or Path(config.log.out_dir) / (
        config.log.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{config.selection.method.value}"
    )
    run_dir = ctx.broadcast(run_dir)  # one folder, named by rank 0
    check_not_in_use(run_dir)
    _check_fresh(run_dir)
    return config, run_dir, False


def _check_fresh(run_dir: Path) -> None:
    """A new run never lands on a finished or interrupted run, nor in a folder holding other files."""
    from dbps.engine.run_folder import LOCK_FILE
    from dbps.files import check_output_folder

    if (run_dir / "summary.json").exists():
        raise FileExistsError(f"{run_dir} holds a finished run; choose another --out")
    if (run_dir / "last.pt").exists() or (run_dir / "config.yaml").exists():
        raise FileExistsError(f"{run_dir} holds an interrupted run; continue it with `dbps train --resume {run_dir}` "
                              "or choose another --out")
    check_output_folder(run_dir, "run folder")
    if run_dir.is_dir() and any(entry.name != LOCK_FILE for entry in run_dir.iterdir()):
        raise FileExistsError(f"{run_dir} is not empty and holds no dbps run; choose an empty or new --out")


def _resumed(args: argparse.Namespace) -> tuple[Config, Path, bool]:
    from dbps.config import config_from_dict, read_yaml
    from dbps.engine.run_folder import check_not_in_use

    run_dir: Path = args.resume
    if args.dataset or args.out:
        raise ValueError("--resume continues a run as it was configured: drop --dataset and --out")
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml, so not a dbps run folder")
    check_not_in_use(run_dir)
    _check_resumable(run_dir)
    saved, _ = config_from_dict(read_yaml(run_dir / "config.yaml"))
    config, _ = config_from_dict(read_yaml(run_dir / "config.yaml"), args.overrides)
    changed = [key for key in _differences(saved.to_dict(), config.to_dict()) if not key.startswith(RESUMABLE_KEYS)]
    if changed:
        raise ValueError(f"cannot change {', '.join(changed)} when resuming: the run would not continue the same "
                         f"training (allowed: {', '.join(RESUMABLE_KEYS)}*)")
    return config, run_dir, True


def _what_is_left(exc: OSError, run_dir: Path) -> OSError:
    """`exc` with what the run folder still holds: the last complete checkpoints and how to continue from them."""
    from dbps.safe_load import load_safely

    last = run_dir / "last.pt"
    if not last.is_file():
        note = "the run had no checkpoint yet and its folder was cleared: run the same command again"
    else:
        try:
            state = load_safely(last, mmap=True, numpy_arrays=True)["state"]
            where = f" (last.pt: epoch {state['epoch']}, step {state['step']})"
        except (ValueError, KeyError, TypeError):
            where = ""
        fix = "free some space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that"
        note = (f"the checkpoints in {run_dir} are the last complete ones{where}: {fix}, then "
                f"`dbps train --resume {run_dir}`")
    return type(exc)(exc.errno, f"{exc.strerror}; {note}", exc.filename)


def _check_resumable(run_dir: Path) -> None:
    if (run_dir / "summary.json").exists():
        raise FileExistsError(f"{run_dir} holds a finished run; nothing to resume (start a new one with --out)")
    if not (run_dir / "last.pt").is_file():
        raise FileNotFoundError(f"{run_dir}: no last.pt, the run stopped before its first checkpoint; start it again")


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
