"""No-gradient patch selection: chunked buffers (IPS, DBPS) and triple sampling (DBformer+)."""

from dbps.selection.sampling import Sampling, gumbel_top_k, sample_salient, sampling_logits
from dbps.selection.selector import BufferUpdate, Method, PatchSelector, Selection, SelectionModel, eval_mode

__all__ = [
    "BufferUpdate",
    "Method",
    "PatchSelector",
    "Sampling",
    "Selection",
    "SelectionModel",
    "eval_mode",
    "gumbel_top_k",
    "sample_salient",
    "sampling_logits",
]
