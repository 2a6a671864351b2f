"""Stain augmentation and normalisation as transforms of float RGB patches on the device, seeded.

- `HEDJitter`: Tellez et al.'s HED augmentation. Each HED concentration c becomes α·c + β with α ~ U(1 − σ, 1 + σ)
  and β ~ U(−σ, σ), one draw per image (or patch) or one per slide; σ = 0.05 is "HED-light", 0.2 "HED-strong".
  Concentrations are in optical-density units (`dbps.data.stain`), so β = 0.05 darkens white glass by about 5 %.
- `StainNormaliser`: Macenko's or Reinhard's normalisation to a reference tile, fitted per image or per slide.
- `PatchStain`: both, applied to the patches of one slide as they are read (`SlidePatches(transform=...)`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dbps.choices import STAIN_METHODS, STAIN_UNITS
from dbps.data import stain

Fit = tuple[Tensor, Tensor]


def _uniform(shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
    device = generator.device if generator is not None else None
    return torch.rand(shape, generator=generator, device=device)


@dataclass(frozen=True)
class HEDJitter:
    """HED-space jitter of strength σ, drawn per image (per patch of a slide) or per slide."""

    sigma: float
    per: str = "image"

    def __post_init__(self) -> None:
        if self.per not in STAIN_UNITS:
            raise ValueError(f"per must be one of {STAIN_UNITS}, got {self.per!r}")

    def draw(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        """(count, 2, 3): α (row 0) and β (row 1) for H, E and DAB."""
        spread = (_uniform((count, 2, 3), generator) * 2 - 1) * self.sigma
        return spread + torch.tensor([1.0, 0.0], device=spread.device).view(1, 2, 1)

    @staticmethod
    def apply(rgb: Tensor, params: Tensor) -> Tensor:
        """Float RGB (n, 3, H, W) in [0, 1] with each image's (α, β) (n, 2, 3) → float RGB in [0, 1]."""
        params = params.to(rgb.device, torch.promote_types(rgb.dtype, torch.float32))
        hed = stain.rgb_to_hed(rgb) * params[:, 0, :, None, None] + params[:, 1, :, None, None]
        return stain.hed_to_rgb(hed).to(rgb.dtype)

    def __call__(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """An image-batch transform: uint8 B×3×H×W → uint8, one draw per image."""
        rgb = images.float() / 255
        out = self.apply(rgb, self.draw(len(images), generator))
        return (out * 255).round_().to(torch.uint8)


@dataclass(frozen=True)
class StainNormaliser:
    """Normalisation to a reference: Macenko (stain vectors and concentration scale) or Reinhard (lαβ statistics).

    Attributes:
        method: 'macenko' or 'reinhard'.
        reference: the reference fit as nested tuples (picklable for loader workers).
        per: 'image' (every patch fitted on itself) or 'slide' (one fit from a sample of the slide's patches).
        name: where the reference came from (for feature file attributes).
    """

    method: str
    reference: tuple
    per: str = "slide"
    name: str = "default"

    @classmethod
    def from_tile(cls, method: str, tile: str | Path | None = None, per: str = "slide") -> StainNormaliser:
        """The normaliser to a reference tile (any image Pillow reads); Macenko has a standard reference without one."""
        if method not in STAIN_METHODS:
            raise ValueError(f"stain normalisation must be one of {STAIN_METHODS}, got {method!r}")
        if per not in STAIN_UNITS:
            raise ValueError(f"stain fit must be one of {STAIN_UNITS}, got {per!r}")
        if tile is None:
            if method == "reinhard":
                raise ValueError("Reinhard normalisation needs a reference tile")
            return cls(method, stain.MACENKO_REFERENCE, per)
        fit = cls(method, (), per).fit(read_tile(Path(tile)))
        return cls(method, tuple(part.tolist() for part in fit), per, Path(tile).name)

    def fit(self, rgb: Tensor) -> Fit:
        """The fit of the pixels of `rgb` (..., 3, H, W), pooled."""
        return stain.macenko_fit(rgb) if self.method == "macenko" else stain.lab_statistics(rgb)

    def _reference(self, like: Tensor) -> Fit:
        first, second = (torch.tensor(part, dtype=torch.float32, device=like.device) for part in self.reference)
        return first, second

    def apply(self, rgb: Tensor, fit: Fit | None = None) -> Tensor:
        """Float RGB (n, 3, H, W) normalised with `fit`, or each image with its own; blank images pass unchanged."""
        remix = stain.macenko_normalise if self.method == "macenko" else stain.reinhard_normalise
        reference = self._reference(rgb)
        out = rgb.clone()
        if fit is not None:  # image by image: a whole batch's float intermediates fall out of the CPU's caches
            for i, image in enumerate(rgb):
                out[i] = remix(image, fit, reference)
            return out
        for i, image in enumerate(rgb):
            try:
                out[i] = remix(image, self.fit(image), reference)
            except ValueError:  # glass only: no stains to fit
                continue
        return out


def read_tile(path: Path) -> Tensor:
    """An RGB image file as float (3, H, W) in [0, 1]; ValueError naming the file when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise FileNotFoundError(f"stain reference tile not found: {path}")
    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: not an image ({exc})") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float() / 255


@dataclass
class PatchStain:
    """What a slide's patches go through between reading and mean/std normalisation: normalisation, then jitter.

    Attributes:
        normaliser: stain normalisation, or None.
        slide_fit: the slide's fit when the normaliser fits per slide (see `fit_slide`).
        jitter: HED jitter (training only), or None.
        seed: the jitter draw of this slide in this step: per patch, a patch's draw depends only on (seed, index),
            so a patch fetched twice (selection, then the gradient pass) is jittered alike.
    """

    normaliser: StainNormaliser | None = None
    slide_fit: Fit | None = None
    jitter: HEDJitter | None = None
    seed: int = 0
    _draws: Tensor | None = field(default=None, repr=False)

    def _params(self, idx: Tensor, count: int) -> Tensor:
        assert self.jitter is not None
        if self._draws is None:
            generator = torch.Generator().manual_seed(self.seed)
            self._draws = self.jitter.draw(1 if self.jitter.per == "slide" else count, generator)
        rows = torch.zeros_like(idx) if self.jitter.per == "slide" else idx
        return self._draws[rows.cpu()]

    def __call__(self, rgb: Tensor, idx: Tensor, count: int) -> Tensor:
        """Float RGB patches (n, 3, H, W) with their indices (n,) among the slide's `count` patches."""
        if self.normaliser is not None:
            rgb = self.normaliser.apply(rgb, self.slide_fit)
        if self.jitter is not None:
            rgb = self.jitter.apply(rgb, self._params(idx, count))
        return rgb


def slide_stain(source: object, normaliser: StainNormaliser | None, jitter: HEDJitter | None = None,
                seed: int = 0, sample: int = 32) -> PatchStain:
    """The stain transform of one slide's patches (`source`: a `SlidePatches`), its normalisation fitted on
    `sample` patches spread evenly over the slide when it fits per slide (per patch when those hold no tissue)."""
    fit = None
    if normaliser is not None and normaliser.per == "slide":
        count = source.num_patches  # type: ignore[attr-defined]
        idx = torch.linspace(0, max(count - 1, 0), min(sample, count)).round().long().unique()
        try:
            fit = normaliser.fit(source.read_rgb(idx))  # type: ignore[attr-defined]
        except ValueError:  # glass only
            fit = None
    return PatchStain(normaliser, fit, jitter, seed)
