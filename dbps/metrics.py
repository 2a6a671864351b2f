"""Metrics per task, computed by scikit-learn from logits and targets; confusion matrices and per-class recall."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType

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


def _skm() -> ModuleType:
    """scikit-learn's metrics, imported on first use (it costs seconds at start-up)."""
    from sklearn import metrics

    return metrics


def _single_label(targets: np.ndarray) -> np.ndarray:
    return targets.reshape(len(targets), -1)[:, 0] if targets.ndim > 1 else targets


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
    return float(_skm().balanced_accuracy_score(_single_label(targets), predicted_labels(logits, activation)))


@METRICS.register("macro_f1")
def macro_f1(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Unweighted mean of the per-class F1 scores (classes present in targets or predictions)."""
    return float(_skm().f1_score(_single_label(targets), predicted_labels(logits, activation), average="macro"))


@METRICS.register("kappa")
def quadratic_kappa(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Cohen's kappa with quadratic weights, for graded labels (e.g. retinopathy grades)."""
    predicted = predicted_labels(logits, activation)
    return float(_skm().cohen_kappa_score(_single_label(targets), predicted, weights="quadratic"))


@METRICS.register("auc")
def auc(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """ROC AUC: binary; one-vs-rest macro over the classes present for several classes; macro over labels for
    multi-label. NaN when the targets hold a single class (AUC is undefined)."""
    probs = probabilities(logits, activation)
    if activation is Activation.SIGMOID:
        labels = targets.reshape(probs.shape)
        if probs.ndim == 1:
            return float(_skm().roc_auc_score(labels, probs)) if len(np.unique(labels)) > 1 else float("nan")
        usable = [j for j in range(probs.shape[1]) if len(np.unique(labels[:, j])) > 1]
        if not usable:
            return float("nan")
        return float(_skm().roc_auc_score(labels[:, usable], probs[:, usable], average="macro"))
    labels = _single_label(targets)
    present = np.unique(labels)
    if len(present) < 2:
        return float("nan")
    if probs.shape[1] == 2:
        return float(_skm().roc_auc_score(labels, probs[:, 1]))
    per_class = [_skm().roc_auc_score(labels == c, probs[:, c]) for c in present]
    return float(np.mean(per_class))


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
    with warnings.catch_warnings():  # small validation sets lack some classes: the metrics handle it, quietly
        warnings.simplefilter("ignore", UserWarning)
        return {name: METRICS.get(name)(logits, targets, task.activation) for name in ordered}


def confusion(task: TaskSpec, logits: np.ndarray, targets: np.ndarray) -> np.ndarray | None:
    """Confusion matrix (true class × predicted class) of a single-label task, None for multi-label tasks."""
    if task.activation is Activation.SIGMOID and task.num_classes > 1:
        return None
    classes = 2 if task.num_classes == 1 else task.num_classes
    predicted = predicted_labels(logits, task.activation)
    return _skm().confusion_matrix(_single_label(targets), predicted, labels=list(range(classes)))


def per_class_recall(matrix: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix; NaN for classes absent from the targets."""
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)
