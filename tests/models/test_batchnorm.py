"""BatchNorm in the gradient pass: batch, running and frozen statistics against eval mode and a hand-made update."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from dbps.config import ConfigError, load_config
from dbps.engine.build import build_model
from dbps.engine.step import forward_backward
from dbps.models import BatchNormMode, batchnorm_mode, create_encoder
from dbps.patches import ImagePatches
from dbps.selection import PatchSelector
from dbps.tasks import TaskSpec
from tests.conftest import tiny_model


def small_cnn() -> nn.Module:
    return create_encoder("small_cnn", in_chans=1, dim=16)  # BatchNorm2d stages and a BatchNorm1d projector


def cumulative_small_cnn() -> nn.Module:
    encoder = small_cnn()
    for layer in batchnorms(encoder):
        layer.momentum = None
    return encoder


def sync_small_cnn() -> nn.Module:
    return nn.SyncBatchNorm.convert_sync_batchnorm(small_cnn())


def timm_resnet() -> nn.Module:
    return create_encoder("resnet18", in_chans=1, stages=1, dim=16)


ENCODERS = [small_cnn, cumulative_small_cnn, sync_small_cnn, timm_resnet]


def batchnorms(module: nn.Module) -> list[_BatchNorm]:
    return [m for m in module.modules() if isinstance(m, _BatchNorm)]


def trained_a_little(make: Callable[[], nn.Module]) -> nn.Module:
    """An encoder in train mode whose running statistics are no longer the initial zeros and ones."""
    encoder = make().train()
    with torch.no_grad():
        for _ in range(3):
            encoder(torch.rand(6, 1, 16, 16) * 2)
    return encoder


def expected_update(encoder: nn.Module, x: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Running statistics after one update from the inputs each layer sees in eval mode, written out by hand."""
    reference = copy.deepcopy(encoder).eval()
    inputs: list[Tensor] = []
    hooks = [m.register_forward_pre_hook(lambda _, args: inputs.append(args[0])) for m in batchnorms(reference)]
    with torch.no_grad():
        reference(x)
    for hook in hooks:
        hook.remove()
    expected = []
    for layer, seen in zip(batchnorms(reference), inputs, strict=True):
        dims = [d for d in range(seen.dim()) if d != 1]
        factor = layer.momentum if layer.momentum is not None else 1 / (int(layer.num_batches_tracked) + 1)
        mean, var = seen.mean(dim=dims), seen.var(dim=dims, unbiased=True)
        expected.append((torch.lerp(layer.running_mean, mean, factor), torch.lerp(layer.running_var, var, factor)))
    return expected


def gradients(module: nn.Module) -> dict[str, Tensor]:
    return {name: p.grad for name, p in module.named_parameters()}


@pytest.mark.parametrize("make", ENCODERS, ids=lambda f: f.__name__)
def test_running_normalises_as_eval_mode_and_updates_the_statistics_from_the_batch(
    make: Callable[[], nn.Module],
) -> None:
    encoder = trained_a_little(make)
    x = torch.rand(8, 1, 16, 16)
    eval_copy = copy.deepcopy(encoder).eval()
    expected_emb = eval_copy(x)
    expected_stats = expected_update(encoder, x)
    layers = batchnorms(encoder)
    buffers = [(m.running_mean, m.running_var, int(m.num_batches_tracked)) for m in layers]
    with batchnorm_mode(encoder, "running"):
        emb = encoder(x)
    torch.testing.assert_close(emb, expected_emb)
    for layer, (mean, var), (old_mean, old_var, count) in zip(layers, expected_stats, buffers, strict=True):
        assert layer.running_mean is old_mean and layer.running_var is old_var  # same tensors, updated in place
        torch.testing.assert_close(layer.running_mean, mean)
        torch.testing.assert_close(layer.running_var, var)
        assert int(layer.num_batches_tracked) == count + 1 and layer.training
    emb.square().sum().backward()  # the statistics are constants: the gradients are eval mode's
    expected_emb.square().sum().backward()
    for name, grad in gradients(encoder).items():
        torch.testing.assert_close(grad, gradients(eval_copy)[name], msg=name)


@pytest.mark.parametrize("make", ENCODERS, ids=lambda f: f.__name__)
def test_frozen_normalises_as_eval_mode_and_never_updates(make: Callable[[], nn.Module]) -> None:
    encoder = trained_a_little(make)
    x = torch.rand(8, 1, 16, 16)
    expected_emb = copy.deepcopy(encoder).eval()(x)
    before = {name: b.clone() for name, b in encoder.named_buffers()}
    with batchnorm_mode(encoder, "frozen"):
        emb = encoder(x)
    emb.sum().backward()
    torch.testing.assert_close(emb, expected_emb)
    assert all(torch.equal(b, before[name]) for name, b in encoder.named_buffers())
    assert all(m.training and m.weight.grad is not None for m in batchnorms(encoder))  # γ, β still train


def test_batch_is_plain_train_mode() -> None:
    encoder = trained_a_little(small_cnn)
    plain = copy.deepcopy(encoder)
    x = torch.rand(8, 1, 16, 16)
    with batchnorm_mode(encoder, "batch"):
        emb = encoder(x)
    assert torch.equal(emb, plain(x))
    assert all(torch.equal(b, dict(plain.named_buffers())[name]) for name, b in encoder.named_buffers())


def test_layers_in_eval_mode_are_left_alone() -> None:
    encoder = trained_a_little(small_cnn)
    kept = batchnorms(encoder)[0].eval()
    before = kept.running_mean.clone()
    with batchnorm_mode(encoder, "running"):
        encoder(torch.rand(8, 1, 16, 16))
    assert torch.equal(kept.running_mean, before) and not kept.training


def test_the_hooks_are_gone_after_an_error_inside_the_block() -> None:
    encoder = trained_a_little(small_cnn)
    buffers = [m.running_mean for m in batchnorms(encoder)]
    with pytest.raises(RuntimeError), batchnorm_mode(encoder, "running"):
        encoder(torch.rand(8, 3, 16, 16))  # wrong channel count: the first convolution fails
    assert all(not m._forward_hooks and not m._forward_pre_hooks and m.training for m in batchnorms(encoder))
    assert all(m.running_mean is b for m, b in zip(batchnorms(encoder), buffers, strict=True))


def salient_embeddings_of_a_step(bn_mode: str) -> tuple[Tensor, Tensor, bool]:
    """A training step's salient embeddings, eval mode's for the same patches, and whether the statistics moved."""
    torch.manual_seed(0)
    model = tiny_model("DA", heads=2)
    model.bn_mode = BatchNormMode(bn_mode)
    source = ImagePatches(torch.rand(2, 1, 48, 48), 8)
    before = copy.deepcopy(model).eval()
    seen: list[Tensor] = []
    model.encoder.register_forward_hook(lambda _m, _a, out: seen.append(out) if torch.is_grad_enabled() else None)
    step = forward_backward(model, PatchSelector("dbps", 3, 5, 4), source, {"label": torch.tensor([0, 1])})
    with torch.no_grad():
        expected = before.embed(source.fetch(step.selection.salient_idx).flatten(0, 1))
    moved = not torch.equal(model.encoder.project[2].running_mean, before.encoder.project[2].running_mean)
    return seen[0].detach(), expected, moved


def test_in_a_training_step_running_embeds_salient_patches_as_the_context_was_embedded() -> None:
    salient, as_context, moved = salient_embeddings_of_a_step("running")
    torch.testing.assert_close(salient, as_context)
    assert moved
    salient, as_context, moved = salient_embeddings_of_a_step("batch")
    assert not torch.allclose(salient, as_context, atol=1e-3) and moved


def test_config_key_reaches_the_model_and_bad_values_are_named() -> None:
    config, _ = load_config("quickstart", ["model.bn_mode=Running"])
    assert build_model(config, [TaskSpec("majority", 10)], channels=1).bn_mode == "running"
    with pytest.raises(ConfigError, match=r"model\.bn_mode"):
        load_config("quickstart", ["model.bn_mode=eval"])
