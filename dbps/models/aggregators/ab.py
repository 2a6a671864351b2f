"""'AB': gated-attention MIL pooling (Ilse et al., 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dbps.models.aggregators.base import AGGREGATORS, Aggregator


@AGGREGATORS.register("AB")
class GatedAttentionAggregator(Aggregator):
    """a = softmax_n(w · (tanh(V x) ⊙ σ(U x))); z = Σ a x; one output token shared by all tasks.

    With `per_task`, w gives one logit per task (CLAM's multi-branch attention): one weighting and one token per
    task, V and U shared. The selection score is the mean of the tasks' weights.

    Args:
        dim: embedding width D (also the hidden width of V and U).
        dropout: dropout on the hidden gate activations.
        num_tasks: T, the number of tokens with `per_task`.
        per_task: one attention branch and output token per task instead of one shared by all.
        **_: the other common aggregator arguments, unused here.
    """

    def __init__(self, dim: int, dropout: float = 0.0, num_tasks: int = 1, per_task: bool = False,
                 **_: object) -> None:
        super().__init__()
        self.num_tokens = num_tasks if per_task else 1
        self.value = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.weight = nn.Linear(dim, self.num_tokens)

    def _weights(self, x: Tensor, keep: Tensor | None = None) -> Tensor:
        hidden = torch.tanh(self.value(x)) * torch.sigmoid(self.gate(x))
        logits = self.weight(self.drop(hidden))  # B, n, T
        if keep is not None:
            logits = logits.masked_fill(~keep[:, :, None], float("-inf"))
        return logits.softmax(dim=1)

    def score(self, x: Tensor) -> Tensor:
        return self._weights(x).mean(dim=2)

    def forward(self, salient: Tensor, context: Tensor, keep: Tensor | None = None) -> Tensor:
        x = torch.cat([salient, context.to(salient.dtype)], dim=1)
        return self._weights(x, keep).transpose(1, 2) @ x  # B, T, D
