"""Choosing the salient set from scores: hard top-M, probabilistic, and triple ('half') sampling."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dbps.choices import Sampling


def sampling_logits(scores: Tensor, temperature: float = 1.0, reference: bool = False) -> Tensor:
    """Logits whose softmax the probabilistic draws follow.

    Scores are attention weights (they sum to one over the candidates), so the logits are their logs:
    softmax(log(a) / τ) ∝ a^(1/τ), and τ = 1 draws each patch with its attention weight. With
    `reference=True` the weights themselves are used as logits, as the reference code does; since they
    are all in [0, 1], that distribution is nearly uniform.
    """
    base = scores.float() if reference else scores.float().clamp_min(torch.finfo(torch.float32).tiny).log()
    return base / temperature


def gumbel_top_k(logits: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """k draws without replacement from softmax(logits) per row (Gumbel-top-k), as positions (B, k)."""
    uniform = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    tiny = torch.finfo(logits.dtype).tiny
    gumbel = -torch.log(-torch.log(uniform.clamp(tiny, 1.0 - 1e-7)))
    return (logits + gumbel).topk(k, dim=1).indices


def sample_salient(
    scores: Tensor,
    k: int,
    sampling: Sampling = Sampling.HARD,
    *,
    temperature: float = 1.0,
    reference: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Positions (B, min(k, n)) of the salient candidates, given their scores (B, n).

    'half' draws ceil(k/2) inside the top k and the rest outside it, among the patches with a score above 0: a
    patch that scores 0 (a blank one under `skip_blank`) has no probability to be drawn with, so where fewer
    patches outside the top k have one, the remaining places go to the best-ranked of the top k not drawn. On
    sparse images (Megapixel MNIST: fewer patches with ink than M) the third draw would otherwise re-embed blank
    canvas in place of ink. With `reference=True` every outside patch is drawn from, as the reference code does.
    """
    n = scores.shape[1]
    k = min(k, n)
    top = scores.topk(k, dim=1).indices
    if sampling is Sampling.HARD or k == n:
        return top
    logits = sampling_logits(scores, temperature, reference)
    if sampling is Sampling.PROB:
        return gumbel_top_k(logits, k, generator)
    from_rest = min(k - math.ceil(k / 2), n - k)
    from_top = k - from_rest
    drawn = gumbel_top_k(logits.gather(1, top), from_top, generator)
    inside = top.gather(1, drawn)
    if from_rest == 0:
        return inside
    in_top = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, top, True)
    outside = gumbel_top_k(logits.masked_fill(in_top, float("-inf")), from_rest, generator)
    if not reference:
        outside = _fill_from_top(outside, scores.gather(1, outside) > 0, top, drawn)
    return torch.cat([inside, outside], dim=1)


def _fill_from_top(outside: Tensor, drawable: Tensor, top: Tensor, drawn: Tensor) -> Tensor:
    """`outside` (B, r) in draw order with the places not `drawable` given to the best-ranked top positions
    (`top`, (B, k), in score order) not among `drawn` (positions into `top`), without a host sync."""
    rank = torch.arange(outside.shape[1], device=outside.device).expand_as(outside)
    valid_first = outside.gather(1, (~drawable).to(torch.uint8).argsort(dim=1, stable=True))
    num_valid = drawable.sum(dim=1, keepdim=True)
    spare = top.gather(1, complement(drawn, top.shape[1]))  # the top positions not drawn, in score order
    return torch.where(rank < num_valid, valid_first, spare.gather(1, (rank - num_valid).clamp_min(0)))


def complement(picked: Tensor, n: int) -> Tensor:
    """Positions 0..n−1 not in `picked` (B, k), ascending, as (B, n − k), without a host sync."""
    left = torch.ones(picked.shape[0], n, dtype=torch.bool, device=picked.device).scatter_(1, picked, False)
    return left.to(torch.uint8).argsort(dim=1, descending=True, stable=True)[:, : n - picked.shape[1]]
