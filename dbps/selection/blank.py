"""Blank patches (all values equal: black canvas, padding, an empty scan) for `selection.skip_blank`."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Scorer = Callable[[Tensor, Tensor], Tensor]
"""Attention weights (B, n) of embeddings (B, n, D) with their patch indices (B, n)."""


def blank_patches(patches: Tensor) -> Tensor:
    """(B, n, *patch_shape) → (B, n) bool: the patches whose values are all equal."""
    low, high = patches.flatten(2).aminmax(dim=2)
    return low == high


EMBED_ROWS_MULTIPLE = 64


def embed_sharing_blanks(embed: Callable[[Tensor], Tensor], patches: Tensor, blank: Tensor) -> Tensor:
    """Embeddings (B, n, D) of patches (B, n, *patch_shape), each blank patch embedded once per distinct value.

    In eval mode a patch's embedding depends on the patch alone, so every blank patch of one value shares one
    embedding; on a black canvas that is most of the no-gradient pass saved. The encoder's batch is padded to a
    multiple of `EMBED_ROWS_MULTIPLE` rows, or to the chunk's own size where that is fewer: a batch size that
    changes with every chunk fragments the host heap (each new shape allocates buffers of new sizes), and the
    process's memory kept growing.
    """
    flat, flat_blank = patches.flatten(0, 1), blank.flatten()
    values, which = flat.flatten(1)[flat_blank, 0].unique(return_inverse=True)
    stand_ins = values.view(-1, *[1] * (flat.dim() - 1)).expand(-1, *flat.shape[1:])
    rows = torch.cat([flat[~flat_blank], stand_ins])
    padded = min(-(-rows.shape[0] // EMBED_ROWS_MULTIPLE) * EMBED_ROWS_MULTIPLE, flat.shape[0])
    padding = padded - rows.shape[0]  # never more rows than embedding every patch of the chunk
    out = embed(torch.cat([rows, rows[-1:].expand(padding, *rows.shape[1:])]))
    num_content = rows.shape[0] - values.shape[0]
    emb = out.new_empty(flat.shape[0], out.shape[1])
    emb[~flat_blank] = out[:num_content]
    emb[flat_blank] = out[num_content : rows.shape[0]][which]
    return emb.unflatten(0, blank.shape)


def blanks_score_zero(score: Scorer, blank: Tensor) -> Scorer:
    """`score` with 0 for the patches marked in `blank` (B, N), so that they rank below every patch with content."""

    def masked(emb: Tensor, idx: Tensor) -> Tensor:
        return score(emb, idx).masked_fill(blank.gather(1, idx), 0.0)

    return masked
