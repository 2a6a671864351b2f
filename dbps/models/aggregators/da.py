"""'DA': the DBformer salient-query dual attention (CVPR 2025)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dbps.models.aggregators.base import AGGREGATORS, keep_some
from dbps.models.aggregators.ca import CrossAttentionAggregator


@AGGREGATORS.register("DA")
class DualAttentionAggregator(CrossAttentionAggregator):
    """Salient patches first, then a salient-query read of the sub-salient context, with shared weights.

    Z1 = q + Drop(MHCA(q, E_M)); Q_s = LN(Z1); Z2 = Drop(MHCA(Q_s, E_S)); Z = LN(Z1 + Z2);
    Z' = LN(Z + Drop(MLP(Z))). The summary of the salient patches decides which context to read, which is
    how background in the context is filtered. With no context (S = 0), Z = LN(Z1). Selection scores
    come from the first attention (the learnable query over the candidates), as in CA.

    Args:
        dim: embedding width D.
        context_gate: Z = LN(Z1 + γ ⊙ Z2) with a learnable per-channel γ that starts at zero (LayerScale,
            as Flamingo's gated cross-attention): the model starts as CA over the salient patches and opens
            the context read as far as it helps. False: the paper's DA (γ = 1, fixed).
        **kwargs: the CA arguments.
    """

    def __init__(self, dim: int, context_gate: bool = False, **kwargs: object) -> None:
        super().__init__(dim, **kwargs)  # type: ignore[arg-type]
        self.norm_salient = nn.LayerNorm(dim)
        self.context_scale = nn.Parameter(torch.zeros(dim)) if context_gate else None

    @property
    def context_only_parameters(self) -> bool:
        """`norm_salient` only normalises the query of the context read, which an empty context skips."""
        return True

    def forward(self, salient: Tensor, context: Tensor, keep: Tensor | None = None) -> Tensor:
        num_salient = salient.shape[1]
        salient_keep = context_keep = None
        if keep is not None:  # a row may keep context only, or salient patches only: each read gets its own mask
            salient_keep = keep_some(keep[:, :num_salient])
            context_keep = keep[:, num_salient:]
        q = self._queries(salient.shape[0])
        z1 = q + self.drop(self.attn(q, salient, salient_keep))
        if context.shape[1] > 0:
            read = self.drop(self.attn(self.norm_salient(z1), context.to(salient.dtype), keep_some(context_keep)))
            if context_keep is not None:  # an image with no context left reads nothing
                read = read * context_keep.any(dim=1)[:, None, None]
            z1 = z1 + (read if self.context_scale is None else self.context_scale * read)
        return self._feed_forward(self.norm_attn(z1))
