"""Attention building blocks shared by the aggregators."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class MultiHeadCrossAttention(nn.Module):
    """Queries attend over a set of tokens; bias-free projections W_q, W_k (D→H·D_k), W_v (D→H·D_v), W_o.

    Args:
        dim: token width D.
        heads: H.
        dim_key: D_k per head.
        dim_value: D_v per head.
        attn_dropout: dropout on the attention weights (training only).
    """

    def __init__(self, dim: int, heads: int, dim_key: int, dim_value: int, attn_dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dim_key, self.dim_value = heads, dim_key, dim_value
        self.q = nn.Linear(dim, heads * dim_key, bias=False)
        self.k = nn.Linear(dim, heads * dim_key, bias=False)
        self.v = nn.Linear(dim, heads * dim_value, bias=False)
        self.out = nn.Linear(heads * dim_value, dim, bias=False)
        self.attn_dropout = attn_dropout

    def _split(self, x: Tensor, width: int) -> Tensor:
        return x.unflatten(-1, (self.heads, width)).transpose(1, 2)  # B, H, n, width

    def weights(self, query: Tensor, tokens: Tensor) -> Tensor:
        """Softmax attention of each query over the tokens, (B, H, T, n)."""
        q = self._split(self.q(query), self.dim_key)
        k = self._split(self.k(tokens), self.dim_key)
        return (q @ k.transpose(-2, -1) * self.dim_key**-0.5).softmax(dim=-1)

    def forward(self, query: Tensor, tokens: Tensor, keep: Tensor | None = None) -> Tensor:
        """(B, T, D) queries, (B, n, D) tokens → (B, T, D); `keep` (B, n) bool: the tokens attended to (None: all)."""
        q = self._split(self.q(query), self.dim_key)
        k = self._split(self.k(tokens), self.dim_key)
        v = self._split(self.v(tokens), self.dim_value)
        dropout = self.attn_dropout if self.training else 0.0
        mask = None if keep is None else keep[:, None, None, :]
        mixed = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        return self.out(mixed.transpose(1, 2).flatten(2))


class FeedForward(nn.Sequential):
    """Linear → activation → dropout → Linear."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__(nn.Linear(dim, hidden), activation(), nn.Dropout(dropout), nn.Linear(hidden, dim))
