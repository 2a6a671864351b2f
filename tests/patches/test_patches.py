"""Patch grid, lazy image source, random drop and shuffle."""

from __future__ import annotations

import pytest
import torch

from dbps.patches import FeaturePatches, ImagePatches, extract_patches, grid_coords, grid_shape, num_kept, patch_order


def brute_force_patches(images: torch.Tensor, ph: int, pw: int, sh: int, sw: int) -> tuple[torch.Tensor, list]:
    patches, coords = [], []
    for y in range(0, images.shape[-2] - ph + 1, sh):
        for x in range(0, images.shape[-1] - pw + 1, sw):
            patches.append(images[:, :, y : y + ph, x : x + pw])
            coords.append((y, x))
    return torch.stack(patches, dim=1), coords


@pytest.mark.parametrize(("size", "stride"), [((5, 7), (5, 7)), ((4, 6), (3, 2)), (8, 8)])
def test_extract_patches_matches_slicing(size, stride) -> None:
    images = torch.rand(2, 3, 23, 31)
    ph, pw = size if isinstance(size, tuple) else (size, size)
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    expected, coords = brute_force_patches(images, ph, pw, sh, sw)
    assert torch.equal(extract_patches(images, size, stride), expected)
    assert grid_coords(23, 31, size, stride).tolist() == [list(c) for c in coords]


def test_image_source_fetches_requested_patches_only() -> None:
    images = torch.rand(3, 2, 40, 30)
    source = ImagePatches(images, (10, 6), (5, 6))
    everything = extract_patches(images, (10, 6), (5, 6))
    assert source.num_patches == everything.shape[1] == 7 * 5
    idx = torch.randint(0, source.num_patches, (3, 11))
    fetched = source.fetch(idx)
    assert torch.equal(fetched, everything[torch.arange(3)[:, None], idx])
    assert torch.equal(source.coords(), grid_coords(40, 30, (10, 6), (5, 6)))


def test_uint8_images_are_scaled_and_normalised_per_fetch() -> None:
    images = torch.randint(0, 256, (2, 3, 12, 12), dtype=torch.uint8)
    mean, std = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    source = ImagePatches(images, 4, mean=mean, std=std)
    idx = torch.tensor([[0, 8], [3, 1]])
    expected = extract_patches(images.float() / 255, 4)[torch.arange(2)[:, None], idx]
    expected = (expected - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    torch.testing.assert_close(source.fetch(idx), expected)


def test_feature_source_gathers_rows() -> None:
    features = torch.rand(2, 9, 5)
    idx = torch.tensor([[8, 0], [4, 4]])
    assert torch.equal(FeaturePatches(features).fetch(idx), features[torch.arange(2)[:, None], idx])


def test_patch_larger_than_image_is_rejected() -> None:
    with pytest.raises(ValueError, match="patch_size"):
        grid_shape(10, 40, 20)
    with pytest.raises(ValueError, match="patch_size"):
        ImagePatches(torch.rand(1, 1, 10, 40), (11, 5))
    with pytest.raises(ValueError, match="patch_stride"):
        grid_shape(10, 10, 2, 0)


def test_order_without_drop_or_shuffle_is_grid_order() -> None:
    assert torch.equal(patch_order(3, 7), torch.arange(7).expand(3, 7))


def test_random_drop_keeps_distinct_subsets_per_instance() -> None:
    keep = num_kept(100, 0.3)
    assert keep == 70
    order = patch_order(4, 100, keep=keep, generator=torch.Generator().manual_seed(1))
    assert order.shape == (4, 70)
    for row in order:
        assert len(set(row.tolist())) == 70 and row.max() < 100
    assert not torch.equal(order[0].sort().values, order[1].sort().values)


@pytest.mark.parametrize("shuffle", [None, "batch", "instance"])
def test_random_drop_is_drawn_per_image_whatever_the_shuffle_style(shuffle: str | None) -> None:
    order = patch_order(6, 40, keep=20, shuffle=shuffle, generator=torch.Generator().manual_seed(3))
    kept = [frozenset(row.tolist()) for row in order]
    assert all(len(k) == 20 for k in kept) and len(set(kept)) == 6  # six different subsets
    if shuffle is None:  # kept patches are processed in grid order
        assert all(row.tolist() == sorted(row.tolist()) for row in order)
    if shuffle == "batch":  # one shared permutation: patches kept by two images come in the same relative order
        rank = {int(i): r for r, i in enumerate(patch_order(1, 40, shuffle="batch",
                                                            generator=torch.Generator().manual_seed(3))[0])}
        for row in order:
            assert [rank[int(i)] for i in row] == sorted(rank[int(i)] for i in row)


def test_shuffle_styles() -> None:
    gen = torch.Generator().manual_seed(0)
    batch = patch_order(4, 50, shuffle="batch", generator=gen)
    assert all(torch.equal(batch[0], row) for row in batch)
    assert sorted(batch[0].tolist()) == list(range(50)) and batch[0].tolist() != list(range(50))
    inst = patch_order(4, 50, shuffle="INSTANCE", generator=gen)
    assert not torch.equal(inst[0], inst[1])
    assert all(sorted(row.tolist()) == list(range(50)) for row in inst)


def test_order_is_reproducible_with_a_generator() -> None:
    a = patch_order(2, 30, keep=10, shuffle="instance", generator=torch.Generator().manual_seed(5))
    b = patch_order(2, 30, keep=10, shuffle="instance", generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_bad_drop_and_keep_are_rejected() -> None:
    with pytest.raises(ValueError, match="drop_ratio"):
        num_kept(10, 1.0)
    with pytest.raises(ValueError, match="keep"):
        patch_order(1, 10, keep=11)
    with pytest.raises(ValueError, match="shuffle"):
        patch_order(1, 10, shuffle="rows")
