"""The patch classifier: encoder + positional encoding + aggregator + heads, with hybrid propagation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dbps.choices import BatchNormMode
from dbps.models.aggregators import Aggregator
from dbps.models.aggregators.base import keep_some
from dbps.models.batchnorm import batchnorm_mode
from dbps.models.encoders import PatchEncoder
from dbps.models.heads import TaskHeads
from dbps.models.pos_enc import sinusoidal_encoding
from dbps.registry import parse_enum
from dbps.tasks import TaskSpec


class PatchClassifier(nn.Module):
    """Classifies a bag of patches from a few salient patches (with gradients) and detached context.

    It satisfies `dbps.selection.SelectionModel`: `embed` and `score` drive the no-gradient selection, and
    `forward` is the gradient pass (hybrid propagation): the M salient patches are re-embedded with
    gradients, the sub-salient context embeddings stay detached, and both are aggregated together. The
    encoder therefore receives gradients only through the salient patches, the aggregator through both.

    Args:
        encoder: patch encoder with `embed_dim` D.
        aggregator: a registered aggregator of width D.
        tasks: the prediction targets, one head each.
        pos_enc: add a fixed sinusoidal encoding of each patch's grid index before scoring/aggregating.
        pos_gate: scale that encoding by a learnable per-channel gate, so that scores and attention take
            position in as far as a task needs it.
        pos_gate_init: the gate's starting value; 0 starts scores and attention from the content alone.
        bn_mode: how the encoder's BatchNorm layers treat the salient patches in the gradient pass (train mode):
            `batch`, `running` or `frozen` (see `BatchNormMode`). In eval mode every layer uses running statistics.
    """

    def __init__(
        self,
        encoder: PatchEncoder,
        aggregator: Aggregator,
        tasks: list[TaskSpec],
        pos_enc: bool = False,
        pos_gate: bool = False,
        pos_gate_init: float = 0.0,
        bn_mode: BatchNormMode | str = BatchNormMode.BATCH,
    ):
        super().__init__()
        if not tasks:
            raise ValueError("tasks must name at least one task")
        if aggregator.num_tokens not in (1, len(tasks)):
            raise ValueError(f"aggregator gives {aggregator.num_tokens} tokens for {len(tasks)} tasks")
        self.encoder = encoder
        self.aggregator = aggregator
        self.heads = TaskHeads(encoder.embed_dim, tasks)
        self.tasks = list(tasks)
        self.pos_enc = pos_enc
        self.pos_scale = nn.Parameter(torch.full((encoder.embed_dim,), pos_gate_init)) if pos_gate else None
        self.bn_mode = parse_enum(BatchNormMode, bn_mode, "bn_mode")

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def embed(self, patches: Tensor) -> Tensor:
        """(n, *patch_shape) → (n, D)."""
        return self.encoder(patches)

    def _positioned(self, emb: Tensor, idx: Tensor) -> Tensor:
        """Float32 embeddings with the positional encoding added: the aggregator always runs in float32."""
        emb = emb.float()
        if not self.pos_enc:
            return emb
        position = sinusoidal_encoding(idx, emb.shape[-1])
        return emb + (position if self.pos_scale is None else self.pos_scale * position)

    def score(self, emb: Tensor, idx: Tensor) -> Tensor:
        """Aggregator attention weights (B, n) over candidate embeddings (B, n, D) at patch indices (B, n).

        Computed in float32 even under autocast: an untrained attention gives every candidate nearly the same
        weight (1/n within about 1 %), and bf16's 8-bit mantissa would round those weights to a few distinct values,
        so that ties, not the content, would decide which patches are selected.
        """
        with torch.autocast(emb.device.type, enabled=False):
            return self.aggregator.score(self._positioned(emb, idx))

    def forward(
        self,
        salient_patches: Tensor,
        salient_idx: Tensor,
        context_emb: Tensor,
        context_idx: Tensor,
        masked: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Hybrid propagation.

        Args:
            salient_patches: (B, M, *patch_shape) raw patches, re-embedded here with gradients.
            salient_idx: (B, M) their patch indices.
            context_emb: (B, S, D) detached sub-salient embeddings from selection (S may be 0).
            context_idx: (B, S) their patch indices.
            masked: (B, N) bool, patches the aggregator leaves out (`Selection.masked`), or None. The salient ones
                are still embedded, so the encoder's BatchNorm sees the same batch either way.

        Returns:
            Logits per task name, float32, (B, classes).
        """
        batch, num_salient = salient_idx.shape
        with batchnorm_mode(self.encoder, self.bn_mode):
            salient = self.embed(salient_patches.flatten(0, 1)).unflatten(0, (batch, num_salient))
        context = context_emb.detach()
        keep = None
        if masked is not None:  # an image whose selected patches are all masked keeps them all
            keep = keep_some(~torch.cat([masked.gather(1, salient_idx), masked.gather(1, context_idx)], dim=1))
        with torch.autocast(salient.device.type, enabled=False):  # the encoder is what autocast speeds up
            tokens = self.aggregator(
                self._positioned(salient, salient_idx), self._positioned(context, context_idx), keep
            )
            return self.heads(tokens)
