"""Random erasing of a fraction of patches (DBPS on traffic signs), identical in every fetch of one batch."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dbps.patches.sources import PatchSource, WrappedSource


class ErasedPatches(WrappedSource):
    """A `PatchSource` whose chosen patches come back with a rectangle set to `value`.

    Which patches are erased and where their rectangles sit is drawn once, when the wrapper is made for a batch,
    so the no-gradient selection pass and the gradient pass see the same erased patches. This is the reference's
    per-patch `RandomErasing(scale=(0.94, 0.94), ratio=(1, 1), p=1)` on `int(N · 0.1)` randomly chosen patches of
    each image, applied after normalisation (so `value=0` is the dataset's mean colour). The reference draws one
    rectangle position per image for all its chosen patches; here each chosen patch gets its own position.

    Args:
        source: the patches to erase from.
        fraction: share of each image's N patches that are erased, int(N · fraction) of them.
        area: erased area as a share of the patch area.
        aspect: height / width of the rectangle.
        value: what erased pixels become.
        generator: random source of the draws (on any device; the draws move to the source's device).
    """

    def __init__(
        self,
        source: PatchSource,
        *,
        fraction: float = 0.1,
        area: float = 0.94,
        aspect: float = 1.0,
        value: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        if not 0 <= fraction <= 1 or not 0 < area <= 1 or aspect <= 0:
            raise ValueError(f"need 0 ≤ fraction ≤ 1, 0 < area ≤ 1, aspect > 0; got {fraction}, {area}, {aspect}")
        super().__init__(source)
        self.area, self.aspect, self.value = area, aspect, value
        batch, num = source.batch_size, source.num_patches
        device = generator.device if generator is not None else None
        chosen = torch.rand(batch, num, generator=generator, device=device).argsort(dim=1)[:, : int(num * fraction)]
        erased = torch.zeros(batch, num, dtype=torch.bool, device=device).scatter_(1, chosen, True)
        self.erased = erased.to(source.device)
        # where the rectangle sits, as a uniform draw turned into pixels once the patch size is known
        self.position = torch.rand(batch, num, 2, generator=generator, device=device).to(source.device)

    def rectangle(self, height: int, width: int) -> tuple[int, int]:
        """Height and width of the erased rectangle in a height × width patch, (0, 0) when it would not fit.

        As torchvision: round(√(area · h · w · aspect)) by round(√(area · h · w / aspect)), if smaller than the patch.
        """
        erased_h = round(math.sqrt(self.area * height * width * self.aspect))
        erased_w = round(math.sqrt(self.area * height * width / self.aspect))
        return (erased_h, erased_w) if erased_h < height and erased_w < width else (0, 0)

    def fetch(self, idx: Tensor) -> Tensor:
        patches = self.source.fetch(idx)
        height, width = patches.shape[-2:]
        erased_h, erased_w = self.rectangle(height, width)
        if erased_h == 0:
            return patches
        erased = self.erased.gather(1, idx)  # (B, n)
        position = self.position.gather(1, idx.unsqueeze(-1).expand(-1, -1, 2))
        top = (position[..., 0] * (height - erased_h + 1)).floor()[..., None]  # (B, n, 1)
        left = (position[..., 1] * (width - erased_w + 1)).floor()[..., None]
        rows = torch.arange(height, device=patches.device)
        cols = torch.arange(width, device=patches.device)
        in_rows = (rows >= top) & (rows < top + erased_h)  # (B, n, h)
        in_cols = (cols >= left) & (cols < left + erased_w)
        pixels = erased[..., None, None] & in_rows[..., :, None] & in_cols[..., None, :]  # (B, n, h, w)
        return patches.masked_fill(pixels.unsqueeze(2), self.value)

    def __getattr__(self, name: str) -> object:
        """Anything else (e.g. `coords`) is the wrapped source's."""
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)
