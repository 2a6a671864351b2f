"""The cross-validation's report: every test metric per fold with mean ± std, and bootstrap 95 % confidence
intervals of AUC, balanced accuracy and macro-F1 on the pooled out-of-fold predictions; ROC and PR curves.

Each fold's run folder holds `summary.json` (its test metrics) and `predictions-test.csv` (a probability per test
slide); every slide is tested in exactly one fold, so the test predictions of a seed's folds pool into one
out-of-fold prediction per slide. The bootstrap resamples those slides with replacement (seeded).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from dbps.engine.crossval import FoldRun
from dbps.files import read_csv, read_json, write_text
from dbps.metrics import METRICS
from dbps.tasks import Activation

CI_METRICS = ("auc", "balanced_accuracy", "macro_f1")


def fold_metrics(run: FoldRun) -> dict[str, float]:
    """`task/metric` → value of a fold's test metrics."""
    summary = read_json(run.folder / "summary.json")
    tests = summary["test"].items()
    return {f"{task}/{name}": float(value) for task, values in tests for name, value in values.items()}


def read_predictions(path: Path) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray, Activation]]]:
    """Slide names and, per single-label task, (targets, logits, activation) from a `predictions-*.csv`."""
    table = read_csv(path)
    header, rows = table[0], table[1:]
    column = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    tasks = {}
    for name in header:
        if not name.endswith("_target"):
            continue
        task = name.removesuffix("_target")
        try:
            targets = np.array([int(float(v)) for v in column[name]])
        except ValueError:  # multi-label targets are lists: no pooled single-label metrics for them
            continue
        if f"{task}_probability" in column:
            p = np.clip(np.array(column[f"{task}_probability"], dtype=np.float64), 1e-12, 1 - 1e-12)
            tasks[task] = (targets, np.log(p / (1 - p))[:, None], Activation.SIGMOID)
        else:
            probs = np.array([column[c] for c in header if c.startswith(f"{task}_p_")], dtype=np.float64).T
            tasks[task] = (targets, np.log(np.clip(probs, 1e-12, 1)), Activation.SOFTMAX)
    return column.get("name", []), tasks


def pooled(runs: list[FoldRun]) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray, Activation]], list]:
    """The out-of-fold predictions of one seed's runs, concatenated, and each fold's own (for the curves)."""
    names: list[str] = []
    parts: dict[str, list[tuple[np.ndarray, np.ndarray, Activation]]] = {}
    per_fold = []
    for run in runs:
        fold_names, tasks = read_predictions(run.folder / "predictions-test.csv")
        names += fold_names
        per_fold.append(tasks)
        for task, value in tasks.items():
            parts.setdefault(task, []).append(value)
    joined = {task: (np.concatenate([p[0] for p in values]), np.concatenate([p[1] for p in values]), values[0][2])
              for task, values in parts.items()}
    return names, joined, per_fold


def bootstrap_ci(targets: np.ndarray, logits: np.ndarray, activation: Activation, metric: str,
                 repeats: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of `metric` over bootstrap resamples of the slides (NaN draws skipped)."""
    rng = np.random.default_rng(seed)
    compute = METRICS.get(metric)
    values = []
    for _ in range(repeats):
        take = rng.integers(0, len(targets), len(targets))
        value = compute(logits[take], targets[take], activation)
        if not math.isnan(value):
            values.append(value)
    if not values:
        return math.nan, math.nan
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def _table(rows: list[dict[str, object]]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({key: (f"{v:.6f}" if isinstance(v, float) else v) for key, v in row.items()} for row in rows)
    return buffer.getvalue()


def summarise(parent: Path, runs: list[FoldRun], repeats: int = 1000) -> list[dict[str, object]]:
    """Write `summary.csv`, `oof-predictions-seed<s>.csv` and the curves into `parent`; returns the table's rows."""
    rows: list[dict[str, object]] = [{"run": f"seed{r.seed}/fold{r.fold}", **fold_metrics(r)} for r in runs]
    keys = [key for key in rows[0] if key != "run"]
    for label, reduce in (("mean", np.nanmean), ("std", lambda v: np.nanstd(v, ddof=1) if len(v) > 1 else 0.0)):
        rows.append({"run": label, **{k: float(reduce(np.array([r.get(k, math.nan) for r in rows[: len(runs)]],
                                                                  dtype=float))) for k in keys}})
    for seed in sorted({r.seed for r in runs}):
        seed_runs = [r for r in runs if r.seed == seed]
        _, tasks, per_fold = pooled(seed_runs)
        point, low, high = ({"run": f"seed{seed}/{name}"} for name in ("pooled", "ci95_low", "ci95_high"))
        for task, (targets, logits, activation) in tasks.items():
            for metric in CI_METRICS:
                point[f"{task}/{metric}"] = METRICS.get(metric)(logits, targets, activation)
                low[f"{task}/{metric}"], high[f"{task}/{metric}"] = bootstrap_ci(targets, logits, activation, metric,
                                                                                repeats, seed)
            draw_curves(parent, f"seed{seed}", task, (targets, logits, activation),
                        [fold[task] for fold in per_fold if task in fold])
        rows += [point, low, high]
        oof = [{"name": n, "fold": r.fold} for r in seed_runs for n in read_predictions(
            r.folder / "predictions-test.csv")[0]]
        for task, (targets, _, _) in tasks.items():
            for row, target in zip(oof, targets, strict=True):
                row[f"{task}_target"] = int(target)
        write_text(parent / f"oof-predictions-seed{seed}.csv", _table(oof))
    write_text(parent / "summary.csv", _table(rows))
    return rows


def _positive_scores(targets: np.ndarray, logits: np.ndarray,
                     activation: Activation) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, is-positive, score) per curve: the positive class of a binary task, one-vs-rest otherwise."""
    if activation is Activation.SIGMOID:
        return [("positive", targets == 1, logits[:, 0])]
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    if probs.shape[1] == 2:
        return [("class 1", targets == 1, probs[:, 1])]
    return [(f"class {c}", targets == c, probs[:, c]) for c in range(probs.shape[1])]


def draw_curves(parent: Path, prefix: str, task: str, pooled_task: tuple, folds: list[tuple]) -> None:
    """`roc-<prefix>-<task>.png` and `pr-<prefix>-<task>.png`: each fold thin, the pooled out-of-fold curve bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    for kind in ("roc", "pr"):
        fig, ax = plt.subplots(figsize=(5, 5))
        for curves, bold in [(fold, False) for fold in folds] + [(pooled_task, True)]:
            for label, positive, score in _positive_scores(*curves):
                if positive.all() or not positive.any():
                    continue
                if kind == "roc":
                    x, y, _ = roc_curve(positive, score)
                else:
                    y, x, _ = precision_recall_curve(positive, score)
                name = f"pooled {label}, area {auc(x, y):.3f}" if bold else None
                ax.plot(x, y, lw=2 if bold else 0.8, alpha=1 if bold else 0.4, label=name)
        ax.set_xlabel("false positive rate" if kind == "roc" else "recall")
        ax.set_ylabel("true positive rate" if kind == "roc" else "precision")
        ax.set_title(f"{task}: {'ROC' if kind == 'roc' else 'precision–recall'} ({prefix}, folds thin)")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
        fig.tight_layout()
        fig.savefig(parent / f"{kind}-{prefix}-{task}.png", dpi=100)
        plt.close(fig)
