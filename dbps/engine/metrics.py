"""Per-task metrics, computed by scikit-learn from logits and targets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

from dbps.models.heads import Activation, TaskSpec
from dbps.registry import Registry

METRICS: Registry[float] = Registry("metric")


def _labels(logits: np.ndarray, activation: Activation) -> np.ndarray:
    if activation is Activation.SOFTMAX:
        return logits.argmax(axis=1)
    return (logits > 0).astype(np.int64)


def _positive_scores(logits: np.ndarray, activation: Activation) -> np.ndarray:
    if activation is Activation.SIGMOID or logits.shape[1] == 1:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = shifted / shifted.sum(axis=1, keepdims=True)
    return probs[:, 1] if probs.shape[1] == 2 else probs


def _register(name: str) -> Callable:
    return METRICS.register(name)


@_register("accuracy")
def accuracy(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Softmax: top-1 accuracy. Sigmoid: mean accuracy over all labels."""
    return float((_labels(logits, activation) == targets.reshape(_labels(logits, activation).shape)).mean())


@_register("multilabel_accuracy")
def multilabel_accuracy(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Exact match: every label of an image right."""
    predicted = _labels(logits, activation).reshape(len(targets), -1)
    return float((predicted == targets.reshape(len(targets), -1)).all(axis=1).mean())


@_register("balanced_accuracy")
def balanced_accuracy(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    return float(skm.balanced_accuracy_score(targets, _labels(logits, activation)))


@_register("macro_f1")
def macro_f1(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    return float(skm.f1_score(targets, _labels(logits, activation), average="macro"))


@_register("kappa")
def quadratic_kappa(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """Cohen's kappa with quadratic weights, for graded labels."""
    return float(skm.cohen_kappa_score(targets, _labels(logits, activation), weights="quadratic"))


@_register("auc")
def auc(logits: np.ndarray, targets: np.ndarray, activation: Activation) -> float:
    """ROC AUC: binary, one-vs-rest macro for several classes, macro over labels for multi-label."""
    scores = _positive_scores(logits, activation)
    if len(np.unique(targets)) < 2:
        return float("nan")
    if activation is Activation.SOFTMAX and scores.ndim == 2:
        return float(skm.roc_auc_score(targets, scores, multi_class="ovr", labels=list(range(scores.shape[1]))))
    return float(skm.roc_auc_score(targets.reshape(scores.shape), scores))


def task_metrics(task: TaskSpec, logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The task's own metric, plus accuracy for single-label tasks."""
    names = [task.metric]
    if task.activation is Activation.SOFTMAX and task.metric != "accuracy":
        names.append("accuracy")
    return {name: METRICS.get(name)(logits, targets, task.activation) for name in names}
