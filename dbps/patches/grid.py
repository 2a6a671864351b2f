"""Row-major patch grid over a B×C×H×W batch: index = row · n_cols + col."""

from __future__ import annotations

import torch
from torch import Tensor


def to_pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """An int or a 2-sequence of positive ints, as (height, width)."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < 1:
        raise ValueError(f"{name} must be ≥ 1, got {value!r}")
    return pair  # type: ignore[return-value]


def grid_shape(
    height: int, width: int, patch_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
) -> tuple[int, int]:
    """Rows and columns of the grid of patches that fit in an image (no padding, as `Tensor.unfold`)."""
    ph, pw = to_pair(patch_size, "patch_size")
    sh, sw = to_pair(stride if stride is not None else patch_size, "patch_stride")
    if ph > height or pw > width:
        raise ValueError(f"patch_size ({ph}, {pw}) is larger than the image ({height}, {width})")
    return (height - ph) // sh + 1, (width - pw) // sw + 1


def grid_coords(
    height: int,
    width: int,
    patch_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Top-left pixel (y, x) of every patch, row-major, shape (N, 2)."""
    rows, cols = grid_shape(height, width, patch_size, stride)
    sh, sw = to_pair(stride if stride is not None else patch_size, "patch_stride")
    ys = torch.arange(rows, device=device) * sh
    xs = torch.arange(cols, device=device) * sw
    return torch.cartesian_prod(ys, xs).view(rows * cols, 2)


def extract_patches(
    images: Tensor, patch_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None
) -> Tensor:
    """All patches of a batch at once, shape (B, N, C, ph, pw), on the images' device.

    This materialises every patch; selection uses `ImagePatches`, which reads them lazily by index.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be B×C×H×W, got shape {tuple(images.shape)}")
    ph, pw = to_pair(patch_size, "patch_size")
    sh, sw = to_pair(stride if stride is not None else patch_size, "patch_stride")
    grid_shape(images.shape[-2], images.shape[-1], (ph, pw), (sh, sw))
    grid = images.unfold(2, ph, sh).unfold(3, pw, sw)  # B, C, rows, cols, ph, pw (a view)
    b, c, rows, cols = grid.shape[:4]
    return grid.permute(0, 2, 3, 1, 4, 5).reshape(b, rows * cols, c, ph, pw)
