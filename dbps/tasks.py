"""Tasks: what a model predicts for each image, its loss, and the name of the metric that judges it.

A task names its metric; `dbps.metrics.task_metric` resolves the name (tasks know nothing of the metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch.nn.functional as F
from torch import Tensor

from dbps.registry import parse_enum


class Activation(StrEnum):
    """`softmax`: one class per image (cross-entropy); `sigmoid`: independent labels (binary cross-entropy)."""

    SOFTMAX = "softmax"
    SIGMOID = "sigmoid"


@dataclass(frozen=True)
class TaskSpec:
    """One prediction target.

    Attributes:
        name: key of the task in targets, outputs and metrics.
        num_classes: output width (1 for a binary sigmoid task).
        activation: `softmax` or `sigmoid`.
        metric: the metric that judges the task and, by default, chooses the best checkpoint
            (a name of `dbps.metrics.METRICS`: 'accuracy', 'balanced_accuracy', 'auc', …).
        class_names: names of the classes, when the dataset has them (reports and confusion matrices).
    """

    name: str
    num_classes: int
    activation: Activation = Activation.SOFTMAX
    metric: str = "accuracy"
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"task {self.name!r}: num_classes must be ≥ 1, got {self.num_classes}")
        activation = parse_enum(Activation, self.activation, f"task {self.name!r} activation")
        object.__setattr__(self, "activation", activation)


def task_loss(logits: Tensor, target: Tensor, task: TaskSpec) -> Tensor:
    """Cross-entropy for softmax tasks (integer targets); BCE with logits for sigmoid tasks (0/1 targets)."""
    if task.activation is Activation.SOFTMAX:
        return F.cross_entropy(logits, target.long())
    return F.binary_cross_entropy_with_logits(logits, target.float().view_as(logits))


def multitask_loss(outputs: dict[str, Tensor], targets: dict[str, Tensor], tasks: list[TaskSpec]) -> Tensor:
    """Mean of the per-task losses."""
    losses = [task_loss(outputs[task.name], targets[task.name], task) for task in tasks]
    return sum(losses[1:], losses[0]) / len(losses)
