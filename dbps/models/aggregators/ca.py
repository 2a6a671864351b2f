"""'CA': the IPS cross-attention aggregator, one learnable query token per task."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dbps.models.aggregators.base import AGGREGATORS, Aggregator
from dbps.models.attention import FeedForward, MultiHeadCrossAttention


@AGGREGATORS.register("CA")
class CrossAttentionAggregator(Aggregator):
    """z = LN(q + Drop(MHCA(q, X))); z' = LN(z + Drop(MLP(z))), over X = salient ∪ context.

    Args:
        dim: embedding width D.
        num_tasks: query tokens (one per task).
        heads: H.
        dim_key: D_k per head.
        dim_value: D_v per head.
        dim_ffn: hidden width of the MLP (D_inner).
        dropout: dropout after attention and MLP.
        attn_dropout: dropout on attention weights.
        **_: the other common aggregator arguments, unused here (`per_task`: there is always one query per task).
    """

    def __init__(
        self,
        dim: int,
        num_tasks: int = 1,
        heads: int = 8,
        dim_key: int = 16,
        dim_value: int = 16,
        dim_ffn: int | None = None,
        dropout: float = 0.0,
        attn_dropout: float = 0.0,
        **_: object,
    ) -> None:
        super().__init__()
        self.num_tokens = num_tasks
        self.query = nn.Parameter(torch.randn(1, num_tasks, dim) * dim**-0.5)
        self.attn = MultiHeadCrossAttention(dim, heads, dim_key, dim_value, attn_dropout)
        self.drop = nn.Dropout(dropout)
        self.norm_attn = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, dim_ffn or 4 * dim, dropout)
        self.norm_mlp = nn.LayerNorm(dim)

    def _queries(self, batch: int) -> Tensor:
        return self.query.expand(batch, -1, -1)

    def _feed_forward(self, z: Tensor) -> Tensor:
        return self.norm_mlp(z + self.drop(self.mlp(z)))

    def score(self, x: Tensor) -> Tensor:
        return self.attn.weights(self._queries(x.shape[0]), x).mean(dim=(1, 2))

    def forward(self, salient: Tensor, context: Tensor, keep: Tensor | None = None) -> Tensor:
        tokens = torch.cat([salient, context.to(salient.dtype)], dim=1)
        q = self._queries(tokens.shape[0])
        return self._feed_forward(self.norm_attn(q + self.drop(self.attn(q, tokens, keep))))
