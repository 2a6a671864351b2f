"""CPU speed options: bf16 autocast only where the CPU has it, BatchNorm folding that stays exact, compile scope."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from dbps.config import load_config
from dbps.engine import speed
from dbps.engine.build import amp_dtype, build_model, place_model
from dbps.models import create_encoder
from dbps.patches import ImagePatches
from dbps.tasks import TaskSpec

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _capabilities(**flags: bool):
    return lambda: {"avx512_f": True, "avx512_bf16": False, "amx_bf16": False} | flags


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({}, None), ({"avx512_bf16": True}, torch.bfloat16), ({"amx_bf16": True}, torch.bfloat16)],
)
def test_bf16_autocast_on_cpus_with_native_bf16_only(monkeypatch, flags, expected) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", _capabilities(**flags))
    assert speed.autocast_dtype(CPU, amp=True, amp_cpu=True) is expected
    assert speed.autocast_dtype(CUDA, amp=True, amp_cpu=True) is torch.bfloat16  # the CPU's flags do not matter


def test_switches_turn_cpu_bf16_off_and_old_configs_still_load(monkeypatch) -> None:
    monkeypatch.setattr(torch.cpu, "get_capabilities", _capabilities(amx_bf16=True))
    assert amp_dtype(load_config("quickstart", ["train.amp=true"])[0], CPU) is torch.bfloat16
    assert amp_dtype(load_config("quickstart", ["train.amp=false"])[0], CPU) is None
    assert amp_dtype(load_config("quickstart", ["train.amp_cpu=false"])[0], CPU) is None
    assert amp_dtype(load_config("quickstart", ["train.amp_cpu=false"])[0], CUDA) is torch.bfloat16


def _encoder(name: str = "resnet18", channels_last: bool = False) -> nn.Module:
    encoder = create_encoder(name, in_chans=1, dim=32, stages=2)
    if channels_last:
        encoder.to_channels_last()
    assert encoder.fold_batchnorm()
    return encoder


def _bn_calls(encoder: nn.Module) -> list[str]:
    calls: list[str] = []
    for name, module in encoder.named_modules():
        if isinstance(module, nn.BatchNorm2d):
            module.register_forward_hook(lambda *_, name=name: calls.append(name))
    return calls


def _unfolded(encoder: nn.Module, patches: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return encoder.project(encoder.backbone(patches))


@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_eval_forward_skips_batchnorm_and_matches(channels_last: bool) -> None:
    torch.manual_seed(0)
    encoder = _encoder(channels_last=channels_last)
    for module in encoder.modules():  # non-trivial statistics, so that a wrong fold would show
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5), module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5), module.bias.data.uniform_(-0.5, 0.5)
    encoder.eval()
    patches = torch.randn(6, 1, 24, 24)
    calls = _bn_calls(encoder)
    with torch.no_grad():
        folded = encoder(patches)
    assert calls == [] and len(encoder.folded.pairs) == 10  # stem + 4 blocks × 2 + 1 downsample
    torch.testing.assert_close(folded, _unfolded(encoder, patches), atol=1e-5, rtol=1e-4)
    assert calls  # the reference really ran the BatchNorms


def test_training_and_gradient_forwards_run_the_real_backbone() -> None:
    encoder = _encoder()
    calls = _bn_calls(encoder)
    encoder.eval()
    out = encoder(torch.randn(2, 1, 24, 24))  # eval with gradients: the gradient pass of a frozen model
    out.sum().backward()
    assert calls and encoder.backbone.features.conv1.weight.grad is not None
    calls.clear()
    encoder.train()
    with torch.no_grad():
        encoder(torch.randn(2, 1, 24, 24))
    assert calls


@pytest.mark.parametrize("fused", [False, True])
def test_folded_weights_follow_optimizer_steps_running_stats_and_loading(fused: bool) -> None:
    torch.manual_seed(0)
    encoder = _encoder("small_cnn")
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=0.05, fused=fused)
    patches = torch.randn(4, 1, 24, 24)

    def check() -> None:
        encoder.eval()
        with torch.no_grad():
            torch.testing.assert_close(encoder(patches), _unfolded(encoder, patches), atol=1e-5, rtol=1e-4)
        encoder.train()

    check()
    for _ in range(2):  # each change alone: running statistics, then an optimiser step
        encoder.train()
        encoder(torch.randn(4, 1, 24, 24) * 3 + 1).square().mean().backward()
        check()
        optimizer.step()
        optimizer.zero_grad()
        check()
    state = copy.deepcopy(encoder.state_dict())
    torch.nn.init.normal_(encoder.backbone[3].weight)
    check()
    encoder.load_state_dict(state)
    check()


def test_folding_leaves_the_state_dict_alone() -> None:
    plain = create_encoder("resnet18", in_chans=1, dim=32, stages=2)
    folded = _encoder()
    assert list(folded.state_dict()) == list(plain.state_dict())


def test_folded_weights_follow_the_autocast_dtype() -> None:
    encoder = _encoder().eval()
    patches = torch.randn(4, 1, 24, 24)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder(patches)
        reference = _unfolded(encoder, patches)
    assert encoder.folded.graph.folded0_weight.dtype is torch.bfloat16
    torch.testing.assert_close(out.float(), reference.float(), atol=0.05, rtol=0.05)
    with torch.no_grad():
        encoder(patches)
    assert encoder.folded.graph.folded0_weight.dtype is torch.float32


def test_bf16_training_step_is_close_to_float32() -> None:
    config, _ = load_config("mnist_dbps", ["model.encoder_stages=2", "model.dim=32", "model.dropout=0",
                                           "model.attn_dropout=0", "train.device=cpu"])
    torch.manual_seed(0)
    model = place_model(build_model(config, [TaskSpec("majority", 10)], 1), config, CPU).eval()
    patches, idx = torch.rand(2, 4, 1, 32, 32), torch.arange(4).expand(2, -1)
    context, context_idx = torch.randn(2, 3, 32), torch.arange(4, 7).expand(2, -1)
    full = model(patches, idx, context, context_idx)["majority"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = model(patches, idx, context, context_idx)["majority"]
    assert half.dtype is torch.float32
    torch.testing.assert_close(half, full, atol=0.05 * full.abs().max().item(), rtol=0.05)


def test_compile_on_a_cpu_compiles_the_folded_pass_only(monkeypatch) -> None:
    compiled: list[object] = []
    monkeypatch.setattr(torch, "compile", lambda module, **_: compiled.append(module) or module)
    encoder = create_encoder("resnet18", in_chans=1, dim=32, stages=2)
    speed.speed_up_encoder(encoder, CPU, channels_last=True, fold_batchnorm=True, compile=True)
    assert compiled == [encoder.folded.graph] and encoder.channels_last
    encoder = create_encoder("resnet18", in_chans=1, dim=32, stages=2)
    speed.speed_up_encoder(encoder, CPU, channels_last=False, fold_batchnorm=False, compile=False)
    assert encoder.folded is None and not encoder.channels_last


def _indexed_patches(images: torch.Tensor, size: tuple[int, int], stride: tuple[int, int], idx: torch.Tensor):
    """The gather as it was: advanced indexing of the unfolded view, pixel by pixel."""
    view = images.unfold(2, size[0], stride[0]).unfold(3, size[1], stride[1])
    rows, cols = idx // view.shape[3], idx % view.shape[3]
    return view[torch.arange(idx.shape[0])[:, None], :, rows, cols]


@pytest.mark.parametrize(
    "layout",
    ["contiguous", "channels_last", "cropped", "overlapping", "uint8"],
)
def test_row_gather_returns_exactly_the_patches_of_advanced_indexing(layout: str) -> None:
    torch.manual_seed(0)
    images = torch.rand(3, 2, 41, 37)
    size, stride = (10, 6), (10, 6)
    if layout == "channels_last":
        images = images.contiguous(memory_format=torch.channels_last)
    elif layout == "cropped":
        images = torch.rand(4, 3, 50, 50)[1:, 1:, 3:44, 5:42]
    elif layout == "overlapping":
        stride = (3, 4)
    source = ImagePatches(images, size, stride)
    idx = torch.randint(0, source.num_patches, (3, 17))
    assert torch.equal(source.fetch(idx), _indexed_patches(images, size, stride, idx))
    if layout == "uint8":
        pixels = (images * 255).to(torch.uint8)
        fetched = ImagePatches(pixels, size, stride, mean=[0.2, 0.4], std=[0.3, 0.5], dtype=torch.bfloat16).fetch(idx)
        old = _indexed_patches(pixels, size, stride, idx).to(torch.bfloat16) / 255
        mean, std = (torch.tensor(v, dtype=torch.bfloat16).view(-1, 1, 1) for v in ([0.2, 0.4], [0.3, 0.5]))
        old = (old - mean) / std  # as the conversion always was: in the patches' dtype, op by op
        assert fetched.dtype is torch.bfloat16 and torch.equal(fetched, old)


def test_row_gather_passes_gradients_to_the_images() -> None:
    images = torch.rand(2, 1, 20, 20, requires_grad=True)
    idx = torch.tensor([[0, 3, 3], [15, 1, 2]])  # a patch taken twice accumulates twice
    weights = torch.rand(2, 3, 1, 5, 5)
    (ImagePatches(images, 5).fetch(idx) * weights).sum().backward()
    expected = torch.autograd.grad((_indexed_patches(images, (5, 5), (5, 5), idx) * weights).sum(), images)[0]
    assert torch.equal(images.grad, expected)


@pytest.mark.slow
def test_compiled_folded_pass_follows_weight_updates() -> None:
    torch.manual_seed(0)
    encoder = create_encoder("small_cnn", in_chans=1, dim=16)
    speed.speed_up_encoder(encoder, CPU, channels_last=True, fold_batchnorm=True, compile=True)
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=0.05)
    patches = torch.randn(4, 1, 16, 16)
    for _ in range(2):  # compiled once, then run again after the weights and statistics have moved
        encoder.train()
        encoder(torch.randn(4, 1, 16, 16) * 2 + 1).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        encoder.eval()
        with torch.no_grad():
            torch.testing.assert_close(encoder(patches), _unfolded(encoder, patches), atol=1e-5, rtol=1e-4)
