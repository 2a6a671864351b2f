"""Metrics per task from logits and targets; confusion matrices and per-class recall.

Computed with numpy from the confusion matrix and from ranks, with scikit-learn's definitions (tests/test_metrics.py
checks each against scikit-learn): importing scikit-learn costs 1.5 s, which every `dbps train` and `dbps eval`
paid for a few sums.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dbps.registry import Registry
from dbps.tasks import Activation, TaskSpec

MetricFn = Callable[[np.ndarray, np.ndarray, Activation], float]
METRICS: Registry[float] = Registry("metric")


def predicted_labels(logits: np.ndarray, activation: Activation) -> np.ndarray:
    """Softmax: class index per image (n,). Sigmoid: 0/1 per label (n, L), or (n,) for one binary label."""
    if activation is Activation.SOFTMAX:
        return logits.argmax(axis=1)
    labels = (logits > 0).astype(np.int64)
    return labels[:, 0] if labels.ndim == 2 and labels.shape[1] == 1 else labels


def probabilities(logits: np.ndarray, activation: Activation) -> np.ndarray:
    """Softmax probabilities (n, C), or sigmoid probabilities (n,) for one binary label, (n, L) for several."""
    if activation is Activation.SIGMOID:
        probs = 1.0 / (1.0 + np.exp(-logits))
        return probs[:, 0] if probs.ndim == 2 and probs.shape[1] == 1 else probs
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def _single_label(targets: np.ndarray) -> np.ndarray:
    return targets.reshape(len(targets), -1)[:, 0] if targets.ndim > 1 else targets


def _observed_confusion(targets: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Confusion matrix over the classes seen in either targets or predictions, in sorted order."""
    classes, codes = np.unique(np.concatenate([targets, predicted]), return_inverse=True)
    k, n = len(classes), len(targets)
    return np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k)


def _binary_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann–Whitney statistic: the chance that a positive outranks a negative, ties counting half."""
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = ((ends - counts + 1 + ends) / 2)[inverse]  # 1-based ranks, the mean rank within ties
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@METRICS.register("accuracy")
def accuracy(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Softmax: top-1 accuracy. Sigmoid: mean accuracy over all labels."""
    predicted = predicted_labels(logits, activation)
    return float((predicted == targets.reshape(predicted.shape)).mean())


@METRICS.register("multilabel_accuracy")
def multilabel_accuracy(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Exact match: every label of an image right."""
    predicted = predicted_labels(logits, activation).reshape(len(targets), -1)
    return float((predicted == targets.reshape(len(targets), -1)).all(axis=1).mean())


@METRICS.register("balanced_accuracy")
def balanced_accuracy(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Mean recall over the classes present in the targets."""
    matrix = _observed_confusion(_single_label(targets), predicted_labels(logits, activation))
    return float(np.nanmean(per_class_recall(matrix)))


@METRICS.register("macro_f1")
def macro_f1(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Unweighted mean of the per-class F1 scores (classes present in targets or predictions)."""
    matrix = _observed_confusion(_single_label(targets), predicted_labels(logits, activation))
    hits = np.diag(matrix)
    return float(np.mean(2 * hits / (matrix.sum(axis=0) + matrix.sum(axis=1))))


@METRICS.register("kappa")
def quadratic_kappa(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Cohen's kappa with quadratic weights, for graded labels (e.g. retinopathy grades); the grades are the
    classes seen in targets or predictions, in order, as scikit-learn counts them."""
    observed = _observed_confusion(_single_label(targets), predicted_labels(logits, activation)).astype(float)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    grades = np.arange(len(observed))
    weights = (grades[:, None] - grades[None, :]) ** 2
    disagreement = (weights * expected).sum()
    return float(1 - (weights * observed).sum() / disagreement) if disagreement else float("nan")


@METRICS.register("auc")
def auc(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """ROC AUC: binary; one-vs-rest macro over the classes present for several classes; macro over labels for
    multi-label. NaN when the targets hold a single class (AUC is undefined)."""
    probs = probabilities(logits, activation)
    if activation is Activation.SIGMOID:
        labels = targets.reshape(probs.shape).astype(bool)
        columns = [(labels, probs)] if probs.ndim == 1 else [(labels[:, j], probs[:, j]) for j in range(probs.shape[1])]
        per_label = [_binary_auc(y, p) for y, p in columns if 0 < y.sum() < len(y)]
        return float(np.mean(per_label)) if per_label else float("nan")
    labels = _single_label(targets)
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return _binary_auc(labels == 1, probs[:, 1])
    return float(np.mean([_binary_auc(labels == c, probs[:, c]) for c in present]))


def task_metric(task: TaskSpec) -> MetricFn:
    """The metric that judges `task`; an unknown name raises a ValueError that lists the known ones."""
    return METRICS.get(task.metric)


def task_metrics(task: TaskSpec, logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The metrics users of such a task report, the task's own metric first.

    Softmax and single binary sigmoid tasks: accuracy, balanced accuracy, macro-F1, AUC. Multi-label tasks:
    exact match, per-label accuracy, AUC.
    """
    single = task.activation is Activation.SOFTMAX or task.num_classes == 1
    if single:
        names = ["accuracy", "balanced_accuracy", "macro_f1", "auc"]
    else:
        names = ["multilabel_accuracy", "accuracy", "auc"]
    ordered = [task.metric, *(name for name in names if name != task.metric)]
    return {name: METRICS.get(name)(logits, targets, task.activation) for name in ordered}


def confusion(task: TaskSpec, logits: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
    """Confusion matrix (true class × predicted class) of a single-label task, None for multi-label tasks."""
    if task.activation is Activation.SIGMOID and task.num_classes > 1:
        return None
    classes = 2 if task.num_classes == 1 else task.num_classes
    truth, predicted = _single_label(targets).astype(np.int64), predicted_labels(logits, task.activation)
    known = (truth >= 0) & (truth < classes) & (predicted >= 0) & (predicted < classes)
    return np.bincount(truth[known] * classes + predicted[known], minlength=classes**2).reshape(classes, classes)


def per_class_recall(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix; NaN for classes absent from the targets."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)
