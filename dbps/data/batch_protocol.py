"""What a batch is: the `Batch` protocol the engine relies on, how images become patches (`PatchSpec`), the
training erasing, and the overlays that show where an instance's patches lie.

The batch classes themselves (images, sparse and ragged images, feature bags, slides) are in `dbps.data.batches`;
the patch source of each, and its overlays, are one floor up, in `dbps.patches.batches` (`batch_source`,
`batch_overlay`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

if TYPE_CHECKING:
    from dbps.wsi.reader import SlideReader

Targets = dict[str, Tensor]
ImageTransform = Callable[[Tensor, torch.Generator | None], Tensor]


@dataclass(frozen=True)
class Erasing:
    """Per-patch random erasing in training: `fraction` of each image's patches lose `area` of their pixels."""

    fraction: float
    area: float

    def armed(self, generator: torch.Generator | None) -> ArmedErasing:
        """This erasing for one batch, drawn from `generator` when the batch's patch source is made."""
        return ArmedErasing(self.fraction, self.area, generator)


@dataclass(frozen=True)
class ArmedErasing:
    """The erasing of one training batch: `dbps.patches.batch_source` wraps the batch's source in `ErasedPatches`
    with these settings, so that every fetch of the batch (both passes) sees the same erased patches."""

    fraction: float
    area: float
    generator: torch.Generator | None = None


@dataclass(frozen=True)
class ImageOverlay:
    """An image and its patch grid: the attention is drawn over the pixels.

    Attributes:
        pixels: the image, (C, H, W) floats in [0, 1].
        coords: top-left pixel (y, x) of every patch, in the source's order, (N, 2).
        patch_size: patch height and width.
    """

    pixels: np.ndarray
    coords: np.ndarray
    patch_size: tuple[int, int]


@dataclass(frozen=True)
class Level0Overlay:
    """Level-0 positions of an instance's patches (a slide, a feature bag with coordinates): score tables for
    QuPath and, for a slide, the attention over its thumbnail.

    Attributes:
        coords_xy: level-0 (x, y) of every patch, in the source's order, (N, 2).
        patch_size: patch side in level-0 pixels; None: the step of the coordinates' grid.
        slide: the open slide (its thumbnail, dimensions and bounds offset), None for feature bags.
    """

    coords_xy: np.ndarray
    patch_size: int | None = None
    slide: SlideReader | None = None


Overlay = ImageOverlay | Level0Overlay


@runtime_checkable
class Batch(Protocol):
    """A batch of instances (images, slides, feature bags) and their targets; `dbps.patches.batch_source` turns
    each of its groups into a patch source."""

    targets: Targets

    def __len__(self) -> int: ...

    def to(self, device: torch.device, non_blocking: bool = False) -> Batch:
        """This batch on `device` (dense where it was sparse)."""
        ...

    def pin_memory(self) -> Batch: ...

    def tensors(self) -> Iterator[Tensor]:
        """Every tensor the batch holds (to tie their memory to a CUDA stream)."""
        ...

    def augment(self, generator: torch.Generator | None) -> Batch:
        """The training transforms applied (the batch itself when it has none)."""
        ...

    def groups(self, max_size: int) -> Iterator[Batch]:
        """Consecutive sub-batches of at most `max_size` instances that share one patch count, in order."""
        ...

    # A group's patch source and overlays: `dbps.patches.batch_source(group, dtype)` and
    # `dbps.patches.batch_overlay(group, index, source)`, registered there for each batch class.


@dataclass(frozen=True)
class PatchSpec:
    """How images become patches: grid geometry and the normalisation applied to each fetched patch.

    `stain_norm` and `stain_jitter` (a `StainNormaliser` and a training `HEDJitter`) act on slide patches as they
    are read; image batches take the jitter as part of their training transform.
    """

    size: tuple[int, int]
    stride: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    stain_norm: object | None = None
    stain_jitter: object | None = None
