"""Tasks: one linear head and one loss per task."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import torch.nn.functional as F
from torch import Tensor, nn

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
        metric: the metric that chooses the best checkpoint ('accuracy', 'multilabel_accuracy', 'auc', …).
    """

    name: str
    num_classes: int
    activation: Activation = Activation.SOFTMAX
    metric: str = "accuracy"

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"task {self.name!r}: num_classes must be ≥ 1, got {self.num_classes}")
        activation = parse_enum(Activation, self.activation, f"task {self.name!r} activation")
        object.__setattr__(self, "activation", activation)


class TaskHeads(nn.Module):
    """Linear(D → classes) per task, reading its own token when there is one per task, else the shared token."""

    def __init__(self, dim: int, tasks: list[TaskSpec]) -> None:
        super().__init__()
        self.tasks = list(tasks)
        self.heads = nn.ModuleDict({task.name: nn.Linear(dim, task.num_classes) for task in self.tasks})

    def forward(self, tokens: Tensor) -> dict[str, Tensor]:
        shared = tokens.shape[1] == 1
        return {
            task.name: self.heads[task.name](tokens[:, 0 if shared else i]).float() for i, task in enumerate(self.tasks)
        }


def task_loss(logits: Tensor, target: Tensor, task: TaskSpec) -> Tensor:
    """Cross-entropy for softmax tasks (integer targets); BCE with logits for sigmoid tasks (0/1 targets)."""
    if task.activation is Activation.SOFTMAX:
        return F.cross_entropy(logits, target.long())
    return F.binary_cross_entropy_with_logits(logits, target.float().view_as(logits))


def multitask_loss(outputs: dict[str, Tensor], targets: dict[str, Tensor], tasks: list[TaskSpec]) -> Tensor:
    """Mean of the per-task losses."""
    losses = [task_loss(outputs[task.name], targets[task.name], task) for task in tasks]
    return sum(losses[1:], losses[0]) / len(losses)
