"""'DA': the DBformer salient-query dual attention (CVPR 2025)."""

from __future__ import annotations

from torch import Tensor, nn

from dbps.models.aggregators.base import AGGREGATORS
from dbps.models.aggregators.ca import CrossAttentionAggregator


@AGGREGATORS.register("DA")
class DualAttentionAggregator(CrossAttentionAggregator):
    """Salient patches first, then a salient-query read of the sub-salient context, with shared weights.

    Z1 = q + Drop(MHCA(q, E_M)); Q_s = LN(Z1); Z2 = Drop(MHCA(Q_s, E_S)); Z = LN(Z1 + Z2);
    Z' = LN(Z + Drop(MLP(Z))). The summary of the salient patches decides which context to read, which is
    how background in the context is filtered. With no context (S = 0), Z = LN(Z1). Selection scores
    come from the first attention (the learnable query over the candidates), as in CA.
    """

    def __init__(self, dim: int, **kwargs: object) -> None:
        super().__init__(dim, **kwargs)  # type: ignore[arg-type]
        self.norm_salient = nn.LayerNorm(dim)

    @property
    def context_only_parameters(self) -> bool:
        """`norm_salient` only normalises the query of the context read, which an empty context skips."""
        return True

    def forward(self, salient: Tensor, context: Tensor) -> Tensor:
        q = self._queries(salient.shape[0])
        z1 = q + self.drop(self.attn(q, salient))
        if context.shape[1] > 0:
            z1 = z1 + self.drop(self.attn(self.norm_salient(z1), context.to(salient.dtype)))
        return self._feed_forward(self.norm_attn(z1))
