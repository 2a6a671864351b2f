"""How the encoder's BatchNorm layers normalise the salient patches in the gradient pass: batch, running, frozen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.hooks import RemovableHandle

from dbps.choices import BatchNormMode
from dbps.registry import parse_enum

_STATISTICS = ("running_mean", "running_var")


class _NormaliseWithRunningStatistics:
    """Hooks on one BatchNorm layer held in eval mode: normalise with the running statistics, then update them.

    The forward pass sees copies of the statistics, and those copies are what autograd keeps for the backward
    pass; the buffers themselves keep their identity (DDP broadcasts them) and are updated in place after the
    forward by the layer's own train-mode forward on the detached input, so momentum, a cumulative average
    (momentum None), `num_batches_tracked` and SyncBatchNorm's cross-process statistics behave as in train mode.
    """

    def __init__(self, layer: _BatchNorm) -> None:
        self.layer = layer
        self.buffers: dict[str, Tensor] = {}
        self.handles: list[RemovableHandle] = [
            layer.register_forward_pre_hook(self._before),
            layer.register_forward_hook(self._after),
        ]

    def _before(self, layer: nn.Module, args: tuple[Tensor, ...]) -> None:
        self.buffers = {name: getattr(layer, name) for name in _STATISTICS}
        for name, buffer in self.buffers.items():
            setattr(layer, name, buffer.clone())

    def _after(self, layer: nn.Module, args: tuple[Tensor, ...], output: Tensor) -> None:
        self._restore()
        layer.training = True
        try:
            with torch.no_grad():
                layer.forward(args[0].detach())
        finally:
            layer.training = False

    def _restore(self) -> None:
        for name, buffer in self.buffers.items():
            setattr(self.layer, name, buffer)
        self.buffers = {}

    def remove(self) -> None:
        self._restore()
        for handle in self.handles:
            handle.remove()


@contextmanager
def batchnorm_mode(module: nn.Module, mode: BatchNormMode | str) -> Iterator[None]:
    """Apply `mode` to the BatchNorm layers of `module` inside the block; every layer's state is restored on exit.

    Only layers in train mode that track running statistics are touched (BatchNorm1d/2d/3d, SyncBatchNorm and
    subclasses such as timm's BatchNormAct2d); a layer a user put in eval mode stays as it is. Meant for the
    gradient pass: the no-gradient selection pass runs the whole model in eval mode anyway.

    Args:
        module: the encoder (or any module holding BatchNorm layers).
        mode: `batch`, `running` or `frozen` (see `BatchNormMode`).
    """
    mode = parse_enum(BatchNormMode, mode, "bn_mode")
    layers = [m for m in module.modules() if isinstance(m, _BatchNorm) and m.training and m.running_mean is not None]
    if mode is BatchNormMode.BATCH or not layers:
        yield
        return
    hooks = [_NormaliseWithRunningStatistics(m) for m in layers] if mode is BatchNormMode.RUNNING else []
    try:
        for layer in layers:
            layer.training = False
        yield
    finally:
        for hook in hooks:
            hook.remove()
        for layer in layers:
            layer.training = True
