"""TransMIL: Nyström attention against exact attention, order dependence, scores, training by every method."""

from __future__ import annotations

import pytest
import torch

from dbps.engine.step import forward_backward
from dbps.models import create_aggregator, create_encoder
from dbps.models.nystrom import NystromAttention, iterative_pinv, segment_means
from dbps.patches import FeaturePatches, ImagePatches, extract_patches
from dbps.selection import PatchSelector
from tests.conftest import tiny_model

COMMON = {"dim": 16, "num_tasks": 1, "heads": 4, "dim_key": 4, "dim_value": 4, "dim_ffn": 32}


def exact_attention(attn: NystromAttention, x: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / √d) v + the value convolution, written out."""
    q, k, v = attn._split(x)
    weights = (q @ k.transpose(-1, -2) * attn.dim_head**-0.5).softmax(dim=-1)
    return attn.out((weights @ v + attn.residual(v)).transpose(1, 2).flatten(2))


def test_iterative_pinv_inverts_each_matrix_of_a_batch() -> None:
    matrices = (torch.randn(3, 2, 6, 6, dtype=torch.float64) * 2).softmax(dim=-1)
    torch.testing.assert_close(iterative_pinv(matrices, iterations=30), torch.linalg.pinv(matrices))


def test_segment_means_are_the_means_of_contiguous_runs() -> None:
    x = torch.randn(2, 7, 3)
    expected = torch.stack([x[:, 0:2].mean(1), x[:, 2:4].mean(1), x[:, 4:7].mean(1)], dim=1)  # ⌊i·7/3⌋
    torch.testing.assert_close(segment_means(x, 3), expected)


def test_short_bags_take_exact_attention() -> None:
    attn = NystromAttention(16, heads=4, landmarks=8).eval()
    x = torch.randn(2, 8, 16)
    torch.testing.assert_close(attn(x), exact_attention(attn, x))


def test_landmarks_are_exact_when_each_segment_holds_one_repeated_token() -> None:
    """Tokens repeated in pairs: the 8 segment means are the 8 distinct tokens, and Nyström equals softmax."""
    attn = NystromAttention(16, heads=4, landmarks=8, pinv_iterations=40, residual_kernel=1).double().eval()
    with torch.no_grad():
        attn.residual.weight.zero_()
    x = torch.randn(2, 8, 16, dtype=torch.float64).repeat_interleave(2, dim=1)
    torch.testing.assert_close(attn(x), exact_attention(attn, x))
    other = torch.randn(2, 16, 16, dtype=torch.float64)  # distinct tokens: an approximation, not equal
    assert not torch.allclose(attn(other), exact_attention(attn, other), atol=1e-6)


def test_query_weights_are_the_softmax_row_of_that_query() -> None:
    attn = NystromAttention(16, heads=4, landmarks=4)
    x = torch.randn(2, 9, 16)
    q, k, _ = attn._split(x)
    expected = (q[:, :, 3:4] @ k.transpose(-1, -2) * 0.5).softmax(-1).squeeze(-2)
    torch.testing.assert_close(attn.query_weights(x, 3), expected)


@pytest.mark.parametrize("n", [1, 2, 5, 12, 30])
def test_scores_cover_every_patch_once_whatever_the_padding(n: int) -> None:
    agg = create_aggregator("TransMIL", **COMMON).eval()
    x = torch.randn(2, n, 16)
    scores = agg.score(x)
    assert scores.shape == (2, n) and (scores > 0).all()
    torch.testing.assert_close(scores.sum(1), torch.ones(2))
    assert agg(x[:, :1], x[:, 1:]).shape == (2, 1, 16)


def test_padding_copies_add_their_weight_to_their_patch() -> None:
    """n = 5 sits on a 3 × 3 grid: cells 5..8 repeat patches 0..3, whose scores gather both weights."""
    agg = create_aggregator("TransMIL", **COMMON).eval()
    x = torch.randn(1, 5, 16)
    h, _ = agg._second_layer_input(x)
    weights = agg.layer2.attn.query_weights(agg.layer2.norm(h)).mean(1)[0, 1:]
    expected = torch.stack([weights[i] + (weights[i + 5] if i < 4 else 0) for i in range(5)])
    torch.testing.assert_close(agg.score(x)[0], expected / expected.sum())


def test_the_output_depends_on_the_order_of_the_tokens() -> None:
    """PPEG lays the tokens on a grid in the order they come: unlike the pooling aggregators, order matters."""
    agg = create_aggregator("TransMIL", **COMMON).eval()
    x = torch.randn(2, 9, 16)
    perm = torch.tensor([8, 0, 7, 1, 6, 2, 5, 3, 4])
    assert not torch.allclose(agg(x[:, :4], x[:, 4:]), agg(x[:, perm[:4]], x[:, perm[4:]]))
    torch.testing.assert_close(agg(x[:, :4], x[:, 4:]), agg(x[:, :6], x[:, 6:]))  # only the joint order counts


def test_unknown_shape_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="TransMIL needs dim divisible by heads"):
        create_aggregator("transmil", dim=10, heads=4)


@pytest.mark.parametrize("method", ["ips", "dbps", "dbps+"])
def test_trains_from_pixels_by_every_method(method: str) -> None:
    model = tiny_model("TransMIL", heads=2).train()
    images = torch.rand(2, 1, 48, 48, requires_grad=True)
    selector = PatchSelector(method, num_salient=3, chunk_size=5, num_context=6 if method == "dbps" else None)
    step = forward_backward(model, selector, ImagePatches(images, 8), {"label": torch.tensor([0, 1])})
    grad = extract_patches(images.grad, 8).flatten(2).abs().sum(-1)
    salient = torch.zeros_like(grad, dtype=torch.bool).scatter_(1, step.selection.salient_idx, True)
    assert (grad[salient] > 0).all() and (grad[~salient] == 0).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("method", ["ips", "dbps", "dbps+"])
def test_trains_on_feature_bags_by_every_method(method: str) -> None:
    from dbps.models import PatchClassifier
    from dbps.tasks import TaskSpec

    encoder = create_encoder("projector", in_dim=24, dim=16)
    model = PatchClassifier(encoder, create_aggregator("TransMIL", dim=16, heads=2), [TaskSpec("label", 2)]).train()
    selector = PatchSelector(method, num_salient=4, chunk_size=10, num_context=8 if method == "dbps" else None)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    bags, labels = torch.randn(4, 40, 24), torch.tensor([0, 1, 0, 1])
    bags[labels == 1, :5] += 3  # a few discriminative instances per positive bag
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        losses.append(float(forward_backward(model, selector, FeaturePatches(bags), {"label": labels}).loss))
        optimizer.step()
    assert losses[-1] < losses[0]
