"""Task heads: one linear classifier per task, reading the aggregator's token for that task."""

from __future__ import annotations

from torch import Tensor, nn

from dbps.tasks import TaskSpec


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
