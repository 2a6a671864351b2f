"""Batched augmentation against torchvision per image, seeded draws, and per-patch erasing shared by both passes."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from dbps.data.augment import (
    BRIGHTNESS,
    HUE,
    TrainAugment,
    color_jitter,
    draw_jitter,
    draw_shifts,
    translate,
)
from dbps.patches import ImagePatches
from dbps.patches.erasing import ErasedPatches

TORCHVISION = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def photos(channels: int = 3, batch: int = 6) -> torch.Tensor:
    """Smooth colourful images with saturated, grey and black areas (every branch of the HSV maths)."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 56), indexing="ij")
    base = torch.stack([x, y, (x * y * 7).sin().abs()])[:channels]
    images = torch.stack([(base * (0.4 + 0.1 * b) + 0.05 * b).clamp(0, 1) for b in range(batch)])
    images[:, :, :8, :8] = 0.5  # grey
    images[:, :, -5:, -5:] = 0  # black
    return (images * 255).round().to(torch.uint8)


def close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to one grey level on under 0.1 % of the pixels (floating-point rounding of the hue maths)."""
    difference = (a.int() - b.int()).abs()
    assert difference.max() <= 1 and (difference > 0).float().mean() < 1e-3


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("channels", [1, 3])
def test_color_jitter_equals_torchvision_per_image(device, channels) -> None:
    images = photos(channels).to(device)
    params = draw_jitter(len(images), torch.Generator().manual_seed(3), brightness=0.4, contrast=0.4, saturation=0.4)
    out = color_jitter(images, params)
    assert out.dtype == torch.uint8 and out.device.type == device and out.shape == images.shape
    for b in range(len(images)):
        expected = images[b]
        for kind in params.order[b].tolist():
            expected = TORCHVISION[kind](expected, float(params.factors[b, kind]))
        close(out[b], expected)
    assert not torch.equal(out, images)


@pytest.mark.parametrize("kind", range(4))
def test_each_adjustment_equals_torchvision(kind) -> None:
    images = photos()
    params = draw_jitter(len(images), torch.Generator().manual_seed(kind), hue=0.5)
    params.order[:] = torch.tensor([kind] + [k for k in range(4) if k != kind])
    neutral = torch.tensor([1.0, 1.0, 1.0, 0.0])
    params.factors[:] = torch.where(torch.arange(4) == kind, params.factors, neutral)  # only `kind` acts
    out = color_jitter(images, params)
    for b in range(len(images)):
        close(out[b], TORCHVISION[kind](images[b], float(params.factors[b, kind])))


def test_draws_are_in_range_reproducible_and_differ_across_images() -> None:
    params = draw_jitter(500, torch.Generator().manual_seed(0))
    assert (params.order.sort(dim=1).values == torch.arange(4)).all()
    assert params.factors[:, :HUE].min() >= 0.9 and params.factors[:, :HUE].max() <= 1.1
    assert params.factors[:, HUE].abs().max() <= 0.1 and params.factors[:, BRIGHTNESS].std() > 0.05
    shifts = draw_shifts(500, 100, torch.Generator().manual_seed(0))
    assert shifts.dtype == torch.long and shifts.abs().max() == 100 and len(shifts.unique(dim=0)) > 400
    same = photos(batch=1).expand(4, -1, -1, -1).contiguous()  # four copies of one image
    augment = TrainAugment(max_shift=10)  # the images are small
    first = augment(same, torch.Generator().manual_seed(7))
    assert torch.equal(first, augment(same, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, augment(same, torch.Generator().manual_seed(8)))
    assert len({first[b].sum().item() for b in range(4)}) == 4


@pytest.mark.parametrize("device", DEVICES)
def test_translate_equals_torchvision_affine(device) -> None:
    images = photos().to(device)
    shifts = torch.tensor([[0, 0], [5, -7], [-3, 20], [39, 55], [-40, 0], [2, 100]])
    out = translate(images, shifts)
    for b, (dy, dx) in enumerate(shifts.tolist()):
        expected = TF.affine(images[b], angle=0.0, translate=[dx, dy], scale=1.0, shear=[0.0, 0.0])
        assert torch.equal(out[b], expected)
    assert out[1, :, :5].eq(0).all() and torch.equal(out[1, :, 5:, :-7], images[1, :, :-5, 7:])


def test_augment_rejects_float_batches() -> None:
    with pytest.raises(ValueError, match="uint8 B×C×H×W"):
        TrainAugment()(torch.zeros(1, 3, 8, 8))


def erased_source(batch: int = 3, fraction: float = 0.25, **kwargs) -> tuple[torch.Tensor, ErasedPatches]:
    images = torch.rand(batch, 3, 60, 80, requires_grad=True)
    patches = ImagePatches(images, 20)  # 3 × 4 = 12 patches
    return images, ErasedPatches(patches, fraction=fraction, generator=torch.Generator().manual_seed(0), **kwargs)


def test_erasing_is_the_same_in_every_pass_and_hits_int_n_fraction_patches() -> None:
    images, source = erased_source(value=-5.0)
    everything = source.fetch(torch.arange(12).expand(3, 12))
    again = torch.cat([source.fetch(torch.arange(6, 12).expand(3, 6)), source.fetch(torch.arange(6).expand(3, 6))], 1)
    assert torch.equal(everything, torch.cat([again[:, 6:], again[:, :6]], 1))
    erased = (everything == -5.0).flatten(2)  # (B, N, C·h·w)
    side = round(math.sqrt(0.94 * 400))
    assert (erased.sum(-1)[source.erased] == 3 * side * side).all() and not erased[~source.erased].any()
    assert (source.erased.sum(1) == int(12 * 0.25)).all()
    clean = source.source.fetch(torch.arange(12).expand(3, 12))
    assert torch.equal(everything[~source.erased], clean[~source.erased])
    everything.sum().backward()
    grad = ImagePatches(images.grad, 20).fetch(torch.arange(12).expand(3, 12))
    assert torch.equal(grad == 0, everything == -5.0)  # erased pixels get no gradient, the others do


def test_erasing_draws_differ_per_image_and_rectangle_must_fit() -> None:
    _, source = erased_source(fraction=0.5)
    assert not torch.equal(source.erased[0], source.erased[1])
    assert source.rectangle(100, 100) == (97, 97) and source.rectangle(10, 10) == (0, 0)  # 9.7 rounds to the side
    _, whole = erased_source(area=1.0)
    idx = torch.arange(12).expand(3, 12)
    assert torch.equal(whole.fetch(idx), whole.source.fetch(idx))  # nothing fits: nothing is erased
    assert whole.coords().shape == (12, 2) and whole.num_patches == 12 and whole.batch_size == 3
