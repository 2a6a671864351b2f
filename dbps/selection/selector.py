"""The no-gradient selection pass: IPS (one buffer), DBPS (two buffers) and DBformer+ (all embedded)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

import torch
from torch import Tensor, nn

from dbps.choices import BufferUpdate, Method, Sampling, ShuffleStyle, check_selection
from dbps.patches import PatchSource, ScaledPatches, gather_tokens, num_kept, patch_order
from dbps.registry import parse_enum
from dbps.selection.blank import Scorer, blank_patches, blanks_score_zero, embed_sharing_blanks
from dbps.selection.sampling import complement, sample_salient

if TYPE_CHECKING:
    from dbps.config import Config


class SelectionModel(Protocol):
    """What selection needs from a model: an embedding, a scorer and `nn.Module` train/eval state."""

    embed_dim: int

    def embed(self, patches: Tensor) -> Tensor:
        """(n, *patch_shape) → (n, D)."""
        ...

    def score(self, emb: Tensor, idx: Tensor) -> Tensor:
        """Embeddings (B, n, D) at patch indices (B, n) → attention weights over the n candidates (B, n)."""
        ...

    def modules(self) -> Iterator[nn.Module]: ...

    def eval(self) -> nn.Module: ...


@dataclass(frozen=True)
class Selection:
    """What selection hands to the gradient pass.

    Attributes:
        salient_idx: (B, M) patch indices to re-embed with gradients (the static buffer).
        context_emb: (B, S, D) detached sub-salient embeddings (the dynamic buffer; S = 0 for IPS).
        context_idx: (B, S) their patch indices.
        scores: (B, N) float32 score of every patch: for `dbps+` its attention weight among all kept
            patches; for `ips`/`dbps` its weight among the candidates of the chunk it arrived in.
            NaN where a patch was dropped or never scored (when M ≥ N' nothing needs scoring).
        masked: (B, N) bool, the patches the aggregator is to leave out (with `mask_blank`: the blank ones seen
            by the pass), or None.
        mask_salient_blank: the pass embedded nothing (M ≥ N'), so which salient patches are blank is found from
            the raw patches the gradient pass fetches (`aggregation_mask`) instead of being fetched twice.
    """

    salient_idx: Tensor
    context_emb: Tensor
    context_idx: Tensor
    scores: Tensor
    masked: Tensor | None = None
    mask_salient_blank: bool = False

    def aggregation_mask(self, salient_patches: Tensor) -> Tensor | None:
        """The (B, N) mask the classifier takes, given the salient patches (B, M, *patch_shape) it re-embeds."""
        if not self.mask_salient_blank:
            return self.masked
        masked = torch.zeros(self.scores.shape, dtype=torch.bool, device=self.salient_idx.device)
        return masked.scatter_(1, self.salient_idx, blank_patches(salient_patches).to(masked.device))


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode (BatchNorm running stats, no dropout) and restore each one's mode."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


class PatchSelector:
    """Chooses, without gradients, which patches are re-embedded with gradients and which join as context.

    Patches are embedded in chunks of `chunk_size` (I), so the encoder never holds more than B·I patches
    in the no-gradient pass, whatever N is. The model is switched to eval mode for the pass.

    `ips` and `dbps` keep buffers that each chunk updates (both start empty). A candidate's score is its attention
    weight among the candidates scored with it; for the query aggregators it is a softmax over the candidates of
    q·k/√D_k, averaged over heads and query tokens (one per task). When the score ranks candidates by a logit of
    their own (one head and one token, or 'AB'), the ranking does not depend on who else is a candidate, and both
    `buffer_update`s keep the global ranks 1..M static and M+1..M+S dynamic. Otherwise (several heads or tokens:
    each softmax normalises over a different set, and a mean of softmaxes is not monotone in any one logit; 'ABX',
    whose instances interact) a score depends on the candidate set, and `joint` (one ranking of static ∪ dynamic ∪
    chunk) and `two_stage` (the reference code: static ∪ chunk for the top M, then the dropped candidates with
    the dynamic buffer for the next S) can keep different patches; neither is then the global ranking of all N.

    Args:
        method: `ips`, `dbps` or `dbps+` (case-insensitive).
        num_salient: M, patches re-embedded with gradients per image.
        chunk_size: I, patches embedded per step of the no-gradient pass.
        num_context: S. `dbps`: size of the dynamic buffer. `dbps+`: None keeps every non-selected
            patch as context (the paper); an int keeps the S best-scoring of them. `ips`: 0 or None.
        drop_ratio: fraction of patches randomly dropped per image during training.
        shuffle: None, `batch` or `instance`: randomise the processing order during training.
        sampling: `hard`, `prob` or `half` (`dbps+` only); evaluation always uses `hard`.
        temperature: τ of the probabilistic draws.
        reference_sampling: draw from softmax(weights) as the reference code does (nearly uniform).
        eval_num_salient: M at evaluation (defaults to `num_salient`).
        score_scale: below 1, the no-gradient pass embeds image patches downsampled by this factor
            (low-resolution scoring, the reference's `lrs` with 0.5); the gradient pass always re-embeds the
            salient patches at full resolution, and the context embeddings come from the small copies.
        buffer_update: `joint` or `two_stage` (`dbps` only, see above and `BufferUpdate`). `two_stage` costs a
            second scoring call per chunk, over the S + I candidates for the dynamic buffer.
        skip_blank: a patch whose values are all equal (black canvas, padding, a blank scan) scores 0, below every
            patch with content, so it is salient or context only where an image has too few others. An untrained
            attention can otherwise prefer the one embedding that all blank patches share and fill the buffers with it.
        mask_blank: (with `skip_blank`) the blank patches among the salient and context ones are also left out of
            the aggregation (`Selection.masked`), as a tissue mask leaves background out of a slide's bag; an image
            whose selected patches are all blank keeps them.
    """

    def __init__(
        self,
        method: Method | str = Method.DBPS,
        num_salient: int = 100,
        chunk_size: int = 100,
        num_context: int | None = None,
        *,
        drop_ratio: float = 0.0,
        shuffle: ShuffleStyle | str | None = None,
        sampling: Sampling | str = Sampling.HARD,
        temperature: float = 1.0,
        reference_sampling: bool = False,
        eval_num_salient: int | None = None,
        score_scale: float = 1.0,
        buffer_update: BufferUpdate | str = BufferUpdate.JOINT,
        skip_blank: bool = False,
        mask_blank: bool = False,
    ) -> None:
        self.method = parse_enum(Method, method, "method")
        self.sampling = parse_enum(Sampling, sampling, "sampling")
        self.shuffle = parse_enum(ShuffleStyle, shuffle, "shuffle") if shuffle is not None else None
        self.buffer_update = parse_enum(BufferUpdate, buffer_update, "buffer_update")
        check_selection(
            self.method, num_salient, chunk_size, num_context, drop_ratio=drop_ratio, sampling=self.sampling,
            temperature=temperature, eval_num_salient=eval_num_salient, score_scale=score_scale,
            buffer_update=self.buffer_update, skip_blank=skip_blank, mask_blank=mask_blank,
        )
        self.num_salient = num_salient
        self.chunk_size = chunk_size
        self.num_context = num_context
        self.drop_ratio = drop_ratio
        self.temperature = temperature
        self.reference_sampling = reference_sampling
        self.eval_num_salient = eval_num_salient or num_salient
        self.score_scale = score_scale
        self.skip_blank = skip_blank
        self.mask_blank = mask_blank

    @classmethod
    def from_config(cls, config: Config) -> PatchSelector:
        """The selector of a run: the config's `selection` group with the drop and shuffle of its `patches`."""
        s, p = config.selection, config.patches
        return cls(
            s.method,
            s.num_salient,
            s.chunk_size,
            s.num_context,
            drop_ratio=p.drop_ratio,
            shuffle=p.shuffle_style if p.shuffle else None,
            sampling=s.sampling,
            temperature=s.temperature,
            reference_sampling=s.reference_sampling,
            eval_num_salient=s.eval_num_salient,
            score_scale=s.score_scale,
            buffer_update=s.buffer_update,
            skip_blank=s.skip_blank,
            mask_blank=s.mask_blank,
        )

    def context_may_be_empty(self, num_patches: int | None = None) -> bool:
        """Whether a training selection can hand the aggregator no context at all.

        'ips' keeps none, nor does S = 0; and when M reaches the N' patches an image keeps, every patch is
        salient. `num_patches` is N per image where every image has it (None: not known, that case is not checked).
        """
        if self.method is Method.IPS or self.num_context == 0:
            return True
        return num_patches is not None and self.num_salient >= num_kept(num_patches, self.drop_ratio)

    def __repr__(self) -> str:
        return (
            f"PatchSelector(method={self.method.value!r}, M={self.num_salient}, I={self.chunk_size}, "
            f"S={self.num_context}, drop_ratio={self.drop_ratio}, sampling={self.sampling.value!r}, "
            f"score_scale={self.score_scale}, buffer_update={self.buffer_update.value!r}, "
            f"skip_blank={self.skip_blank}, mask_blank={self.mask_blank})"
        )

    @torch.no_grad()
    def select(
        self,
        model: SelectionModel,
        source: PatchSource,
        *,
        training: bool,
        generator: torch.Generator | None = None,
        explore: bool = False,
    ) -> Selection:
        """Run the no-gradient pass over `source` and return the selection.

        Args:
            model: the unwrapped model (under DDP pass `ddp.module`, never the wrapper).
            source: the patches of B instances.
            training: apply random drop, shuffle and the configured sampling; otherwise use every patch
                in grid order and hard top-M with `eval_num_salient`.
            generator: random generator on the source's device, for reproducible draws.
            explore: (training only) rank patches by random scores instead of the model's attention, so the
                salient set and the context are uniform random draws. Used for the first epochs of training:
                an untrained attention can settle on uninformative constant background (e.g. black canvas)
                and then never see the object patches it should learn from. Scores come back as NaN.
        """
        batch, total = source.batch_size, source.num_patches
        if self.score_scale < 1:
            source = ScaledPatches(source, self.score_scale)
        keep = num_kept(total, self.drop_ratio) if training else total
        shuffle = self.shuffle if training else None
        if explore and training and shuffle is None:
            shuffle = ShuffleStyle.INSTANCE  # random scores on a fixed order would favour late patches
        order = patch_order(batch, total, keep=keep, shuffle=shuffle, generator=generator, device=source.device)
        num_salient = self.num_salient if training else self.eval_num_salient
        score = model.score
        if explore and training:

            def score(emb: Tensor, idx: Tensor) -> Tensor:
                return torch.rand(idx.shape, generator=generator, device=idx.device).softmax(dim=1)

        blank = None  # with skip_blank: which patches are blank (B, N), filled in as chunks are embedded
        if self.skip_blank:
            blank = torch.zeros(batch, total, dtype=torch.bool, device=source.device)
            score = blanks_score_zero(score, blank)
        with eval_mode(model):  # type: ignore[arg-type]
            if num_salient >= keep and self.method is not Method.DBPS_PLUS:
                return replace(self._everything(model, source, order), mask_salient_blank=self.mask_blank)
            if self.method is Method.DBPS_PLUS:
                selection = self._embed_all_then_sample(
                    model, score, source, order, blank, num_salient, training, generator
                )
            else:
                selection = self._chunked_buffers(
                    model, score, source, order, blank, num_salient, self.num_context or 0
                )
        if explore and training:
            selection.scores.fill_(float("nan"))
        if self.mask_blank:
            selection = replace(selection, masked=blank)
        return selection

    def _chunks(
        self, model: SelectionModel, source: PatchSource, order: Tensor, blank: Tensor | None
    ) -> Iterator[_Tokens]:
        """The embedded patches chunk by chunk; sources that read from disk are asked for the next chunk first.

        With `skip_blank`, each chunk's blank patches are marked in `blank` (B, N) before the chunk is yielded.
        """
        prefetch = getattr(source, "prefetch", None)
        starts = range(0, order.shape[1], self.chunk_size)
        for start in starts:
            idx = order[:, start : start + self.chunk_size]
            patches = source.fetch(idx)
            if prefetch is not None and start + self.chunk_size < order.shape[1]:
                prefetch(order[:, start + self.chunk_size : start + 2 * self.chunk_size])
            if blank is not None:
                chunk_blank = blank_patches(patches)
                blank.scatter_(1, idx, chunk_blank)
                yield _Tokens(embed_sharing_blanks(model.embed, patches, chunk_blank), idx)
            else:
                yield _Tokens(model.embed(patches.flatten(0, 1)).unflatten(0, idx.shape), idx)

    def _everything(self, model: SelectionModel, source: PatchSource, order: Tensor) -> Selection:
        """M ≥ N': every kept patch is salient and nothing needs scoring (as IPS does)."""
        batch = order.shape[0]
        empty_emb = torch.zeros(batch, 0, model.embed_dim, device=source.device)
        return Selection(order, empty_emb, order[:, :0], _unscored(order, source))

    def _chunked_buffers(
        self,
        model: SelectionModel,
        score: Scorer,
        source: PatchSource,
        order: Tensor,
        blank: Tensor | None,
        num_salient: int,
        num_context: int,
    ) -> Selection:
        """IPS / DBPS: each chunk updates the static buffer (top M) and the dynamic one (next S), kept as one."""
        scores = _unscored(order, source)
        update = _two_stage_update if self.buffer_update is BufferUpdate.TWO_STAGE else _joint_update
        kept = _Tokens(torch.zeros(order.shape[0], 0, model.embed_dim, device=source.device), order[:, :0])
        for chunk in self._chunks(model, source, order, blank):
            kept, chunk_scores = update(score, kept, chunk, num_salient, num_context)
            scores.scatter_(1, chunk.idx, chunk_scores.float())
        return Selection(kept.idx[:, :num_salient], kept.emb[:, num_salient:], kept.idx[:, num_salient:], scores)

    def _embed_all_then_sample(
        self,
        model: SelectionModel,
        score: Scorer,
        source: PatchSource,
        order: Tensor,
        blank: Tensor | None,
        num_salient: int,
        training: bool,
        generator: torch.Generator | None,
    ) -> Selection:
        """DBformer+: embed all kept patches in chunks, score them together, sample M, the rest is context."""
        emb = torch.cat([chunk.emb for chunk in self._chunks(model, source, order, blank)], dim=1)
        cand_scores = score(emb, order)
        scores = _unscored(order, source).scatter_(1, order, cand_scores.float())
        picked = sample_salient(
            cand_scores,
            num_salient,
            self.sampling if training else Sampling.HARD,
            temperature=self.temperature,
            reference=self.reference_sampling,
            generator=generator,
        )
        rest = complement(picked, order.shape[1])
        if self.num_context is not None and self.num_context < rest.shape[1]:
            best = cand_scores.gather(1, rest).topk(self.num_context, dim=1).indices
            rest = rest.gather(1, best)
        context_emb = gather_tokens(emb, rest)
        return Selection(order.gather(1, picked), context_emb, order.gather(1, rest), scores)


@dataclass(frozen=True)
class _Tokens:
    """Embeddings (B, n, D) and their patch indices (B, n): a buffer, a chunk or a set of candidates."""

    emb: Tensor
    idx: Tensor

    @property
    def size(self) -> int:
        return self.idx.shape[1]

    def join(self, other: _Tokens) -> _Tokens:
        """These tokens followed by `other`'s."""
        if self.size == 0:
            return other
        return _Tokens(torch.cat([self.emb, other.emb], dim=1), torch.cat([self.idx, other.idx], dim=1))

    def part(self, start: int, stop: int | None = None) -> _Tokens:
        """Positions start..stop−1 of every row."""
        return _Tokens(self.emb[:, start:stop], self.idx[:, start:stop])

    def take(self, positions: Tensor) -> _Tokens:
        """The tokens at `positions` (B, k) of each row."""
        return _Tokens(gather_tokens(self.emb, positions), self.idx.gather(1, positions))


def _joint_update(
    score: Scorer, kept: _Tokens, chunk: _Tokens, num_salient: int, num_context: int
) -> tuple[_Tokens, Tensor]:
    """Rank static ∪ dynamic ∪ chunk at once and keep the top M + S in rank order; also the chunk's scores."""
    cand = kept.join(chunk)
    cand_scores = score(cand.emb, cand.idx)
    top = cand_scores.topk(min(num_salient + num_context, cand.size), dim=1).indices
    return cand.take(top), cand_scores[:, kept.size :]


def _two_stage_update(
    score: Scorer, kept: _Tokens, chunk: _Tokens, num_salient: int, num_context: int
) -> tuple[_Tokens, Tensor]:
    """The reference's update: the top M of static ∪ chunk stay static; what dropped out of them joins the dynamic
    buffer, ranked among themselves, and the top S stay. Returns static then dynamic, and the chunk's scores."""
    held = min(num_salient, kept.size)  # the static buffer is full before anything becomes dynamic
    cand = kept.part(0, held).join(chunk)
    cand_scores = score(cand.emb, cand.idx)
    ranked = cand_scores.argsort(dim=1, descending=True)
    dynamic = kept.part(held).join(cand.take(ranked[:, num_salient:]))
    if dynamic.size > num_context:
        dynamic = dynamic.take(score(dynamic.emb, dynamic.idx).topk(num_context, dim=1).indices)
    return cand.take(ranked[:, :num_salient]).join(dynamic), cand_scores[:, held:]


def _unscored(order: Tensor, source: PatchSource) -> Tensor:
    """Per-patch scores (B, N), all NaN until filled in."""
    return torch.full((order.shape[0], source.num_patches), float("nan"), device=source.device)
