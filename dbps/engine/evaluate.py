"""Evaluation: every patch, hard top-M selection, metrics per task, and the reports written for a split."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from dbps.engine.build import Run
from dbps.engine.step import predict
from dbps.files import atomic_write
from dbps.metrics import confusion, per_class_recall, predicted_labels, probabilities, task_metrics
from dbps.patches import batch_source, opened
from dbps.tasks import TaskSpec, multitask_loss
from dbps.viz import save_confusion


@dataclass
class Evaluation:
    """Outputs and metrics of a model over a split.

    Attributes:
        logits: float32 logits per task, (n, classes), in loader order.
        targets: targets per task, in loader order.
        metrics: {task: {metric: value}}, the task's own metric first.
        loss: mean multi-task loss.
        score: the validation score (higher is better) that chooses the best checkpoint.
    """

    logits: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    metrics: dict[str, dict[str, float]]
    loss: float
    score: float

    @property
    def images(self) -> int:
        return len(next(iter(self.logits.values())))

    def summary(self) -> dict[str, Any]:
        return {"loss": self.loss, "score": self.score, "tasks": self.metrics, "images": self.images}

    def row(self, prefix: str) -> dict[str, float]:
        """Flat metrics for metrics.csv: `{prefix}_loss`, `{prefix}_score`, `{prefix}_{task}_{metric}`."""
        row = {f"{prefix}_loss": self.loss, f"{prefix}_score": self.score}
        for task, values in self.metrics.items():
            row |= {f"{prefix}_{task}_{metric}": value for metric, value in values.items()}
        return row


def selection_score(metrics: dict[str, dict[str, float]], loss: float, tasks: list[TaskSpec],
                    best_metric: str | None) -> float:
    """Mean over tasks of each task's own metric (or of `best_metric`); minus the loss when it is 'loss'."""
    if best_metric == "loss":
        return -loss
    values = [metrics[task.name].get(best_metric or task.metric, math.nan) for task in tasks]
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else math.nan


@torch.no_grad()
def evaluate(run: Run, loader: DataLoader, *, desc: str = "eval") -> Evaluation:
    """Loss and per-task metrics over a loader, with every patch and hard top-M selection."""
    tasks = run.model.tasks
    logits: dict[str, list[torch.Tensor]] = {task.name: [] for task in tasks}
    targets: dict[str, list[torch.Tensor]] = {task.name: [] for task in tasks}
    for batch in tqdm(run.batches(loader), desc=desc, leave=False, disable=not run.config.log.progress):
        for group in batch.groups(run.micro_batch_size):
            with opened(batch_source(group, run.patch_dtype)) as source:
                outputs, _ = predict(run.model, run.selector, source, amp_dtype=run.amp_dtype)
            for name in logits:
                logits[name].append(outputs[name].float().cpu())
                targets[name].append(group.targets[name].cpu())
    shares = run.dist.gather((logits, targets))  # every process's share, in rank (= dataset) order
    joined = {name: torch.cat([t for share, _ in shares for t in share[name]]) for name in logits}
    joined_targets = {name: torch.cat([t for _, share in shares for t in share[name]]) for name in targets}
    loss = float(multitask_loss(joined, joined_targets, tasks))
    numpy_logits = {name: value.numpy() for name, value in joined.items()}
    numpy_targets = {name: value.numpy() for name, value in joined_targets.items()}
    metrics = {task.name: task_metrics(task, numpy_logits[task.name], numpy_targets[task.name]) for task in tasks}
    score = selection_score(metrics, loss, tasks, run.config.train.best_metric)
    return Evaluation(numpy_logits, numpy_targets, metrics, loss, score)


def write_predictions(evaluation: Evaluation, tasks: list[TaskSpec], names: list[str], path: Path) -> None:
    """One row per instance (e.g. per slide): its name, and per task the target, the prediction and the
    probability of each class (of the positive class for a single binary output)."""
    columns: dict[str, list[object]] = {"name": list(names)}
    for task in tasks:
        logits, targets = evaluation.logits[task.name], evaluation.targets[task.name]
        probs = probabilities(logits, task.activation)
        columns[f"{task.name}_target"] = [t.tolist() for t in targets]
        columns[f"{task.name}_predicted"] = [p.tolist() for p in predicted_labels(logits, task.activation)]
        if probs.ndim == 1:
            columns[f"{task.name}_probability"] = [f"{p:.6f}" for p in probs]
        else:
            labels = task.class_names if task.class_names and len(task.class_names) == probs.shape[1] else None
            for c in range(probs.shape[1]):
                columns[f"{task.name}_p_{labels[c] if labels else c}"] = [f"{p:.6f}" for p in probs[:, c]]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows(zip(*columns.values(), strict=True))

    atomic_write(path, write)


def write_reports(evaluation: Evaluation, tasks: list[TaskSpec], folder: Path, split: str,
                  names: list[str] | None = None) -> list[Path]:
    """Per-instance predictions CSV (with `names`), and a confusion matrix (CSV + PNG) with per-class recall for
    each single-label task; returns the files written."""
    written = []
    if names is not None:
        write_predictions(evaluation, tasks, names, folder / f"predictions-{split}.csv")
        written.append(folder / f"predictions-{split}.csv")
    for task in tasks:
        matrix = confusion(task, evaluation.logits[task.name], evaluation.targets[task.name])
        if matrix is None:
            continue
        names = list(task.class_names or [str(c) for c in range(matrix.shape[0])])
        if len(names) != matrix.shape[0]:
            names = [str(c) for c in range(matrix.shape[0])]
        stem = folder / f"confusion-{split}-{task.name}"
        write_confusion(stem.with_suffix(".csv"), matrix, names)
        save_confusion(matrix, names, f"{task.name} ({split})", stem.with_suffix(".png"))
        written += [stem.with_suffix(".csv"), stem.with_suffix(".png")]
    return written


def write_confusion(path: Path, matrix: np.ndarray, names: list[str]) -> None:
    """A confusion matrix as CSV, true classes down, predicted across, with each class's recall."""
    recall = per_class_recall(matrix)

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["true \\ predicted", *names, "recall"])
            for name, counts, value in zip(names, matrix, recall, strict=True):
                writer.writerow([name, *counts.tolist(), "" if math.isnan(value) else f"{value:.4f}"])

    atomic_write(path, write)
