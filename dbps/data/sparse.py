"""Sparse images: non-zero pixels only until they reach the device that densifies them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class SparseImage:
    """One C×H×W uint8 image as flat indices and values of its non-zero pixels."""

    index: Tensor
    values: Tensor
    shape: tuple[int, int, int]


@dataclass
class SparseBatch:
    """B sparse images of one shape, concatenated; `index` is flat over the whole B×C×H×W batch."""

    index: Tensor
    values: Tensor
    shape: tuple[int, int, int, int]

    @classmethod
    def collate(cls, images: list[SparseImage]) -> SparseBatch:
        shape = images[0].shape
        if any(image.shape != shape for image in images):
            raise ValueError("sparse images of one batch must share a shape")
        numel = shape[0] * shape[1] * shape[2]
        index = torch.cat([image.index + b * numel for b, image in enumerate(images)])
        return cls(index, torch.cat([image.values for image in images]), (len(images), *shape))

    def pin_memory(self) -> SparseBatch:
        return SparseBatch(self.index.pin_memory(), self.values.pin_memory(), self.shape)

    def to_dense(self, device: torch.device | str, non_blocking: bool = False) -> Tensor:
        """Scatter onto a zero uint8 B×C×H×W tensor on `device` (only the sparse arrays are transferred)."""
        index = self.index.to(device, non_blocking=non_blocking)
        values = self.values.to(device, non_blocking=non_blocking)
        dense = torch.zeros(self.shape, dtype=torch.uint8, device=device)
        dense.view(-1)[index] = values
        return dense
