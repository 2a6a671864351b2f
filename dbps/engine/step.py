"""One training step as a public API: select → hybrid forward → loss → backward → optimiser step."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dbps.models import PatchClassifier
from dbps.patches import PatchSource
from dbps.selection import PatchSelector, Selection
from dbps.tasks import multitask_loss


@dataclass
class StepOutput:
    """Result of one forward(-backward): detached loss and logits, and the selection that produced them."""

    loss: Tensor
    outputs: dict[str, Tensor]
    selection: Selection


def unwrap(model: nn.Module) -> PatchClassifier:
    """The bare model under DDP / torch.compile wrappers: selection must never run through DDP's forward."""
    while True:
        if isinstance(model, PatchClassifier):
            return model
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            raise TypeError(f"expected a PatchClassifier (possibly wrapped), got {type(model).__name__}")
        model = inner


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager[object]:
    """Autocast to `dtype` on `device`, or nothing when dtype is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()


def forward_backward(
    model: nn.Module,
    selector: PatchSelector,
    source: PatchSource,
    targets: dict[str, Tensor],
    *,
    loss_scale: float = 1.0,
    generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    explore: bool = False,
) -> StepOutput:
    """Select without gradients, run the gradient pass, and back-propagate `loss · loss_scale`.

    Gradients accumulate in the parameters, so several calls (e.g. micro-batches with
    `loss_scale = micro / batch`) may precede one optimiser step; each micro-batch carries its own buffers.

    Args:
        model: a PatchClassifier, or a DDP / compiled wrapper of one (the gradient pass goes through it).
        selector: the selection configuration.
        source: patches of the batch, on the model's device.
        targets: target tensor per task name.
        loss_scale: multiplier of the loss before backward.
        generator: random generator on the source's device (drop, shuffle, sampling).
        amp_dtype: autocast dtype for both passes (e.g. torch.bfloat16 on CUDA), None for full precision.
        explore: select uniformly at random instead of by attention (see `PatchSelector.select`).
    """
    core = unwrap(model)
    with autocast(source.device, amp_dtype):
        selection = selector.select(core, source, training=True, generator=generator, explore=explore)
        patches = source.fetch(selection.salient_idx)
        masked = selection.aggregation_mask(patches)
        outputs = model(patches, selection.salient_idx, selection.context_emb, selection.context_idx, masked)
        loss = multitask_loss(outputs, targets, core.tasks)
    (loss * loss_scale).backward()
    return StepOutput(loss.detach(), {name: logits.detach() for name, logits in outputs.items()}, selection)


def train_step(
    model: nn.Module,
    selector: PatchSelector,
    source: PatchSource,
    targets: dict[str, Tensor],
    optimizer: torch.optim.Optimizer,
    **kwargs: object,
) -> StepOutput:
    """One optimiser step on one batch: zero grads, `forward_backward`, step. Extra kwargs go to it."""
    optimizer.zero_grad(set_to_none=True)
    output = forward_backward(model, selector, source, targets, **kwargs)  # type: ignore[arg-type]
    optimizer.step()
    return output


@torch.no_grad()
def predict(
    model: nn.Module, selector: PatchSelector, source: PatchSource, *, amp_dtype: torch.dtype | None = None
) -> tuple[dict[str, Tensor], Selection]:
    """Evaluation forward: every patch, hard top-M, model in eval mode for the whole call."""
    core = unwrap(model)
    was_training = core.training
    core.eval()
    try:
        with autocast(source.device, amp_dtype):
            selection = selector.select(core, source, training=False)
            patches = source.fetch(selection.salient_idx)
            outputs = core(
                patches,
                selection.salient_idx,
                selection.context_emb,
                selection.context_idx,
                selection.aggregation_mask(patches),
            )
    finally:
        core.train(was_training)
    return outputs, selection
