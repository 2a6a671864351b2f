"""Fixed 1-D sinusoidal encoding of a patch's grid index, computed on the fly for any N."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def sinusoidal_encoding(idx: Tensor, dim: int, base: float = 10000.0) -> Tensor:
    """Transformer-style encoding of integer positions (B, n) → (B, n, dim), float32."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=idx.device, dtype=torch.float32) * (-math.log(base) / half))
    angles = idx.unsqueeze(-1).float() * freqs
    encoding = torch.cat([angles.sin(), angles.cos()], dim=-1)
    if dim % 2:
        encoding = torch.nn.functional.pad(encoding, (0, 1))
    return encoding
