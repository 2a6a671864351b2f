"""Metrics: hand-computed cases, and each metric equal to scikit-learn's on random predictions (ties, missing
classes, single-class targets, multi-label), which they replace at start-up."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from dbps.metrics import METRICS, confusion, predicted_labels, probabilities, task_metrics
from dbps.tasks import Activation, TaskSpec

SOFTMAX, SIGMOID = Activation.SOFTMAX, Activation.SIGMOID
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # scikit-learn warns of classes missing from targets


def test_metrics_against_hand_computed_values() -> None:
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    targets = np.array([0, 1, 1, 2])
    task = TaskSpec("t", 3, metric="balanced_accuracy")
    result = task_metrics(task, logits, targets)
    assert list(result) == ["balanced_accuracy", "accuracy", "macro_f1", "auc"]
    assert result["accuracy"] == pytest.approx(0.5)
    assert result["balanced_accuracy"] == pytest.approx((1 + 0.5 + 0) / 3)
    multi = np.array([[1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    multi_targets = np.array([[1, 0], [1, 0], [0, 0]])
    assert METRICS.get("multilabel_accuracy")(multi, multi_targets, SIGMOID) == pytest.approx(2 / 3)
    binary = np.array([[0.0, 2.0], [0.0, -1.0], [0.0, 1.0], [0.0, -3.0]])
    assert METRICS.get("auc")(binary, np.array([1, 0, 0, 1]), SOFTMAX) == pytest.approx(0.5)
    assert math.isnan(METRICS.get("auc")(binary, np.array([1, 1, 1, 1]), SOFTMAX))
    tied = np.array([[0.0, 1.0], [0.0, 1.0], [0.0, 0.0]])  # a positive and a negative share a score: half a pair
    assert METRICS.get("auc")(tied, np.array([1, 0, 0]), SOFTMAX) == pytest.approx(0.75)


def _cases(rng: np.random.Generator):
    """Softmax logits and targets of every awkward kind: few samples, classes missing from targets or predictions,
    ties (logits rounded to a few values)."""
    for n, classes, levels in ((5, 3, 2), (40, 10, 3), (200, 4, 0), (30, 6, 1), (12, 2, 2)):
        logits = rng.normal(size=(n, classes))
        if levels:
            logits = np.round(logits * levels) / levels
        targets = rng.integers(0, max(2, classes - 1), size=n)  # the last class is never a target
        yield logits, targets


def test_single_label_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    for logits, targets in _cases(rng):
        predicted = logits.argmax(axis=1)
        assert METRICS.get("balanced_accuracy")(logits, targets, SOFTMAX) == pytest.approx(
            skm.balanced_accuracy_score(targets, predicted))
        assert METRICS.get("macro_f1")(logits, targets, SOFTMAX) == pytest.approx(
            skm.f1_score(targets, predicted, average="macro"))
        assert METRICS.get("kappa")(logits, targets, SOFTMAX) == pytest.approx(
            skm.cohen_kappa_score(targets, predicted, weights="quadratic"))
        probs = probabilities(logits, SOFTMAX)
        present = np.unique(targets)
        expected = (skm.roc_auc_score(targets, probs[:, 1]) if probs.shape[1] == 2
                    else np.mean([skm.roc_auc_score(targets == c, probs[:, c]) for c in present]))
        assert METRICS.get("auc")(logits, targets, SOFTMAX) == pytest.approx(expected)
        task = TaskSpec("t", logits.shape[1])
        assert np.array_equal(confusion(task, logits, targets),
                              skm.confusion_matrix(targets, predicted, labels=list(range(logits.shape[1]))))


def test_sigmoid_metrics_equal_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    logits = np.round(rng.normal(size=(50, 5)) * 2) / 2
    targets = (rng.random((50, 5)) < 0.4).astype(np.int64)
    targets[:, 3] = 1  # a label without negatives has no AUC and is left out of the mean
    usable = [0, 1, 2, 4]
    probs = probabilities(logits, SIGMOID)
    assert METRICS.get("auc")(logits, targets, SIGMOID) == pytest.approx(
        skm.roc_auc_score(targets[:, usable], probs[:, usable], average="macro"))
    one = logits[:, :1]
    assert METRICS.get("auc")(one, targets[:, :1], SIGMOID) == pytest.approx(
        skm.roc_auc_score(targets[:, 0], probs[:, 0]))
    assert METRICS.get("balanced_accuracy")(one, targets[:, :1], SIGMOID) == pytest.approx(
        skm.balanced_accuracy_score(targets[:, 0], predicted_labels(one, SIGMOID)))
    assert math.isnan(METRICS.get("auc")(one, np.ones((50, 1)), SIGMOID))
    assert confusion(TaskSpec("m", 5, "sigmoid"), logits, targets) is None


def test_kappa_is_nan_when_both_sides_hold_one_grade() -> None:
    assert math.isnan(METRICS.get("kappa")(np.zeros((4, 3)), np.zeros(4, dtype=np.int64), SOFTMAX))
