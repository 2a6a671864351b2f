"""Training augmentation of uint8 image batches on any device, drawn per image: colour jitter and translation.

These are the reference's `ColorJitter(0.1, 0.1, 0.1, 0.1)` and `RandomAffine(degrees=0, translate=±100 px)`,
applied batch-wise on B×C×H×W uint8 tensors (CPU or GPU) with parameters drawn from a `torch.Generator`. Each
adjustment computes what `torchvision.transforms.v2.functional` computes on one uint8 image with the same
parameters (equal up to one grey level on rare pixels, from floating-point rounding). Batches of images of
different sizes are augmented one image at a time (the contrast mean must not see padding).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)
_UINT8_TO_UNIT = 1.0 / 255
_UNIT_TO_UINT8 = 256.0 - 1e-3  # scale of float [0, 1] → uint8 that truncation maps 1.0 to 255 (as torchvision)
# which of (value, q, p, t) gives red, green, blue in each of the six hue sectors
_SECTOR_CHANNELS = torch.tensor([[0, 3, 2], [1, 0, 2], [2, 0, 3], [2, 1, 0], [3, 2, 0], [0, 2, 1]])


@dataclass
class JitterParams:
    """Per-image colour-jitter draws.

    Attributes:
        order: (B, 4) long, each row the order in which brightness (0), contrast (1), saturation (2), hue (3) apply.
        factors: (B, 4) float32, the brightness, contrast and saturation factors and the hue shift.
    """

    order: Tensor
    factors: Tensor


def _rand(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else None
    return torch.rand(shape, generator=generator, device=device)


def draw_jitter(
    batch_size: int,
    generator: torch.Generator | None = None,
    *,
    brightness: float = 0.1,
    contrast: float = 0.1,
    saturation: float = 0.1,
    hue: float = 0.1,
) -> JitterParams:
    """Draw as `ColorJitter` does: factors uniform in [max(0, 1 − s), 1 + s], hue shift in [−hue, hue], random order."""
    if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
        raise ValueError(f"jitter strengths must be ≥ 0 and hue ≤ 0.5, got {(brightness, contrast, saturation, hue)}")
    order = _rand((batch_size, 4), generator).argsort(dim=1)
    low = torch.tensor([max(0.0, 1 - brightness), max(0.0, 1 - contrast), max(0.0, 1 - saturation), -hue])
    high = torch.tensor([1 + brightness, 1 + contrast, 1 + saturation, hue])
    factors = low.to(order.device) + _rand((batch_size, 4), generator) * (high - low).to(order.device)
    return JitterParams(order, factors)


def _to_uint8(values: Tensor) -> Tensor:
    return values.clamp_(0, 255).to(torch.uint8)


def _blend(images: Tensor, other: Tensor, ratio: Tensor) -> Tensor:
    """ratio · images + (1 − ratio) · other, clamped and truncated to uint8."""
    return _to_uint8(images.float() * ratio + other * (1 - ratio))


def _grey(images: Tensor) -> Tensor:
    """ITU-R 601 luma of uint8 RGB images, floored, (n, 1, H, W) float."""
    red, green, blue = images.unbind(dim=1)
    return red.mul(0.2989).add_(green, alpha=0.587).add_(blue, alpha=0.114).floor_().unsqueeze(1)


def _brightness(images: Tensor, factor: Tensor) -> Tensor:
    return _to_uint8(images.float() * factor)


def _contrast(images: Tensor, factor: Tensor) -> Tensor:
    grey = _grey(images) if images.shape[1] == 3 else images.float()
    return _blend(images, grey.mean(dim=(1, 2, 3), keepdim=True), factor)


def _saturation(images: Tensor, factor: Tensor) -> Tensor:
    return _blend(images, _grey(images), factor)


def _rgb_to_hsv(rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Hue in [0, 1), saturation and value of float RGB (n, 3, H, W) in [0, 1]; grey pixels get hue 0."""
    red, green, blue = rgb.unbind(dim=1)
    value, low = rgb.amax(dim=1), rgb.amin(dim=1)
    chroma = value - low
    grey = chroma == 0
    saturation = chroma / torch.where(grey, torch.ones_like(value), value)
    chroma = torch.where(grey, torch.ones_like(chroma), chroma)
    hue = torch.where(
        value == red,
        (green - blue) / chroma,
        torch.where(value == green, 2 + (blue - red) / chroma, 4 + (red - green) / chroma),
    )
    return (hue / 6).remainder_(1.0), saturation, value


def _hsv_to_rgb(hue: Tensor, saturation: Tensor, value: Tensor) -> Tensor:
    """Float RGB (n, 3, H, W) of hue, saturation, value (n, H, W)."""
    sector_position = hue * 6
    sector = sector_position.floor()
    fraction = sector_position - sector
    p = (value * (1 - saturation)).clamp_(0, 1)
    q = (value * (1 - saturation * fraction)).clamp_(0, 1)
    t = (value * (1 - saturation * (1 - fraction))).clamp_(0, 1)
    channels = _SECTOR_CHANNELS.to(hue.device)[sector.long().remainder_(6)].permute(0, 3, 1, 2)
    return torch.stack((value, q, p, t), dim=1).gather(1, channels)


def _hue(images: Tensor, shift: Tensor) -> Tensor:
    hue, saturation, value = _rgb_to_hsv(images.float().mul_(_UINT8_TO_UNIT))
    hue = hue.add_(shift.view(-1, 1, 1)).remainder_(1.0)
    return _hsv_to_rgb(hue, saturation, value).mul_(_UNIT_TO_UINT8).to(torch.uint8)


_ADJUSTMENTS: tuple[Callable[[Tensor, Tensor], Tensor], ...] = (_brightness, _contrast, _saturation, _hue)


def color_jitter(images: Tensor, params: JitterParams) -> Tensor:
    """Adjust brightness, contrast, saturation and hue of each uint8 image B×C×H×W in its own order.

    Saturation and hue leave 1-channel images unchanged, and a hue shift of exactly 0 is skipped, as torchvision does.
    """
    _check_batch(images)
    order, factors = params.order.to(images.device), params.factors.to(images.device)
    out = images.clone()
    for step in range(4):
        for kind, adjust in enumerate(_ADJUSTMENTS):
            if kind in (SATURATION, HUE) and images.shape[1] == 1:
                continue
            chosen = order[:, step] == kind
            if kind == HUE:
                chosen &= factors[:, HUE] != 0
            rows = chosen.nonzero().squeeze(1)
            if len(rows):
                out[rows] = adjust(out[rows], factors[rows, kind].view(-1, 1, 1, 1))
    return out


def draw_shifts(
    batch_size: int, max_shift: int | tuple[int, int] = 100, generator: torch.Generator | None = None
) -> Tensor:
    """Per-image integer translations (dy, dx), (B, 2) long, each uniform in [−max, max] and rounded (as
    `RandomAffine(translate=(max_x / W, max_y / H))`)."""
    pair = max_shift if isinstance(max_shift, tuple | list) else (max_shift, max_shift)
    limit = torch.tensor(pair, dtype=torch.float)
    if limit.min() < 0:
        raise ValueError(f"max_shift must be ≥ 0, got {max_shift}")
    draws = _rand((batch_size, 2), generator)
    return ((draws * 2 - 1) * limit.to(draws.device)).round().long()


def translate(images: Tensor, shifts: Tensor) -> Tensor:
    """Move each image by its (dy, dx) pixels (positive: down and right), filling uncovered pixels with 0."""
    _check_batch(images)
    batch, channels, height, width = images.shape
    shifts = shifts.to(images.device)
    rows = torch.arange(height, device=images.device) - shifts[:, :1]  # (B, H): the source row of each output row
    cols = torch.arange(width, device=images.device) - shifts[:, 1:]
    inside = ((rows >= 0) & (rows < height))[:, None, :, None] & ((cols >= 0) & (cols < width))[:, None, None, :]
    out = images.gather(2, rows.clamp(0, height - 1)[:, None, :, None].expand(batch, channels, height, width))
    out = out.gather(3, cols.clamp(0, width - 1)[:, None, None, :].expand(batch, channels, height, width))
    return out.masked_fill_(~inside, 0)


def _check_batch(images: Tensor) -> None:
    if images.dim() != 4 or images.dtype != torch.uint8 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected a uint8 B×C×H×W batch with C = 1 or 3, got {images.dtype} {tuple(images.shape)}")


@dataclass
class TrainAugment:
    """The reference's training augmentation: colour jitter, then a random translation with black fill.

    Attributes:
        brightness, contrast, saturation, hue: jitter strengths (reference: 0.1 each).
        max_shift: largest translation in pixels, one value or (dy, dx) (reference: 100).
    """

    brightness: float = 0.1
    contrast: float = 0.1
    saturation: float = 0.1
    hue: float = 0.1
    max_shift: int | tuple[int, int] = 100

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        strengths = {"brightness": self.brightness, "contrast": self.contrast, "saturation": self.saturation}
        params = draw_jitter(images.shape[0], generator, hue=self.hue, **strengths)
        return translate(color_jitter(images, params), draw_shifts(images.shape[0], self.max_shift, generator))


@dataclass(frozen=True)
class Compose:
    """Image-batch transforms applied in order, each with the same generator."""

    transforms: tuple[Callable[[Tensor, torch.Generator | None], Tensor], ...]

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for transform in self.transforms:
            images = transform(images, generator)
        return images
