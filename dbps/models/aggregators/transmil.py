"""'TransMIL': the correlated-MIL transformer of Shao et al. (NeurIPS 2021), Nyström attention and PPEG."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from dbps.models.aggregators.base import AGGREGATORS, Aggregator
from dbps.models.nystrom import NystromAttention


class TransLayer(nn.Module):
    """x + NystromAttention(LN(x)), with TransMIL's settings: D/H per head, D/2 landmarks, 6 pseudo-inverse steps."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = NystromAttention(dim, heads=heads, landmarks=max(1, dim // 2), dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.attn(self.norm(x))


class PPEG(nn.Module):
    """Pyramid position encoding generator: the patch tokens laid on a square grid, plus depthwise 7×7, 5×5 and
    3×3 convolutions of that grid; the class token passes through."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in (7, 5, 3))

    def forward(self, x: Tensor, side: int) -> Tensor:
        cls, patches = x[:, :1], x[:, 1:]
        grid = patches.transpose(1, 2).unflatten(-1, (side, side))
        grid = grid + sum(conv(grid) for conv in self.convs)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)


@AGGREGATORS.register("TransMIL")
class TransMILAggregator(Aggregator):
    """fc → square padding → [CLS] → TransLayer → PPEG → TransLayer → LN → the class token.

    The n tokens are padded to the next square s² by repeating the first s² − n (as TransMIL does), so PPEG can lay
    them on an s × s grid in the order they come (salient first, then context): the output depends on that order.
    Selection scores are the class token's attention to the patches in the second layer (exact softmax, heads
    averaged), a padding copy's weight added to its patch, renormalised over the n patches.

    Args:
        dim: embedding width D (divisible by `heads`; TransMIL: 512).
        heads: H (TransMIL: 8).
        dropout: dropout after each attention's output projection (TransMIL: 0.1).
        **_: the other common aggregator arguments, unused here.
    """

    masks_tokens = False  # PPEG convolves every token laid on its grid: none can be left out

    def __init__(self, dim: int, heads: int = 8, dropout: float = 0.0, **_: object) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"TransMIL needs dim divisible by heads, got dim={dim}, heads={heads}")
        self.num_tokens = 1
        self.fc = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.layer1 = TransLayer(dim, heads, dropout)
        self.ppeg = PPEG(dim)
        self.layer2 = TransLayer(dim, heads, dropout)
        self.norm = nn.LayerNorm(dim)

    @staticmethod
    def _square(n: int, device: torch.device) -> tuple[int, Tensor]:
        """The grid side s and, for each of its s² cells, the token it holds (the first ones again as padding)."""
        side = max(1, math.ceil(math.sqrt(n)))
        return side, torch.arange(side * side, device=device) % n

    def _second_layer_input(self, x: Tensor) -> tuple[Tensor, Tensor]:
        side, cells = self._square(x.shape[1], x.device)
        h = self.fc(x)[:, cells]
        h = torch.cat([self.cls_token.expand(len(h), -1, -1).to(h.dtype), h], dim=1)
        return self.ppeg(self.layer1(h), side), cells

    def score(self, x: Tensor) -> Tensor:
        h, cells = self._second_layer_input(x)
        weights = self.layer2.attn.query_weights(self.layer2.norm(h)).mean(dim=1)[:, 1:]  # B, s²
        per_patch = weights.new_zeros(x.shape[:2]).index_add_(1, cells, weights)
        return per_patch / per_patch.sum(dim=1, keepdim=True)

    def forward(self, salient: Tensor, context: Tensor, keep: Tensor | None = None) -> Tensor:
        if keep is not None:
            raise ValueError("TransMIL cannot leave tokens out (keep): PPEG convolves all of them")
        x = torch.cat([salient, context.to(salient.dtype)], dim=1)
        h, _ = self._second_layer_input(x)
        return self.norm(self.layer2(h))[:, :1]
