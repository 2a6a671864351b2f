"""Batches: each kind becomes patch sources; mixed sizes and lengths split into groups without changing results."""

from __future__ import annotations

import pytest
import torch

from dbps.data import (
    Collate,
    FeatureBag,
    FeatureBatch,
    ImageBatch,
    ImageOverlay,
    Level0Overlay,
    PatchSpec,
    RaggedImageBatch,
    SparseImage,
)
from dbps.data.batches import Erasing, SparseImageBatch
from dbps.engine.step import forward_backward, predict
from dbps.models import PatchClassifier, create_aggregator, create_encoder
from dbps.patches import ImagePatches, batch_overlay, batch_source
from dbps.patches.erasing import ErasedPatches
from dbps.selection import PatchSelector
from dbps.tasks import TaskSpec
from tests.conftest import tiny_model

SPEC = PatchSpec((8, 8))


def item(height: int, width: int, label: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    image = torch.randint(0, 256, (1, height, width), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return image, {"label": torch.tensor(label)}


def test_collate_picks_the_batch_kind_from_the_items() -> None:
    collate = Collate(SPEC)
    same = collate([item(16, 24, 0, 0), item(16, 24, 1, 1)])
    mixed = collate([item(16, 24, 0, 0), item(32, 16, 1, 1)])
    sparse = collate([(SparseImage(torch.tensor([0, 5]), torch.tensor([9, 7], dtype=torch.uint8), (1, 8, 8)),
                       {"label": torch.tensor(1)})])
    bags = collate([(FeatureBag(torch.randn(5, 4)), {"label": torch.tensor(0)})])
    assert isinstance(same, ImageBatch) and same.images.shape == (2, 1, 16, 24)
    assert isinstance(mixed, RaggedImageBatch) and isinstance(sparse, SparseImageBatch)
    assert isinstance(bags, FeatureBatch)
    first = batch_source(sparse).fetch(torch.tensor([[0]]))[0, 0, 0, 0, :6]
    assert first.mul(255).round().tolist() == [9, 0, 0, 0, 0, 7]
    with pytest.raises(TypeError, match="cannot batch"):
        collate([("not an image", {"label": torch.tensor(0)})])


def test_groups_are_consecutive_runs_of_one_shape_in_order() -> None:
    sizes = [(16, 16), (16, 16), (24, 16), (16, 16), (16, 16), (16, 16)]
    batch = Collate(SPEC)([item(h, w, i, i) for i, (h, w) in enumerate(sizes)])
    groups = list(batch.groups(2))
    assert [tuple(g.images.shape[:1]) + tuple(g.images.shape[2:]) for g in groups] == [
        (2, 16, 16), (1, 24, 16), (2, 16, 16), (1, 16, 16),
    ]
    assert torch.cat([g.targets["label"] for g in groups]).tolist() == list(range(6))
    assert [batch_source(g).num_patches for g in groups] == [4, 6, 4, 4]


def test_mixed_sizes_predict_exactly_as_each_image_alone() -> None:
    model = tiny_model("DA", dim=16).eval()
    selector = PatchSelector("dbps", num_salient=2, chunk_size=3, num_context=2)
    items = [item(16, 24, 0, 0), item(32, 16, 1, 1), item(16, 24, 1, 2), item(8, 40, 0, 3)]
    batch = Collate(SPEC)(items)
    together = torch.cat([predict(model, selector, batch_source(g))[0]["label"] for g in batch.groups(4)])
    alone = torch.cat([predict(model, selector, batch_source(Collate(SPEC)([it])))[0]["label"] for it in items])
    torch.testing.assert_close(together, alone)


def test_accumulated_gradient_of_a_mixed_batch_is_the_mean_over_its_images() -> None:
    """One optimiser step over images of three sizes = the mean of each image's gradient (eval-mode BN, no drop)."""
    torch.manual_seed(0)
    model = tiny_model("CA", dim=16)
    model.eval()  # batch statistics would make a group of two differ from two groups of one
    selector = PatchSelector("ips", num_salient=2, chunk_size=4)
    items = [item(16, 24, 0, 0), item(16, 24, 1, 5), item(32, 16, 1, 1), item(8, 40, 0, 3)]
    batch = Collate(SPEC)(items)
    for group in batch.groups(4):
        forward_backward(model, selector, batch_source(group), group.targets, loss_scale=len(group) / len(batch))
    together = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    for it in items:
        single = Collate(SPEC)([it])
        forward_backward(model, selector, batch_source(single), single.targets, loss_scale=1 / len(items))
    for name, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(together[name], p.grad, rtol=1e-4, atol=1e-6)


def test_feature_bags_of_different_lengths_split_and_predict_as_alone() -> None:
    encoder = create_encoder("projector", in_dim=6, dim=8)
    model = PatchClassifier(encoder, create_aggregator("ABX", dim=8, heads=2), [TaskSpec("label", 2)]).eval()
    selector = PatchSelector("dbps+", num_salient=3, chunk_size=4)
    bags = [(FeatureBag(torch.randn(n, 6)), {"label": torch.tensor(n % 2)}) for n in (10, 10, 7, 12)]
    batch = Collate(SPEC)(bags)
    assert [len(g) for g in batch.groups(8)] == [2, 1, 1]
    with pytest.raises(ValueError, match="groups"):
        batch_source(batch)
    together = torch.cat([predict(model, selector, batch_source(g))[0]["label"] for g in batch.groups(8)])
    alone = torch.cat([predict(model, selector, batch_source(Collate(SPEC)([bag])))[0]["label"] for bag in bags])
    torch.testing.assert_close(together, alone)


def test_batches_move_to_a_device_with_their_targets() -> None:
    batch = Collate(SPEC)([item(16, 24, 0, 0), item(32, 16, 1, 1)])
    moved = batch.to(torch.device("cpu"))
    assert all(t.device.type == "cpu" for t in moved.tensors())
    assert len(list(moved.tensors())) == 3  # two images and one target tensor


def test_each_batch_kind_says_where_its_patches_lie() -> None:
    collate = Collate(PatchSpec((8, 8), (4, 4)))
    images = collate([item(16, 24, 0, 0), item(16, 24, 1, 1)])
    source = batch_source(images)
    overlay = batch_overlay(images, 1, source)
    assert isinstance(overlay, ImageOverlay) and overlay.patch_size == (8, 8)
    assert (overlay.coords == source.coords().numpy()).all()
    assert overlay.pixels.shape == (1, 16, 24) and overlay.pixels.min() >= 0 and overlay.pixels.max() <= 1
    torch.testing.assert_close(torch.from_numpy(overlay.pixels), images.images[1].float() / 255)
    mixed = collate([item(16, 24, 0, 0), item(32, 16, 1, 1)])
    assert batch_overlay(mixed, 1, source).coords.shape == (21, 2)  # its own grid: 7 × 3 patches of 32 × 16, stride 4
    coords = torch.tensor([[0, 0], [256, 0], [0, 256]])
    bags = FeatureBatch([FeatureBag(torch.randn(3, 4), coords), FeatureBag(torch.randn(3, 4))], {})
    placed = batch_overlay(bags, 0, batch_source(bags))
    assert isinstance(placed, Level0Overlay) and placed.patch_size is None and placed.slide is None
    assert (placed.coords_xy == coords.numpy()).all() and batch_overlay(bags, 1, batch_source(bags)) is None


def test_a_batch_class_with_no_registered_source_is_named() -> None:
    class Unknown:
        pass

    with pytest.raises(TypeError, match=r"no batch_source for a Unknown: register one with .*batch_source.register"):
        batch_source(Unknown())
    with pytest.raises(TypeError, match="no batch_overlay for a Unknown"):
        batch_overlay(Unknown(), 0, None)


def test_erasing_armed_by_augment_is_drawn_when_the_source_is_made() -> None:
    collate = Collate(SPEC, erasing=Erasing(fraction=0.5, area=0.5))
    batch = collate([item(16, 24, 0, 0), item(16, 24, 1, 1)])
    assert isinstance(batch_source(batch), ImagePatches)  # not armed: evaluation batches are never erased
    armed = batch.augment(torch.Generator().manual_seed(3))
    source = batch_source(armed)
    expected = ErasedPatches(ImagePatches(armed.images, (8, 8)), fraction=0.5, area=0.5,
                             generator=torch.Generator().manual_seed(3))
    every = torch.arange(6).expand(2, 6)
    assert isinstance(source, ErasedPatches) and torch.equal(source.fetch(every), expected.fetch(every))
    assert torch.equal(source.fetch(every), source.fetch(every))  # both passes see the same erased patches
    mixed = collate([item(16, 24, 0, 0), item(32, 16, 1, 1)]).augment(torch.Generator().manual_seed(3))
    assert all(isinstance(batch_source(group), ErasedPatches) for group in mixed.groups(2))
