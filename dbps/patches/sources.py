"""Patch sources: selection pulls patches from them by index, chunk by chunk, never all at once.

A source stands for B instances of N patches each. `fetch(idx)` returns only the requested patches,
so an image batch, a gigapixel slide read region by region, or a bag of pre-extracted features can
all be fed to the same selection loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor

from dbps.patches.grid import grid_coords, grid_shape, to_pair


@contextmanager
def opened(source: PatchSource) -> Iterator[PatchSource]:
    """Use a source, then release what it holds (reader threads, open slides) if it has a `close`."""
    try:
        yield source
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()


def gather_tokens(tokens: Tensor, idx: Tensor) -> Tensor:
    """Rows `idx` (B, k) of each instance's tokens (B, n, D) → (B, k, D)."""
    return tokens.gather(1, idx.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


@runtime_checkable
class PatchSource(Protocol):
    """B instances of N patches, readable by index."""

    @property
    def batch_size(self) -> int: ...

    @property
    def num_patches(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def fetch(self, idx: Tensor) -> Tensor:
        """Patches at indices `idx` (B, n) → (B, n, *patch_shape), on `device`."""
        ...


class ImagePatches:
    """The patch grid of a B×C×H×W batch, gathered lazily on the batch's device.

    Integer images (e.g. uint8, 4× smaller than float32 on the device) are scaled to [0, 1] per fetched
    patch, then normalised with `mean`/`std` when given, so only the patches in flight exist as floats.

    Args:
        images: B×C×H×W tensor on any device. Gradients flow to it through `fetch`.
        patch_size: patch height and width (int or pair).
        stride: step between patches (defaults to the patch size).
        mean: per-channel mean subtracted after scaling.
        std: per-channel standard deviation divided after scaling.
        dtype: floating dtype of fetched patches for integer images.
    """

    def __init__(
        self,
        images: Tensor,
        patch_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if images.dim() != 4:
            raise ValueError(f"images must be B×C×H×W, got shape {tuple(images.shape)}")
        self.images = images
        self.patch_size = to_pair(patch_size, "patch_size")
        self.stride = to_pair(stride if stride is not None else patch_size, "patch_stride")
        self.grid = grid_shape(images.shape[-2], images.shape[-1], self.patch_size, self.stride)
        self._windows, self._patch_start, self._row_offsets = _row_windows(images, self.patch_size, self.stride)
        self._dtype = dtype
        channels = images.shape[1]
        self._mean = self._channel_vector(mean, channels, "mean")
        self._std = self._channel_vector(std, channels, "std")

    def _channel_vector(self, values: Sequence[float] | None, channels: int, name: str) -> Tensor | None:
        if values is None:
            return None
        if len(values) not in (1, channels):
            raise ValueError(f"{name} needs 1 or {channels} values, got {len(values)}")
        return torch.tensor(values, dtype=self._dtype, device=self.images.device).view(-1, 1, 1)

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def coords(self) -> Tensor:
        """Top-left pixel (y, x) of each patch, (N, 2)."""
        return grid_coords(self.images.shape[-2], self.images.shape[-1], self.patch_size, self.stride, self.device)

    def fetch(self, idx: Tensor) -> Tensor:
        """Copies only the requested patches, one pixel row at a time (`index_select` of contiguous rows)."""
        rows = torch.div(idx, self.grid[1], rounding_mode="floor")
        cols = idx - rows * self.grid[1]
        batch = torch.arange(idx.shape[0], device=idx.device).unsqueeze(1)
        first = batch * self._patch_start[0] + rows * self._patch_start[1] + cols * self._patch_start[2]
        starts = (first[..., None, None] + self._row_offsets).flatten()  # B·n·C·ph pixel rows
        patches = self._windows.index_select(0, starts).view(*idx.shape, *self._row_offsets.shape, -1)
        if not patches.is_floating_point():
            patches = patches.to(self._dtype) / torch.iinfo(patches.dtype).max
        if self._mean is not None:
            patches = patches - self._mean
        if self._std is not None:
            patches = patches / self._std
        return patches


def _row_windows(
    images: Tensor, patch_size: tuple[int, int], stride: tuple[int, int]
) -> tuple[Tensor, tuple[int, int, int], Tensor]:
    """A view of `images` as overlapping windows of one patch row, and where each patch's rows start in it.

    Window k is the `pw` pixels from element k of the images' storage on, so patch (b, row, col) is the
    C·ph windows at `b·sB + row·sh·sH + col·sw·sW + row_offsets`. Gathering whole windows with `index_select`
    copies rows of contiguous memory instead of indexing pixel by pixel.

    Returns:
        windows (L, pw), the steps (batch, grid row, grid column) of a patch's first pixel, row offsets (C, ph).
    """
    (ph, pw), (sh, sw) = patch_size, stride
    sb, sc, sy, sx = images.stride()
    batch, channels, height, width = images.shape
    last = (batch - 1) * sb + (channels - 1) * sc + (height - 1) * sy + (width - pw) * sx
    windows = images.as_strided((last + 1, pw), (1, sx), images.storage_offset())
    offsets = torch.arange(channels, device=images.device).view(-1, 1) * sc
    offsets = offsets + torch.arange(ph, device=images.device).view(1, -1) * sy
    return windows, (sb, sh * sy, sw * sx), offsets


class WrappedSource:
    """A source that hands out another source's patches, changed by `fetch`; the rest is the other source's."""

    def __init__(self, source: PatchSource) -> None:
        self.source = source

    @property
    def batch_size(self) -> int:
        return self.source.batch_size

    @property
    def num_patches(self) -> int:
        return self.source.num_patches

    @property
    def device(self) -> torch.device:
        return self.source.device

    def fetch(self, idx: Tensor) -> Tensor:
        raise NotImplementedError


class ScaledPatches(WrappedSource):
    """Another source's patches resized by `scale` (bilinear): the low-resolution copy scored by `lrs`.

    Args:
        source: the full-resolution image patches.
        scale: size factor in (0, 1], e.g. 0.5 halves each side.
    """

    def __init__(self, source: PatchSource, scale: float) -> None:
        if not 0 < scale <= 1:
            raise ValueError(f"score scale must be in (0, 1], got {scale}")
        super().__init__(source)
        self.scale = scale

    def fetch(self, idx: Tensor) -> Tensor:
        patches = self.source.fetch(idx)
        flat = patches.flatten(0, 1)
        if flat.dim() != 4:
            raise ValueError("low-resolution scoring needs image patches (C×h×w), not feature vectors")
        small = F.interpolate(flat, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return small.unflatten(0, patches.shape[:2])


class FeaturePatches:
    """Pre-extracted patch features (B, N, F): each "patch" is a feature vector."""

    def __init__(self, features: Tensor) -> None:
        if features.dim() != 3:
            raise ValueError(f"features must be B×N×F, got shape {tuple(features.shape)}")
        self.features = features

    @property
    def batch_size(self) -> int:
        return self.features.shape[0]

    @property
    def num_patches(self) -> int:
        return self.features.shape[1]

    @property
    def device(self) -> torch.device:
        return self.features.device

    def fetch(self, idx: Tensor) -> Tensor:
        return gather_tokens(self.features, idx)
