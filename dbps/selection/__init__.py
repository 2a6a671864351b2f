"""No-gradient patch selection: chunked buffers (IPS, DBPS) and triple sampling (DBformer+)."""

from dbps.choices import BufferUpdate, Method, Sampling
from dbps.selection.sampling import gumbel_top_k, sample_salient, sampling_logits
from dbps.selection.selector import PatchSelector, Selection, SelectionModel, eval_mode

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
