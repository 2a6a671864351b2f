"""The aggregator interface and registry.

An aggregator turns a bag of patch embeddings into T output tokens (one per task for the query-based
ones, one shared token for the MIL pooling ones). It also scores candidates for selection with its own
attention, so the parameters used for selection are exactly those trained by the gradient pass.
"""

from __future__ import annotations

from torch import Tensor, nn

from dbps.registry import Registry


class Aggregator(nn.Module):
    """Base class: `score` for selection, `forward` for the gradient pass (hybrid propagation).

    Subclasses take the common keyword arguments `dim, num_tasks, heads, dim_key, dim_value, dim_ffn,
    dropout, attn_dropout, per_task` (ignoring those they do not use) so that they are interchangeable by name.
    """

    num_tokens: int
    masks_tokens: bool = True
    """Whether `forward` can leave tokens out (its `keep` argument)."""

    @property
    def context_only_parameters(self) -> bool:
        """Whether some parameters take part only when the context is not empty (DDP must then be told that a
        step can leave them without gradients). False here: the context joins the salient embeddings."""
        return False

    def score(self, x: Tensor) -> Tensor:
        """Attention weights (B, n) of the aggregator over candidates x (B, n, D); each row sums to one."""
        raise NotImplementedError

    def forward(self, salient: Tensor, context: Tensor, keep: Tensor | None = None) -> Tensor:
        """Salient embeddings (B, M, D) with gradients and detached context (B, S, D) → tokens (B, T, D).

        `keep` (B, M + S) bool, salient then context: the tokens that take part (None: all). Every row keeps one
        at least; the output is then the same as with the others removed from the bag.
        """
        raise NotImplementedError


AGGREGATORS: Registry[Aggregator] = Registry("aggregator")


def keep_some(keep: Tensor | None) -> Tensor | None:
    """`keep` (B, n) with the rows that keep nothing keeping everything, so that no softmax runs over nothing."""
    return None if keep is None else keep | ~keep.any(dim=1, keepdim=True)


def create_aggregator(name: str, **kwargs: object) -> Aggregator:
    """Build a registered aggregator ('CA', 'DA', 'AB', 'ABX') by name, case-insensitive."""
    return AGGREGATORS.create(name, **kwargs)
