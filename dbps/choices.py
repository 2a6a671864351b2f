"""The named choices of a run: the enums a configuration names, and which of them go together.

They stand below every floor, so that the configuration (a base module) names and checks the choices that
patches/, selection/, models/ and data/ act on without importing them. Each floor exports its own choices
(`dbps.selection.Method`, `dbps.patches.ShuffleStyle`, `dbps.models.BatchNormMode`, …).
"""

from __future__ import annotations

from enum import StrEnum

HED_STRENGTHS = {"light": 0.05, "strong": 0.2}
STAIN_UNITS = ("image", "slide")  # stain jitter drawn / normalisation fitted per image (patch) or per slide
STAIN_METHODS = ("macenko", "reinhard")


class ShuffleStyle(StrEnum):
    """`batch`: one permutation shared by the batch; `instance`: one per image."""

    BATCH = "batch"
    INSTANCE = "instance"


class Method(StrEnum):
    """Selection method.

    - `ips`: a single static buffer of the top-M patches (Iterative Patch Selection, the baseline);
    - `dbps`: static top-M buffer plus a dynamic buffer of the next-best S embeddings (DBformer, CVPR);
    - `dbps+`: embed every kept patch, draw M by triple sampling, all others are context (DBformer+).
    """

    IPS = "ips"
    DBPS = "dbps"
    DBPS_PLUS = "dbps+"


class BufferUpdate(StrEnum):
    """How `dbps` updates its two buffers with each chunk.

    - `joint`: one attention over static ∪ dynamic ∪ chunk (M+S+I candidates); the top M stay static, the next S
      dynamic.
    - `two_stage` (the reference code's): one attention over static ∪ chunk (M+I candidates) keeps the top M
      static; a second over the candidates that dropped out of the top M and the dynamic buffer keeps the top S.
    """

    JOINT = "joint"
    TWO_STAGE = "two_stage"


class Sampling(StrEnum):
    """How the M salient patches are drawn from the scores of all candidates (DBformer+).

    - `hard`: the top-M scores (also what evaluation always uses);
    - `prob`: M draws without replacement from softmax(logits / τ);
    - `half`: ceil(M/2) draws inside the top-M set and the rest among all other patches.
    """

    HARD = "hard"
    PROB = "prob"
    HALF = "half"


class BatchNormMode(StrEnum):
    """BatchNorm in the gradient pass. The context embeddings always come from eval mode (running statistics).

    - `batch`: train mode, as in the reference code: the salient patches are normalised with their own batch
      statistics (which also update the running ones), so salient and context tokens are normalised differently.
    - `running`: the salient patches are normalised with the running statistics, exactly as the context was;
      afterwards the running statistics are updated from the salient batch as train mode would, so they still
      follow the encoder. The statistics are constants for autograd: gradients reach the input and γ, β.
    - `frozen`: eval mode throughout: running statistics normalise and are never updated (pretrained encoders);
      γ and β still train.
    """

    BATCH = "batch"
    RUNNING = "running"
    FROZEN = "frozen"


def hed_sigma(value: object) -> float:
    """σ of a `data.augment.hed_jitter` value: 'light', 'strong' or a number in [0, 1]."""
    if isinstance(value, str) and value.lower() in HED_STRENGTHS:
        return HED_STRENGTHS[value.lower()]
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise ValueError(f"expected 'light', 'strong' or a σ in [0, 1], got {value!r}")


def check_drop_ratio(drop_ratio: float) -> None:
    """A random drop ratio must lie in [0, 1): at least one patch of every image is kept."""
    if not 0.0 <= drop_ratio < 1.0:
        raise ValueError(f"drop_ratio must be in [0, 1), got {drop_ratio}")


def check_selection(
    method: Method,
    num_salient: object,
    chunk_size: object,
    num_context: int | None,
    *,
    drop_ratio: float,
    sampling: Sampling,
    temperature: float,
    eval_num_salient: int | None,
    score_scale: float,
    buffer_update: BufferUpdate,
    skip_blank: bool = False,
    mask_blank: bool = False,
) -> None:
    """The settings of a `dbps.selection.PatchSelector` that go together; the first that does not raises."""
    for name, value in (("num_salient", num_salient), ("chunk_size", chunk_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
    if eval_num_salient is not None and eval_num_salient < 1:
        raise ValueError(f"eval_num_salient must be ≥ 1, got {eval_num_salient!r}")
    if num_context is not None and num_context < 0:
        raise ValueError(f"num_context must be ≥ 0, got {num_context!r}")
    if method is Method.IPS and num_context:
        raise ValueError(f"num_context must be 0 for method 'ips' (a single buffer), got {num_context}")
    if method is not Method.DBPS_PLUS and sampling is not Sampling.HARD:
        raise ValueError(f"sampling {sampling.value!r} needs method 'dbps+'; '{method}' ranks chunks")
    if method is not Method.DBPS and buffer_update is not BufferUpdate.JOINT:
        raise ValueError(f"buffer_update {buffer_update.value!r} needs method 'dbps' (two buffers)")
    if not 0 < score_scale <= 1:
        raise ValueError(f"score_scale must be in (0, 1], got {score_scale}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if mask_blank and not skip_blank:
        raise ValueError("mask_blank needs skip_blank: blank patches are found while they are scored")
    check_drop_ratio(drop_ratio)
