"""End to end learning: a label carried by one small object on a large image."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import torch

from dbps.engine.step import predict, train_step
from dbps.patches import ImagePatches
from dbps.selection import PatchSelector
from tests.conftest import tiny_model

SIDE, PATCH = 64, 8
CELLS = (SIDE // PATCH) ** 2
Images = Callable[[int, torch.Generator], tuple[torch.Tensor, torch.Tensor]]


def draw_bar(image: torch.Tensor, cell: int, offset: torch.Tensor, vertical: bool) -> None:
    """A bright 1×5 bar inside patch `cell` of a (1, SIDE, SIDE) image."""
    row, col = divmod(cell, SIDE // PATCH)
    y, x = row * PATCH + int(offset[0]), col * PATCH + int(offset[1])
    if vertical:
        image[0, y - 1 : y + 4, x] = 1.0
    else:
        image[0, y, x - 1 : x + 4] = 1.0


def bar_images(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Dim noise everywhere; one bright 1×5 bar inside one random patch; label 0 = horizontal, 1 = vertical."""
    images = torch.rand(n, 1, SIDE, SIDE, generator=generator) * 0.2
    labels = torch.randint(0, 2, (n,), generator=generator)
    cells = torch.randint(0, CELLS, (n,), generator=generator)
    offsets = torch.randint(1, PATCH - 5, (n, 2), generator=generator)
    for i in range(n):
        draw_bar(images[i], int(cells[i]), offsets[i], bool(labels[i]))
    return images, labels


def bar_and_dots_on_black(n: int, generator: torch.Generator, dots: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A black canvas (every empty patch the same) with the bar in one patch and a 2×2 dot in each of `dots`
    others: the dots are content that carries no label, the rest is blank."""
    images = torch.zeros(n, 1, SIDE, SIDE)
    labels = torch.randint(0, 2, (n,), generator=generator)
    cells = torch.rand(n, CELLS, generator=generator).argsort(dim=1)[:, : dots + 1]
    offsets = torch.randint(1, PATCH - 5, (n, dots + 1, 2), generator=generator)
    for i in range(n):
        draw_bar(images[i], int(cells[i, 0]), offsets[i, 0], bool(labels[i]))
        for cell, (y, x) in zip(cells[i, 1:].tolist(), offsets[i, 1:].tolist(), strict=True):
            row, col = divmod(cell, SIDE // PATCH)
            images[i, 0, row * PATCH + y : row * PATCH + y + 2, col * PATCH + x : col * PATCH + x + 2] = 1.0
    return images, labels


def train_and_test(selector: PatchSelector, seed: int, images: Images, epochs: int, explore_epochs: int) -> float:
    """Test accuracy after `epochs` of training a tiny model on 768 images (256 test images, the same at every seed)."""
    gen = torch.Generator().manual_seed(0)
    train_x, train_y = images(768, gen)
    test_x, test_y = images(256, gen)
    gen.manual_seed(seed)
    torch.manual_seed(seed)
    model = tiny_model("DA" if selector.method == "dbps" else "CA", dim=32)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for epoch in range(epochs):
        for batch in torch.randperm(len(train_x), generator=gen).split(32):
            source = ImagePatches(train_x[batch], PATCH)
            train_step(model, selector, source, {"label": train_y[batch]}, optimizer, generator=gen,
                       explore=epoch < explore_epochs)
    logits, _ = predict(model, selector, ImagePatches(test_x, PATCH))
    return (logits["label"].argmax(1) == test_y).float().mean().item()


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
    start = time.perf_counter()
    accuracy = train_and_test(selector, seed, bar_images, epochs=6, explore_epochs=1)
    elapsed = time.perf_counter() - start
    assert accuracy >= 0.95, f"{selector}, seed {seed}: test accuracy {accuracy:.3f}"
    assert elapsed < 60, f"{selector}: {elapsed:.0f} s"


@pytest.mark.slow
@pytest.mark.parametrize(("skip_blank", "seed"), [(True, 0), (True, 1), (True, 2), (False, 0)])
def test_on_a_black_canvas_skip_blank_learns_without_exploring(skip_blank: bool, seed: int) -> None:
    """`selection.skip_blank` against the collapse onto the blank canvas, with no exploring epoch: ips reaches
    ≥ 95 % in 3 epochs at seeds 0, 1, 2 (measured: 98–100 % at seeds 0–3); without it, seed 0 ranks the blank
    patches first and stays far below (measured 52, 57, 72 % after epochs 1–3, 73 % after 6)."""
    selector = PatchSelector("ips", num_salient=2, chunk_size=16, skip_blank=skip_blank)
    accuracy = train_and_test(selector, seed, bar_and_dots_on_black, epochs=3, explore_epochs=0)
    if skip_blank:
        assert accuracy >= 0.95, f"seed {seed}: test accuracy {accuracy:.3f}"
    else:
        assert accuracy < 0.9, f"without skip_blank seed 0 learned after all ({accuracy:.3f}): the test shows nothing"
