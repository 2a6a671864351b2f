"""Metric sinks: metrics.csv always; TensorBoard when installed; Weights & Biases / SwanLab when enabled."""

from __future__ import annotations

import csv
import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any

from dbps.files import atomic_write

log = logging.getLogger(__name__)


class CSVLogger:
    """One row per epoch; the columns are fixed by the first row. The file is rewritten whole (atomically) for each
    row, so a full disk or a crash never leaves half a row in it.

    Args:
        path: the CSV file.
        resume_after: continue an existing file, dropping its rows of epochs after this one (they belong to
            work the resumed run does again); None starts a new file.
    """

    def __init__(self, path: Path, resume_after: int | None = None) -> None:
        self.path = path
        self._fields: list[str] | None = None
        self._rows: list[dict[str, Any]] = []
        if resume_after is not None and path.is_file():
            with path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self._fields = list(reader.fieldnames or []) or None
                self._rows = [row for row in reader if int(row["epoch"]) <= resume_after]
            if self._fields is not None:
                self._write()

    def log(self, row: dict[str, Any]) -> None:
        if self._fields is None:
            self._fields = list(row)
        self._rows.append(row)
        self._write()

    def _write(self) -> None:
        fields, rows = self._fields or [], self._rows

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)

        atomic_write(self.path, write)


class MetricLoggers:
    """Fans each epoch's metrics out to every available sink.

    Args:
        run_dir: the run folder (metrics.csv and tensorboard/ go there).
        config: the resolved config, recorded by W&B / SwanLab.
        project: project name for W&B / SwanLab.
        run_name: run name for W&B / SwanLab.
        tensorboard: write TensorBoard events when `tensorboard` is installed.
        wandb: log to Weights & Biases (respects WANDB_MODE=offline).
        swanlab: log to SwanLab.
        resume_after: continue metrics.csv after this epoch (see `CSVLogger`).
    """

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        *,
        project: str,
        run_name: str,
        tensorboard: bool = True,
        wandb: bool = False,
        swanlab: bool = False,
        resume_after: int | None = None,
    ) -> None:
        self.csv = CSVLogger(run_dir / "metrics.csv", resume_after)
        self._tb = None
        self._wandb = None
        self._swanlab = None
        if tensorboard and importlib.util.find_spec("tensorboard") is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        if wandb:
            self._wandb = _optional("wandb")
            if self._wandb is not None:
                self._wandb.init(project=project, name=run_name, config=config, dir=str(run_dir))
        if swanlab:
            self._swanlab = _optional("swanlab")
            if self._swanlab is not None:
                self._swanlab.init(project=project, experiment_name=run_name, config=config, logdir=str(run_dir))

    def log(self, row: dict[str, Any]) -> None:
        self.csv.log(row)
        numbers = {k: v for k, v in row.items() if isinstance(v, int | float) and k != "epoch"}
        step = int(row.get("epoch", 0))
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(numbers, step=step)
        if self._swanlab is not None:
            self._swanlab.log(numbers, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
        if self._swanlab is not None:
            self._swanlab.finish()


def _optional(name: str) -> Any:
    if importlib.util.find_spec(name) is None:
        log.warning("%s logging is enabled in the config but %s is not installed (pip install %s); skipping it",
                    name, name, name)
        return None
    return importlib.import_module(name)
