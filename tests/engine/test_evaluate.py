"""Evaluation reports: the score that picks best.pt, confusion matrices and per-class recall."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from dbps.engine.evaluate import Evaluation, selection_score, write_reports
from dbps.metrics import task_metrics
from dbps.tasks import TaskSpec

TASK = TaskSpec("grade", 3, class_names=("none", "mild", "severe"))
LOGITS = np.array([[3.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0], [0, 0, 1.0], [2.0, 0, 0], [0, 1.0, 0]])
TARGETS = np.array([0, 1, 1, 2, 1, 2])


def test_the_checkpoint_score_follows_best_metric() -> None:
    metrics = {"grade": task_metrics(TASK, LOGITS, TARGETS), "other": {"accuracy": 0.2, "balanced_accuracy": 0.4}}
    tasks = [TASK, TaskSpec("other", 2)]
    assert selection_score(metrics, 0.7, tasks, None) == pytest.approx((4 / 6 + 0.2) / 2)
    balanced = (1 + 2 / 3 + 1 / 2) / 3
    assert selection_score(metrics, 0.7, tasks, "balanced_accuracy") == pytest.approx((balanced + 0.4) / 2)
    assert selection_score(metrics, 0.7, tasks, "loss") == -0.7
    assert math.isnan(selection_score({"grade": {"auc": math.nan}}, 0.1, [TaskSpec("grade", 3, metric="auc")], None))


def test_confusion_csv_and_png_hold_counts_and_recall(tmp_path) -> None:
    multi = TaskSpec("multi", 4, "sigmoid", "multilabel_accuracy")
    multi_logits, multi_targets = np.zeros((6, 4)), np.ones((6, 4))
    evaluation = Evaluation({"grade": LOGITS, "multi": multi_logits}, {"grade": TARGETS, "multi": multi_targets}, {},
                            0.0, 0.0)
    written = write_reports(evaluation, [TASK, multi], tmp_path, "test")
    assert [p.name for p in written] == ["confusion-test-grade.csv", "confusion-test-grade.png"]
    rows = list(csv.reader((tmp_path / "confusion-test-grade.csv").open()))
    assert rows[0] == ["true \\ predicted", "none", "mild", "severe", "recall"]
    assert rows[1:] == [["none", "1", "0", "0", "1.0000"], ["mild", "1", "2", "0", "0.6667"],
                        ["severe", "0", "1", "1", "0.5000"]]
    assert (tmp_path / "confusion-test-grade.png").stat().st_size > 1000
