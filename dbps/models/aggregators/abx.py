"""'ABX': ABMILX, multi-head attention MIL with "attention plus" (the DBformer+ aggregator)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dbps.models.aggregators.base import AGGREGATORS, Aggregator
from dbps.models.attention import FeedForward


@AGGREGATORS.register("ABX")
class ABMILXAggregator(Aggregator):
    """Multi-head attention pooling whose logits are refined by the instances' mutual attention.

    x → Linear → GELU → Dropout; split into H heads of D/H; per head a shared MLP gives one logit per
    instance, A; attention plus: A ← A + α · softmax(q kᵀ / √d) A with q, k from a bias-free Linear on
    LayerNorm(x_h) and a learnable α (initialised to 0, so training starts from plain ABMIL); softmax over
    instances; the per-head weighted sums are concatenated → Linear → Dropout; then z + MLP(LN(z)).
    The product with A uses fused attention kernels, so no n×n matrix is held for large bags.

    With `per_task`, the logit MLP gives one logit per task (one attention branch per task, as CLAM's
    multi-branch attention has one per class), so each task pools the instances it needs into its own
    token; everything else is shared. With one task both forms are the same model.

    Args:
        dim: embedding width D (divisible by `heads`).
        heads: H.
        dim_ffn: hidden width of the final MLP (defaults to 4·D).
        dropout: dropout rate.
        num_tasks: T, the number of tokens with `per_task`.
        per_task: one attention branch and output token per task instead of one shared by all.
        **_: the other common aggregator arguments, unused here.
    """

    def __init__(self, dim: int, heads: int = 8, dim_ffn: int | None = None, dropout: float = 0.0,
                 num_tasks: int = 1, per_task: bool = False, **_: object) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"ABX needs dim divisible by heads, got dim={dim}, heads={heads}")
        self.num_tokens = num_tasks if per_task else 1
        self.heads = heads
        head_dim = dim // heads
        self.inp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout))
        self.logit = nn.Sequential(
            nn.Linear(head_dim, head_dim),
            nn.LayerNorm(head_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(head_dim, self.num_tokens),
        )
        self.norm_plus = nn.LayerNorm(head_dim)
        self.q = nn.Linear(head_dim, head_dim, bias=False)
        self.k = nn.Linear(head_dim, head_dim, bias=False)
        self.alpha = nn.Parameter(torch.zeros(()))
        self.out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim, dim_ffn or 4 * dim, dropout, nn.GELU)

    def _heads_and_weights(self, x: Tensor, keep: Tensor | None = None) -> tuple[Tensor, Tensor]:
        xh = self.inp(x).unflatten(-1, (self.heads, -1)).transpose(1, 2)  # B, H, n, D/H
        logits = self.logit(xh)  # B, H, n, T
        normed = self.norm_plus(xh)
        mask = None if keep is None else keep[:, None, None, :]  # left-out instances are not mixed in either
        mixed = F.scaled_dot_product_attention(self.q(normed), self.k(normed), logits, attn_mask=mask)
        refined = logits + self.alpha * mixed
        if keep is not None:
            refined = refined.masked_fill(~keep[:, None, :, None], float("-inf"))
        return xh, refined.softmax(dim=2)  # B, H, n, T

    def score(self, x: Tensor) -> Tensor:
        return self._heads_and_weights(x)[1].mean(dim=(1, 3))

    def forward(self, salient: Tensor, context: Tensor, keep: Tensor | None = None) -> Tensor:
        x = torch.cat([salient, context.to(salient.dtype)], dim=1)
        xh, weights = self._heads_and_weights(x, keep)
        pooled = weights.transpose(2, 3) @ xh  # B, H, T, D/H
        z = self.out(pooled.transpose(1, 2).flatten(2))  # B, T, D
        return z + self.ffn(self.norm_ffn(z))
