"""End to end learning: a label carried by one small object on a large dark image."""

from __future__ import annotations

import time

import pytest
import torch

from dbps.engine.step import predict, train_step
from dbps.patches import ImagePatches
from dbps.selection import PatchSelector
from tests.conftest import tiny_model

SIDE, PATCH = 64, 8


def bar_images(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Dim noise everywhere; one bright 1×5 bar inside one random patch; label 0 = horizontal, 1 = vertical."""
    images = torch.rand(n, 1, SIDE, SIDE, generator=generator) * 0.2
    labels = torch.randint(0, 2, (n,), generator=generator)
    cells = torch.randint(0, (SIDE // PATCH) ** 2, (n,), generator=generator)
    offsets = torch.randint(1, PATCH - 5, (n, 2), generator=generator)
    for i in range(n):
        row, col = divmod(int(cells[i]), SIDE // PATCH)
        y, x = row * PATCH + int(offsets[i, 0]), col * PATCH + int(offsets[i, 1])
        if labels[i]:
            images[i, 0, y - 1 : y + 4, x] = 1.0
        else:
            images[i, 0, y, x - 1 : x + 4] = 1.0
    return images, labels


@pytest.mark.slow
@pytest.mark.parametrize(
    "selector",
    [
        PatchSelector("ips", num_salient=2, chunk_size=16),
        PatchSelector("dbps", num_salient=2, chunk_size=16, num_context=6),
        PatchSelector("dbps+", num_salient=2, chunk_size=16, drop_ratio=0.3, sampling="half"),
    ],
    ids=["ips", "dbps", "dbps+"],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_method_learns_a_small_object_task_in_under_a_minute(selector: PatchSelector, seed: int) -> None:
    """At every seed. The first epoch explores (random salient sets, `selection.explore_epochs=1`): without it, ips at
    seed 0 ranks background first from its random initial weights, never selects the bar and ends at chance (49 %
    after 6 epochs, measured); with it every seed is at 100 % by the second epoch."""
    gen = torch.Generator().manual_seed(0)
    train_x, train_y = bar_images(768, gen)
    test_x, test_y = bar_images(256, gen)
    gen.manual_seed(seed)
    torch.manual_seed(seed)
    model = tiny_model("DA" if selector.method == "dbps" else "CA", dim=32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    model.train()
    for epoch in range(6):
        for batch in torch.randperm(len(train_x), generator=gen).split(32):
            source = ImagePatches(train_x[batch], PATCH)
            train_step(model, selector, source, {"label": train_y[batch]}, optimizer, generator=gen,
                       explore=epoch == 0)
    logits, _ = predict(model, selector, ImagePatches(test_x, PATCH))
    accuracy = (logits["label"].argmax(1) == test_y).float().mean().item()
    elapsed = time.perf_counter() - start
    assert accuracy >= 0.95, f"{selector}, seed {seed}: test accuracy {accuracy:.3f}"
    assert elapsed < 60, f"{selector}: {elapsed:.0f} s"
