"""Triple sampling: hard, prob (against softmax(logits/τ)), half, and hard at evaluation."""

from __future__ import annotations

import math

import pytest
import torch

from dbps.patches import FeaturePatches
from dbps.selection import PatchSelector, Sampling, gumbel_top_k, sample_salient
from tests.selection.test_selector import as_sets, feature_model


def attention_weights(n: int, batch: int = 1, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, n, generator=gen) * 1.5).softmax(dim=1)


def test_hard_is_top_m() -> None:
    scores = attention_weights(30, batch=4)
    assert torch.equal(sample_salient(scores, 6, Sampling.HARD), scores.topk(6, dim=1).indices)


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_half_takes_ceil_half_from_top_m_and_the_rest_outside(k: int) -> None:
    scores = attention_weights(25, batch=64)
    picked = sample_salient(scores, k, Sampling.HALF, generator=torch.Generator().manual_seed(1))
    top = scores.topk(k, dim=1).indices
    for row, top_row in zip(picked, top, strict=True):
        inside = [p for p in row.tolist() if p in set(top_row.tolist())]
        assert len(set(row.tolist())) == k
        assert len(inside) == math.ceil(k / 2)


def test_half_with_too_few_outside_patches_still_returns_m() -> None:
    scores = attention_weights(5, batch=3)
    picked = sample_salient(scores, 4, Sampling.HALF, generator=torch.Generator().manual_seed(0))
    assert picked.shape == (3, 4) and all(len(set(r.tolist())) == 4 for r in picked)


def test_half_with_every_score_positive_is_the_papers_three_draws() -> None:
    scores, k = attention_weights(25, batch=16), 8
    picked = sample_salient(scores, k, Sampling.HALF, generator=torch.Generator().manual_seed(3))
    gen, logits = torch.Generator().manual_seed(3), scores.log()
    top = scores.topk(k, dim=1).indices
    inside = top.gather(1, gumbel_top_k(logits.gather(1, top), k // 2, gen))
    in_top = torch.zeros_like(scores, dtype=torch.bool).scatter_(1, top, True)
    outside = gumbel_top_k(logits.masked_fill(in_top, float("-inf")), k // 2, gen)
    assert torch.equal(picked, torch.cat([inside, outside], dim=1))


def blank_scores(num_content: int, n: int = 20, batch: int = 32) -> torch.Tensor:
    """Attention weights whose last n − num_content patches score 0, as `skip_blank` leaves blank ones."""
    scores = attention_weights(n, batch=batch)
    scores[:, num_content:] = 0
    return scores


def test_half_draws_no_zero_score_patch_outside_the_top_m_and_fills_from_the_top_m() -> None:
    scores, k = blank_scores(5), 8  # the top 8 hold every patch with content
    for seed in range(5):
        picked = sample_salient(scores, k, Sampling.HALF, generator=torch.Generator().manual_seed(seed))
        assert as_sets(picked) == as_sets(scores.topk(k, dim=1).indices)


def test_half_takes_what_outside_the_top_m_has_content_and_the_rest_from_the_top_m() -> None:
    scores, k = blank_scores(10), 8  # 2 patches with content outside the top 8 for 4 outside places
    picked = sample_salient(scores, k, Sampling.HALF, generator=torch.Generator().manual_seed(0))
    top = as_sets(scores.topk(k, dim=1).indices)
    for row, top_row, content in zip(as_sets(picked), top, scores > 0, strict=True):
        outside_content = set(content.nonzero().flatten().tolist()) - top_row
        assert len(row) == k and len(outside_content) == 2
        assert outside_content <= row and len(row & top_row) == k - 2
        assert all(content[p] for p in row)


def test_half_in_reference_mode_draws_outside_among_every_patch() -> None:
    scores = blank_scores(5)
    picked = sample_salient(scores, 8, Sampling.HALF, reference=True, generator=torch.Generator().manual_seed(0))
    assert (scores.gather(1, picked) == 0).sum(dim=1).float().mean() > 3  # 4 outside places, all blank


def draw_frequencies(scores: torch.Tensor, draws: int, **kwargs) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    picks = sample_salient(scores.expand(draws, -1), 1, Sampling.PROB, generator=gen, **kwargs)
    return torch.bincount(picks.flatten(), minlength=scores.shape[1]).float() / draws


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_prob_frequencies_follow_softmax_of_log_weights_over_temperature(temperature: float) -> None:
    scores = attention_weights(8, seed=4)
    expected = (scores.log() / temperature).softmax(dim=1)[0]
    observed = draw_frequencies(scores, 40_000, temperature=temperature)
    # 40k draws: the standard error of each frequency is below 0.0025, so 0.012 is a ~5-sigma bound
    torch.testing.assert_close(observed, expected, atol=0.012, rtol=0)


def test_reference_mode_draws_from_softmax_of_the_weights_themselves() -> None:
    scores = attention_weights(8, seed=4)
    observed = draw_frequencies(scores, 40_000, reference=True)
    torch.testing.assert_close(observed, scores.softmax(dim=1)[0], atol=0.012, rtol=0)
    # weights lie in [0, 1], so no patch is drawn more than e times as often as another: the fault reproduced
    assert observed.max() / observed.min() < math.e * 1.1


def test_prob_draws_without_replacement() -> None:
    picked = sample_salient(attention_weights(10, batch=50), 7, Sampling.PROB, generator=torch.Generator())
    assert all(len(set(row.tolist())) == 7 for row in picked)


@pytest.mark.parametrize("sampling", ["prob", "half"])
def test_evaluation_always_uses_hard_top_m(sampling: str) -> None:
    model, features = feature_model(), torch.randn(4, 30, 6)
    selector = PatchSelector("dbps+", num_salient=5, chunk_size=8, sampling=sampling, drop_ratio=0.3)
    hard = PatchSelector("dbps+", num_salient=5, chunk_size=8)
    source = FeaturePatches(features)
    for seed in range(3):
        gen = torch.Generator().manual_seed(seed)
        assert torch.equal(
            selector.select(model, source, training=False, generator=gen).salient_idx,
            hard.select(model, source, training=False).salient_idx,
        )


def test_training_draws_vary_with_the_generator_and_repeat_with_its_seed() -> None:
    model, source = feature_model(), FeaturePatches(torch.randn(2, 40, 6))
    selector = PatchSelector("dbps+", num_salient=6, chunk_size=8, sampling="prob", drop_ratio=0.3)

    def draw(seed: int) -> torch.Tensor:
        return selector.select(model, source, training=True, generator=torch.Generator().manual_seed(seed)).salient_idx

    assert torch.equal(draw(7), draw(7))
    assert not torch.equal(draw(7), draw(8))
