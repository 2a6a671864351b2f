"""Cross-validation: one run per fold (and seed) in one parent folder, resumable fold by fold.

`PARENT/cv.json` holds the base config, the split files and the seeds; `PARENT/seed<s>/fold<k>/` is an ordinary run
folder. A fold with `summary.json` is done; one with `last.pt` is continued exactly (`Trainer.resume`); one that
stopped before its first checkpoint is started again. Under torchrun every fold uses all processes, one fold after
the other; rank 0 decides what each fold needs and writes.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbps.config import Config, config_from_dict, read_yaml
from dbps.engine.build import Run, check_config
from dbps.engine.distributed import Distributed
from dbps.engine.loop import fit
from dbps.files import read_json, write_json
from dbps.wsi.tables import read_splits

log = logging.getLogger(__name__)
CV_FILE = "cv.json"


@dataclass(frozen=True)
class FoldRun:
    """One training run of the cross-validation: a seed, a split file and its run folder."""

    seed: int
    fold: int
    splits: Path
    folder: Path


def plan_folds(parent: Path, split_files: list[Path], seeds: list[int]) -> list[FoldRun]:
    """Seed by seed, fold by fold: the runs of a cross-validation."""
    return [FoldRun(seed, k, path, parent / f"seed{seed}" / f"fold{k}")
            for seed in seeds for k, path in enumerate(split_files)]


def start_cv(parent: Path, config: Config, split_files: list[Path], seeds: list[int], dist: Distributed) -> dict:
    """Check everything, then write `cv.json` into a new or empty `parent`; returns what it holds."""
    from dbps.files import check_output_folder

    if (parent / CV_FILE).exists():
        raise FileExistsError(f"{parent} holds a cross-validation; continue it with `dbps cv --resume {parent}`")
    check_output_folder(parent, "--out")
    if parent.is_dir() and any(parent.iterdir()):
        raise FileExistsError(f"{parent} is not empty and holds no cross-validation; choose a new --out")
    if not split_files:
        raise ValueError("no split files to cross-validate")
    check_config(config)
    for path in split_files:
        read_splits(path)  # readable, no slide twice
    plan = {"config": config.to_dict(), "splits": [str(p.resolve()) for p in split_files], "seeds": seeds}
    if dist.is_main:
        write_json(parent / CV_FILE, plan)
    dist.barrier()
    return plan


def resume_plan(parent: Path) -> dict[str, Any]:
    if not (parent / CV_FILE).is_file():
        raise FileNotFoundError(f"{parent}: no {CV_FILE}, so not a dbps cross-validation folder")
    plan = read_json(parent / CV_FILE)
    if not {"config", "splits", "seeds"} <= set(plan):
        raise ValueError(f"{parent / CV_FILE}: expected config, splits and seeds")
    return plan


def _state(run: FoldRun) -> str:
    if (run.folder / "summary.json").is_file():
        return "done"
    if (run.folder / "last.pt").is_file():
        return "resume"
    return "new"


def run_folds(plan: dict[str, Any], parent: Path, dist: Distributed) -> list[FoldRun]:
    """Train every fold run not yet done, in order; returns all the runs of the plan."""
    runs = plan_folds(parent, [Path(p) for p in plan["splits"]], [int(s) for s in plan["seeds"]])
    for run in runs:
        state = dist.broadcast(_state(run))  # one decision for all processes
        name = f"seed {run.seed}, fold {run.fold} ({run.folder})"
        if state == "done":
            log.info("cv: %s is done", name)
            continue
        if state == "resume":
            log.info("cv: resuming %s", name)
            config, _ = config_from_dict(read_yaml(run.folder / "config.yaml"))
            fit(Run.from_config(config, progress=config.log.progress, dist=dist), run.folder, resume=True)
            continue
        if dist.is_main and run.folder.exists():  # stopped before its first checkpoint: start it again
            shutil.rmtree(run.folder)
        dist.barrier()
        overrides = [f"data.splits={run.splits}", f"train.seed={run.seed}", f"log.run_name={run.folder.name}"]
        config, _ = config_from_dict(plan["config"], overrides)
        log.info("cv: training %s", name)
        fit(Run.from_config(config, progress=config.log.progress, dist=dist), run.folder)
    return runs
