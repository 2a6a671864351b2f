"""Which patches an image contributes and in what order: random drop (training) and shuffle."""

from __future__ import annotations

import torch
from torch import Tensor

from dbps.choices import ShuffleStyle, check_drop_ratio
from dbps.registry import parse_enum


def num_kept(num_patches: int, drop_ratio: float) -> int:
    """N' = round((1 − ratio) · N), at least one patch."""
    check_drop_ratio(drop_ratio)
    return max(1, round((1.0 - drop_ratio) * num_patches))


def patch_order(
    batch_size: int,
    num_patches: int,
    *,
    keep: int | None = None,
    shuffle: ShuffleStyle | str | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Patch indices each image is processed in, shape (B, N').

    Without drop or shuffle this is 0..N−1 for every image. Dropping keeps a uniformly random subset of
    `keep` patches, drawn independently for every image. The kept patches are processed in grid order, or,
    with a shuffle style, in a random order so ties between identical background patches break uniformly:
    `batch` ranks patches by one random permutation shared by the batch, `instance` by one per image.
    """
    keep = num_patches if keep is None else keep
    if not 1 <= keep <= num_patches:
        raise ValueError(f"keep must be in [1, {num_patches}], got {keep}")
    if shuffle is None and keep == num_patches:
        return torch.arange(num_patches, device=device).expand(batch_size, num_patches)
    if shuffle is None:
        priority = torch.arange(num_patches, device=device, dtype=torch.float32).expand(batch_size, -1)
    else:
        style = parse_enum(ShuffleStyle, shuffle, "shuffle")
        rows = batch_size if style is ShuffleStyle.INSTANCE else 1
        priority = torch.rand(rows, num_patches, generator=generator, device=device).expand(batch_size, -1)
    if keep < num_patches:
        dropped = torch.rand(batch_size, num_patches, generator=generator, device=device).argsort(dim=1)[:, keep:]
        priority = priority.scatter(1, dropped, float("inf"))
    return priority.argsort(dim=1)[:, :keep]
