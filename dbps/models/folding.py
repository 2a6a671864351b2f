"""BatchNorm folded into the preceding convolution for eval-mode forwards without gradients."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights
from torch.optim.optimizer import register_optimizer_step_post_hook

log = logging.getLogger(__name__)


class _StepCounter:
    """Optimiser steps taken in this process: fused optimisers update weights without bumping their versions.

    The counter hooks every optimiser of the process, so it is registered by the first folded twin (`start`),
    never on import: a process that folds nothing keeps torch's global optimiser hooks as they were. Steps taken
    before that need no counting: a twin's first forward always computes its folded weights.
    """

    def __init__(self) -> None:
        self.value = 0
        self._hook: object | None = None

    def __call__(self, *_: object) -> None:
        self.value += 1

    def start(self) -> None:
        """Count the optimiser steps from now on (registered once per process)."""
        if self._hook is None:
            self._hook = register_optimizer_step_post_hook(self)


_OPTIMIZER_STEPS = _StepCounter()


class FoldedBackbone:
    """An eval-mode twin of a module in which every Conv2d → BatchNorm2d pair is one convolution.

    In eval mode a BatchNorm is an affine map per channel, so it folds into the weights and bias of the
    convolution before it: one operation and one pass over the activations fewer per pair. The twin is a traced
    graph that shares every submodule with the original (nothing is copied). The folded weights are recomputed
    whenever what they are made of may have changed (after any optimiser step, a training-mode BatchNorm
    forward, `.to()`, or an in-place write such as `load_state_dict`) and are kept in the autocast dtype of the
    call, so the twin always computes what the original computes in eval mode. Only exact `nn.Conv2d` and
    `nn.BatchNorm2d` are folded (subclasses such as timm's BatchNormAct2d do more than the affine map), and only
    where the BatchNorm is the convolution's sole user.

    Use `FoldedBackbone.create`, which returns None when nothing can be folded.
    """

    def __init__(self, graph: fx.GraphModule, pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]]) -> None:
        self.graph = graph
        self.pairs = pairs
        self._run = graph
        self._key: tuple[object, ...] | None = None
        _OPTIMIZER_STEPS.start()

    @classmethod
    def create(cls, module: nn.Module) -> FoldedBackbone | None:
        """The folded twin of `module`, or None when it cannot be traced or has no foldable pair."""
        try:
            graph = fx.symbolic_trace(module)
        except Exception as exc:  # tracing fails in many ways on dynamic code; the plain forward still works
            log.debug("BatchNorm folding skipped for %s: %s", type(module).__name__, exc)
            return None
        pairs = _fold_pairs(graph)
        return cls(graph, pairs) if pairs else None

    def compile(self) -> None:
        """torch.compile the folded forward (the weight refresh stays outside the compiled graph)."""
        self._run = torch.compile(self.graph)

    def __call__(self, x: Tensor) -> Tensor:
        if torch.compiler.is_compiling():
            # Traced into by an outer torch.compile: the refresh runs eagerly, outside its graph. Disabled here, not
            # by a decorator: `torch.compiler.disable` imports torch._dynamo, seconds of every process start.
            torch.compiler.disable(FoldedBackbone._refresh)(self, x.device.type)
        else:
            self._refresh(x.device.type)
        return self._run(x)

    @torch.no_grad()
    def _refresh(self, device_type: str) -> None:
        dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None
        sources = [t for conv, bn in self.pairs for t in _pair_tensors(conv, bn) if t is not None]
        key = (dtype, _OPTIMIZER_STEPS.value, *((t.data_ptr(), t._version) for t in sources))
        if key == self._key:
            return
        for i, (conv, bn) in enumerate(self.pairs):
            weight, bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
            )
            self._store(f"folded{i}_weight", weight.detach().to(dtype or weight.dtype))
            self._store(f"folded{i}_bias", bias.detach().to(dtype or bias.dtype))
        self._key = key

    def _store(self, name: str, value: Tensor) -> None:
        """Update a folded buffer in place when it can be (a compiled graph keeps reading the same tensor)."""
        current = getattr(self.graph, name)
        if (current.shape, current.dtype, current.device) == (value.shape, value.dtype, value.device):
            current.copy_(value)
        else:
            self.graph.register_buffer(name, value, persistent=False)


def _pair_tensors(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[Tensor | None, ...]:
    """What the folded weights are made of; a training-mode BatchNorm forward bumps `num_batches_tracked`."""
    return conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked


def _foldable(graph: fx.GraphModule, node: fx.Node) -> bool:
    """`node` calls an eval-foldable BatchNorm2d on the sole output of a zero-padded Conv2d."""
    if node.op != "call_module" or type(graph.get_submodule(str(node.target))) is not nn.BatchNorm2d:
        return False
    bn = graph.get_submodule(str(node.target))
    conv_node = node.args[0]
    if not isinstance(conv_node, fx.Node) or conv_node.op != "call_module" or len(conv_node.users) != 1:
        return False
    conv = graph.get_submodule(str(conv_node.target))
    return type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and bn.running_var is not None


def _fold_pairs(graph: fx.GraphModule) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    """Rewrite each foldable conv → bn of `graph` into F.conv2d on buffers `folded{i}_weight/bias`."""
    pairs = []
    for node in list(graph.graph.nodes):
        if not _foldable(graph, node):
            continue
        conv_node = node.args[0]
        assert isinstance(conv_node, fx.Node)
        conv = graph.get_submodule(str(conv_node.target))
        i = len(pairs)
        for name in (f"folded{i}_weight", f"folded{i}_bias"):
            graph.register_buffer(name, torch.empty(0), persistent=False)  # filled by the first refresh
        with graph.graph.inserting_before(conv_node):
            weight = graph.graph.get_attr(f"folded{i}_weight")
            bias = graph.graph.get_attr(f"folded{i}_bias")
            folded = graph.graph.call_function(
                F.conv2d, (conv_node.args[0], weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)
            )
        node.replace_all_uses_with(folded)
        graph.graph.erase_node(node)
        graph.graph.erase_node(conv_node)
        pairs.append((conv, graph.get_submodule(str(node.target))))
    if pairs:
        graph.graph.lint()
        graph.recompile()
    return pairs
