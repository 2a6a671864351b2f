"""Nyström attention (Xiong et al., AAAI 2021): softmax attention over n tokens in O(n·m) with m landmarks.

softmax(Q Kᵀ) V ≈ softmax(Q K̃ᵀ) · pinv(softmax(Q̃ K̃ᵀ)) · softmax(Q̃ Kᵀ) V, where Q̃, K̃ are the means of m
contiguous segments of the queries and keys, and pinv is the iterative Moore–Penrose inverse. A depthwise
convolution of the values along the sequence is added (TransMIL's residual). Bags of at most m tokens take exact
softmax attention, which is what the approximation gives when every token is its own landmark.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def iterative_pinv(matrix: Tensor, iterations: int = 6) -> Tensor:
    """Moore–Penrose pseudo-inverse of each square matrix of a batch (..., m, m) by Razavi et al.'s iteration.

    Z₀ = Aᵀ / (‖A‖₁ ‖A‖∞), then Z ← ¼ Z (13 I − AZ (15 I − AZ (7 I − AZ))). The scale is each matrix's own (the
    reference implementation takes the maximum over the whole batch, which couples the bags of a batch).
    """
    magnitude = matrix.abs()
    scale = magnitude.sum(dim=-1).amax(dim=-1) * magnitude.sum(dim=-2).amax(dim=-1)
    z = matrix.transpose(-1, -2) / scale[..., None, None]
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    for _ in range(iterations):
        az = matrix @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def segment_means(x: Tensor, segments: int) -> Tensor:
    """Means of `segments` contiguous, nearly equal runs of the tokens (..., n, d) → (..., segments, d).

    Run i covers tokens ⌊i·n/m⌋ … ⌊(i+1)·n/m⌋ − 1; sums come from a float32 prefix sum, so no padding is needed.
    """
    n = x.shape[-2]
    bounds = torch.div(torch.arange(segments + 1, device=x.device) * n, segments, rounding_mode="floor")
    prefix = F.pad(x.to(torch.promote_types(x.dtype, torch.float32)).cumsum(dim=-2), (0, 0, 1, 0))
    sums = prefix[..., bounds[1:], :] - prefix[..., bounds[:-1], :]
    return (sums / (bounds[1:] - bounds[:-1]).unsqueeze(-1)).to(x.dtype)


class NystromAttention(nn.Module):
    """Multi-head self-attention approximated with landmarks, plus a depthwise convolution of the values.

    Args:
        dim: token width D.
        heads: H.
        dim_head: width per head (default D / H).
        landmarks: m, the number of landmarks (TransMIL: D / 2).
        pinv_iterations: iterations of the pseudo-inverse (TransMIL: 6).
        residual_kernel: length of the depthwise convolution of the values along the sequence (TransMIL: 33).
        dropout: dropout after the output projection.
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int | None = None, landmarks: int = 256,
                 pinv_iterations: int = 6, residual_kernel: int = 33, dropout: float = 0.0) -> None:
        super().__init__()
        self.heads, self.dim_head = heads, dim_head or dim // heads
        self.landmarks, self.pinv_iterations = landmarks, pinv_iterations
        inner = self.heads * self.dim_head
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
        self.residual = nn.Conv2d(heads, heads, (residual_kernel, 1), padding=(residual_kernel // 2, 0),
                                  groups=heads, bias=False)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, self.dim_head)).permute(2, 0, 3, 1, 4)
        return q, k, v  # each (B, H, n, d)

    def forward(self, x: Tensor) -> Tensor:
        """(B, n, D) → (B, n, D)."""
        q, k, v = self._split(x)
        if x.shape[1] <= self.landmarks:
            mixed = F.scaled_dot_product_attention(q, k, v)
        else:
            q = q * self.dim_head**-0.5
            q_landmarks, k_landmarks = segment_means(q, self.landmarks), segment_means(k, self.landmarks)
            to_landmarks = (q @ k_landmarks.transpose(-1, -2)).softmax(dim=-1)
            wide = torch.promote_types(q.dtype, torch.float32)  # the pseudo-inverse is unstable in bf16
            among_landmarks = (q_landmarks @ k_landmarks.transpose(-1, -2)).to(wide).softmax(dim=-1)
            from_landmarks = (q_landmarks @ k.transpose(-1, -2)).softmax(dim=-1)
            inverse = iterative_pinv(among_landmarks, self.pinv_iterations).to(q.dtype)
            mixed = (to_landmarks @ inverse) @ (from_landmarks @ v)
        mixed = mixed + self.residual(v)
        return self.out(mixed.transpose(1, 2).flatten(2))

    def query_weights(self, x: Tensor, query: int = 0) -> Tensor:
        """Exact softmax attention of token `query` over all tokens, per head: (B, n, D) → (B, H, n).

        One row costs O(n), so it is computed exactly; the landmark product approximates this row (and is
        neither positive nor normalised).
        """
        q, k, _ = self._split(x)
        logits = (q[:, :, query : query + 1] @ k.transpose(-1, -2)).squeeze(-2) * self.dim_head**-0.5
        return logits.to(torch.promote_types(logits.dtype, torch.float32)).softmax(dim=-1)
