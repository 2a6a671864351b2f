"""'AB': gated-attention MIL pooling (Ilse et al., 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dbps.models.aggregators.base import AGGREGATORS, Aggregator


@AGGREGATORS.register("AB")
class GatedAttentionAggregator(Aggregator):
    """a = softmax_n(w · (tanh(V x) ⊙ σ(U x))); z = Σ a x; one output token shared by all tasks.

    Args:
        dim: embedding width D (also the hidden width of V and U).
        dropout: dropout on the hidden gate activations.
        **_: the other common aggregator arguments, unused here.
    """

    def __init__(self, dim: int, dropout: float = 0.0, **_: object) -> None:
        super().__init__()
        self.num_tokens = 1
        self.value = nn.Linear(dim, dim)
        self.gate = nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)
        self.weight = nn.Linear(dim, 1)

    def score(self, x: Tensor) -> Tensor:
        hidden = torch.tanh(self.value(x)) * torch.sigmoid(self.gate(x))
        return self.weight(self.drop(hidden)).squeeze(-1).softmax(dim=1)

    def forward(self, salient: Tensor, context: Tensor) -> Tensor:
        x = torch.cat([salient, context.to(salient.dtype)], dim=1)
        return (self.score(x).unsqueeze(-1) * x).sum(dim=1, keepdim=True)
