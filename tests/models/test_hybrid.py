"""Hybrid propagation: gradients reach only the salient pixels, while the context still shapes the output."""

from __future__ import annotations

import pytest
import torch

from dbps.engine.step import forward_backward
from dbps.patches import ImagePatches, extract_patches
from dbps.selection import PatchSelector, eval_mode
from tests.conftest import tiny_model


@pytest.mark.parametrize(("method", "aggregator"), [("dbps", "DA"), ("dbps", "CA"), ("dbps+", "ABX"), ("ips", "CA")])
def test_only_salient_patch_pixels_receive_gradient(method: str, aggregator: str) -> None:
    model = tiny_model(aggregator, heads=2)
    model.train()
    images = torch.rand(2, 1, 48, 48, requires_grad=True)
    source = ImagePatches(images, 8)
    selector = PatchSelector(method, num_salient=3, chunk_size=5, num_context=6 if method == "dbps" else None)
    step = forward_backward(model, selector, source, {"label": torch.tensor([0, 1])})
    grad = extract_patches(images.grad, 8).flatten(2).abs().sum(-1)  # (B, N) gradient mass per patch
    salient = torch.zeros_like(grad, dtype=torch.bool).scatter_(1, step.selection.salient_idx, True)
    assert (grad[salient] > 0).all()
    assert (grad[~salient] == 0).all()
    assert step.selection.context_idx.shape[1] == (0 if method == "ips" else (6 if method == "dbps" else 33))
    assert all(p.grad is not None for p in model.encoder.parameters())


@pytest.mark.parametrize("aggregator", ["DA", "CA", "AB", "ABX"])
def test_changing_a_sub_salient_patch_changes_the_output(aggregator: str) -> None:
    model = tiny_model(aggregator, heads=2)
    images = torch.rand(1, 1, 48, 48)
    selector = PatchSelector("dbps", num_salient=3, chunk_size=6, num_context=5)
    selection = selector.select(model, ImagePatches(images, 8), training=False)
    changed = images.clone()
    row, col = divmod(int(selection.context_idx[0, 0]), 6)
    changed[..., row * 8 : row * 8 + 8, col * 8 : col * 8 + 8] = 1.0

    def output(pixels: torch.Tensor) -> torch.Tensor:
        source = ImagePatches(pixels, 8)
        with torch.no_grad(), eval_mode(model):
            context = model.embed(source.fetch(selection.context_idx).flatten(0, 1))[None]
            return model(source.fetch(selection.salient_idx), selection.salient_idx, context, selection.context_idx)[
                "label"
            ]

    assert not torch.allclose(output(images), output(changed))


def test_aggregator_receives_gradient_through_the_context() -> None:
    """The DA parameters see the context: zeroing it changes their gradient."""
    model = tiny_model("DA", heads=2)
    images = torch.rand(2, 1, 48, 48)
    selection = PatchSelector("dbps", num_salient=3, chunk_size=6, num_context=5).select(
        model, ImagePatches(images, 8), training=False
    )
    source = ImagePatches(images, 8)

    def aggregator_grad(context: torch.Tensor) -> torch.Tensor:
        model.zero_grad()
        out = model(source.fetch(selection.salient_idx), selection.salient_idx, context, selection.context_idx)
        out["label"].sum().backward()
        return torch.cat([p.grad.flatten() for p in model.aggregator.parameters() if p.grad is not None])

    assert not torch.allclose(aggregator_grad(selection.context_emb), aggregator_grad(selection.context_emb * 0))
