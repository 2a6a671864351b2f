"""Encoders by name, aggregators (shapes, invariances, the role of context), heads and losses."""

from __future__ import annotations

import pytest
import torch

from dbps.models import (
    AGGREGATORS,
    PatchClassifier,
    create_aggregator,
    create_encoder,
    sinusoidal_encoding,
)
from dbps.models.encoders import WeightsFileError
from dbps.tasks import TaskSpec, multitask_loss
from tests.conftest import tiny_model

COMMON = {"dim": 16, "num_tasks": 3, "heads": 4, "dim_key": 4, "dim_value": 4, "dim_ffn": 32}


@pytest.mark.parametrize("name", AGGREGATORS.names())
def test_aggregator_shapes_and_scores(name: str) -> None:
    agg = create_aggregator(name, **COMMON).eval()
    salient, context = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    tokens = agg(salient, context)
    assert tokens.shape == (2, agg.num_tokens, 16) and agg.num_tokens in (1, 3)
    scores = agg.score(torch.cat([salient, context], 1))
    assert scores.shape == (2, 12) and (scores > 0).all()
    torch.testing.assert_close(scores.sum(1), torch.ones(2))


@pytest.mark.parametrize("name", ["CA", "AB", "ABX"])
def test_concatenating_aggregators_are_permutation_invariant_over_all_tokens(name: str) -> None:
    agg = create_aggregator(name, **COMMON).eval()
    x = torch.randn(2, 12, 16)
    perm = torch.randperm(12)
    torch.testing.assert_close(agg(x[:, :5], x[:, 5:]), agg(x[:, perm[:4]], x[:, perm[4:]]))
    torch.testing.assert_close(agg.score(x)[:, perm], agg.score(x[:, perm]))


def test_dual_attention_is_invariant_within_each_set_but_not_across_them() -> None:
    agg = create_aggregator("DA", **COMMON).eval()
    salient, context = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    torch.testing.assert_close(agg(salient, context), agg(salient[:, torch.randperm(5)], context[:, torch.randperm(7)]))
    swapped = agg(torch.cat([salient[:, :4], context[:, :1]], 1), torch.cat([salient[:, 4:], context[:, 1:]], 1))
    assert not torch.allclose(agg(salient, context), swapped)


def test_gated_dual_attention_starts_as_cross_attention_over_the_salient_patches_and_learns_the_gate() -> None:
    gated = create_aggregator("DA", **COMMON, context_gate=True).eval()
    ca = create_aggregator("CA", **COMMON).eval()
    ca.load_state_dict({k: v for k, v in gated.state_dict().items() if k in ca.state_dict()})
    salient, context = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    torch.testing.assert_close(gated(salient, context), ca(salient, torch.zeros(2, 0, 16)))
    gated(salient, context).square().sum().backward()
    assert gated.context_scale.grad.abs().sum() > 0  # the gate opens by gradient
    assert gated.norm_salient.weight.grad.abs().sum() == 0  # the context read trains once it is open
    with torch.no_grad():
        gated.context_scale.fill_(0.5)
    assert not torch.allclose(gated(salient, context), ca(salient, torch.zeros(2, 0, 16)))


MASKING = [name for name in AGGREGATORS.names() if AGGREGATORS.get(name).masks_tokens]


@pytest.mark.parametrize("name", MASKING)
def test_tokens_left_out_by_keep_are_as_if_removed_from_the_bag(name: str) -> None:
    agg = create_aggregator(name, **COMMON, context_gate=name == "DA").eval()
    with torch.no_grad():  # the parts that start switched off take part too
        if name == "DA":
            agg.context_scale.fill_(0.7)
        if name == "ABX":
            agg.alpha.fill_(0.5)
    salient, context = torch.randn(1, 5, 16), torch.randn(1, 7, 16)
    keep = torch.tensor([[1, 0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 1]], dtype=torch.bool)
    removed = agg(salient[:, keep[0, :5]], context[:, keep[0, 5:]])
    torch.testing.assert_close(agg(salient, context, keep), removed)
    assert not torch.allclose(agg(salient, context), removed)
    # the tokens left out get no gradient: changing them changes nothing
    other = agg(salient.masked_fill(~keep[:, :5, None], 3.0), context.masked_fill(~keep[:, 5:, None], -2.0), keep)
    torch.testing.assert_close(other, removed)


@pytest.mark.parametrize("name", MASKING)
def test_keep_applies_per_image_in_a_batch(name: str) -> None:
    agg = create_aggregator(name, **COMMON).eval()
    salient, context = torch.randn(2, 4, 16), torch.randn(2, 6, 16)
    keep = torch.ones(2, 10, dtype=torch.bool)
    keep[0, 2:] = False  # image 0 keeps two salient tokens and no context
    batched = agg(salient, context, keep)
    torch.testing.assert_close(batched[:1], agg(salient[:1, :2], context[:1, :0]))
    torch.testing.assert_close(batched[1:], agg(salient[1:], context[1:]))


def test_transmil_refuses_to_leave_tokens_out() -> None:
    agg = create_aggregator("TransMIL", **COMMON)
    assert not agg.masks_tokens
    with pytest.raises(ValueError, match="TransMIL cannot leave tokens out"):
        agg(torch.randn(1, 2, 16), torch.randn(1, 3, 16), torch.ones(1, 5, dtype=torch.bool))


@pytest.mark.parametrize("name", ["DA", "CA", "ABX", "AB", "TransMIL"])
def test_output_depends_on_the_context_and_empty_context_works(name: str) -> None:
    agg = create_aggregator(name, **COMMON).eval()
    salient = torch.randn(2, 5, 16)
    with_context = agg(salient, torch.randn(2, 7, 16))
    without = agg(salient, torch.zeros(2, 0, 16))
    assert torch.isfinite(without).all()
    assert not torch.allclose(with_context, without)
    assert not torch.allclose(with_context, agg(salient, torch.randn(2, 7, 16)))


@pytest.mark.parametrize("name", AGGREGATORS.names())
def test_context_only_parameters_are_those_an_empty_context_leaves_without_gradients(name: str) -> None:
    agg = create_aggregator(name, **COMMON)
    agg(torch.randn(2, 5, 16), torch.zeros(2, 0, 16)).sum().backward()
    idle = [key for key, parameter in agg.named_parameters() if parameter.grad is None]
    assert agg.context_only_parameters is bool(idle), idle


def test_unknown_aggregator_names_the_closest() -> None:
    with pytest.raises(ValueError, match=r"unknown aggregator 'CX'.*did you mean"):
        create_aggregator("CX", dim=8)
    assert type(create_aggregator("abx", dim=8, heads=2)) is type(create_aggregator("ABX", dim=8, heads=2))


def test_truncated_resnet18_with_one_channel_stem_is_the_megapixel_mnist_encoder() -> None:
    encoder = create_encoder("resnet18", in_chans=1, stages=2)
    assert encoder.embed_dim == 128
    assert encoder(torch.rand(3, 1, 50, 50)).shape == (3, 128)
    assert not any("layer3" in name for name, _ in encoder.named_parameters())


def test_timm_encoder_with_projector_and_local_weights(tmp_path) -> None:
    import timm

    reference = timm.create_model("resnet18", in_chans=1, num_classes=0)
    path = tmp_path / "weights.pth"
    torch.save(reference.state_dict(), path)
    encoder = create_encoder("resnet18", in_chans=1, stages=1, dim=32, weights=path)
    assert encoder.embed_dim == 32 and encoder(torch.rand(4, 1, 32, 32)).shape == (4, 32)
    torch.testing.assert_close(encoder.backbone.features.conv1.weight, reference.conv1.weight)


def test_projector_for_feature_bags_and_encoder_errors(tmp_path) -> None:
    encoder = create_encoder("projector", in_dim=20, dim=8)
    assert encoder(torch.randn(5, 20)).shape == (5, 8)
    with pytest.raises(ValueError, match="unknown encoder 'resnet181'"):
        create_encoder("resnet181")
    with pytest.raises(WeightsFileError, match=r"missing\.pth: no such weights file"):
        create_encoder("resnet18", weights=tmp_path / "missing.pth")


def test_small_cnn_widths_set_each_stage_and_only_small_cnn_takes_them() -> None:
    encoder = create_encoder("small_cnn", in_chans=1, dim=8, widths=(4, 6, 10))
    convs = [m for m in encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 4), (4, 6), (6, 10)]
    assert encoder(torch.randn(3, 1, 24, 24)).shape == (3, 8)
    with pytest.raises(ValueError, match="only small_cnn takes stage widths"):
        create_encoder("resnet18", widths=(8, 16))


def test_sinusoidal_encoding_is_the_standard_table() -> None:
    enc = sinusoidal_encoding(torch.tensor([[0, 3]]), 6)
    assert enc.shape == (1, 2, 6)
    assert torch.equal(enc[0, 0], torch.tensor([0.0, 0, 0, 1, 1, 1]))
    torch.testing.assert_close(enc[0, 1, 0], torch.sin(torch.tensor(3.0)))
    torch.testing.assert_close(enc[0, 1, 4], torch.cos(torch.tensor(3.0) * 10000 ** (-1 / 3)))


def test_positional_encoding_changes_scores_of_identical_patches() -> None:
    tasks = [TaskSpec("t", 2)]
    model = PatchClassifier(
        create_encoder("projector", in_dim=4, dim=8), create_aggregator("CA", dim=8), tasks, pos_enc=True
    ).eval()
    emb = torch.ones(1, 3, 8)
    assert not torch.allclose(model.score(emb, torch.tensor([[0, 1, 2]])), torch.full((1, 3), 1 / 3))


def test_gated_positional_encoding_starts_from_the_content_alone_and_learns_its_gate() -> None:
    tasks = [TaskSpec("t", 2)]
    torch.manual_seed(0)
    gated = PatchClassifier(create_encoder("projector", in_dim=4, dim=8), create_aggregator("CA", dim=8), tasks,
                            pos_enc=True, pos_gate=True)
    plain = PatchClassifier(create_encoder("projector", in_dim=4, dim=8), create_aggregator("CA", dim=8), tasks)
    plain.load_state_dict({k: v for k, v in gated.state_dict().items() if k != "pos_scale"})
    patches, idx = torch.randn(2, 3, 4), torch.tensor([[0, 5, 9], [2, 3, 7]])
    context, context_idx = torch.randn(2, 4, 8), torch.tensor([[1, 2, 3, 4], [0, 1, 4, 5]])
    emb = gated.embed(patches.flatten(0, 1)).unflatten(0, (2, 3))
    torch.testing.assert_close(gated.score(emb, idx), plain.score(emb, idx))
    args = (patches, idx, context, context_idx)
    torch.testing.assert_close(gated(*args)["t"], plain(*args)["t"])
    gated(*args)["t"].square().sum().backward()
    assert gated.pos_scale.grad.abs().sum() > 0  # the gate opens by gradient
    with torch.no_grad():
        gated.pos_scale.fill_(1.0)  # fully open: the fixed encoding
    fixed = PatchClassifier(gated.encoder, gated.aggregator, tasks, pos_enc=True)
    torch.testing.assert_close(gated.score(emb, idx), fixed.score(emb, idx))
    assert not torch.allclose(gated.score(emb, idx), plain.score(emb, idx))


def test_positional_gate_starts_at_its_init_value() -> None:
    tasks = [TaskSpec("t", 2)]
    torch.manual_seed(0)
    gated = PatchClassifier(create_encoder("projector", in_dim=4, dim=8), create_aggregator("CA", dim=8), tasks,
                            pos_enc=True, pos_gate=True, pos_gate_init=0.25)
    assert torch.equal(gated.pos_scale.detach(), torch.full((8,), 0.25))
    emb, idx = torch.randn(1, 3, 8), torch.tensor([[0, 5, 9]])
    scaled = emb + 0.25 * sinusoidal_encoding(idx, 8)
    plain = PatchClassifier(gated.encoder, gated.aggregator, tasks)
    torch.testing.assert_close(gated.score(emb, idx), plain.score(scaled, idx))


def test_multitask_loss_is_the_mean_of_cross_entropy_and_bce() -> None:
    tasks = [TaskSpec("a", 3), TaskSpec("b", 4, "sigmoid", "multilabel_accuracy")]
    outputs = {"a": torch.randn(2, 3), "b": torch.randn(2, 4)}
    targets = {"a": torch.tensor([0, 2]), "b": torch.tensor([[1, 0, 0, 1], [0, 1, 1, 0]])}
    expected = (
        torch.nn.functional.cross_entropy(outputs["a"], targets["a"])
        + torch.nn.functional.binary_cross_entropy_with_logits(outputs["b"], targets["b"].float())
    ) / 2
    torch.testing.assert_close(multitask_loss(outputs, targets, tasks), expected)


def test_task_spec_is_validated() -> None:
    with pytest.raises(ValueError, match="activation"):
        TaskSpec("x", 2, "relu")
    with pytest.raises(ValueError, match="num_classes"):
        TaskSpec("x", 0)


def test_pretrained_weights_that_cannot_be_had_stop_with_both_ways_out(tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    from dbps.models.encoders import PretrainedWeightsUnavailable

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache, offline
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedWeightsUnavailable) as error:
        create_encoder("resnet18", in_chans=3, stages=4, pretrained=True)
    assert "model.weights=PATH" in str(error.value) and "pretrained=False" in str(error.value)
    weights = tmp_path / "r18.pth"
    torch.save(create_encoder("resnet18", in_chans=3).backbone.state_dict(), weights)
    local = create_encoder("resnet18", in_chans=3, weights=weights)  # a local file needs no hub
    torch.testing.assert_close(local.backbone.state_dict()["conv1.weight"], torch.load(weights)["conv1.weight"])


def test_projector_takes_a_single_embedding_in_training() -> None:
    projector = create_encoder("projector", in_dim=6, dim=4).train()
    before = projector.project[2].running_mean.clone()
    one = projector(torch.randn(1, 6))  # one salient patch in the gradient pass: running statistics
    assert one.shape == (1, 4) and torch.equal(projector.project[2].running_mean, before)
    projector(torch.randn(5, 6))  # several: batch statistics, running statistics updated
    assert not torch.equal(projector.project[2].running_mean, before)


def test_zero_init_last_sets_the_last_batchnorm_of_each_residual_block() -> None:
    def last_gammas(**kwargs: object) -> set[float]:
        encoder = create_encoder("resnet18", in_chans=1, stages=2, **kwargs)
        gammas = [p.detach() for name, p in encoder.named_parameters() if name.endswith("bn2.weight")]
        return {float(v) for gamma in gammas for v in gamma.flatten()}

    assert last_gammas(zero_init_last=True) == {0.0}
    assert last_gammas(zero_init_last=False) == {1.0}
    with pytest.raises(ValueError, match="no zero_init_last"):
        create_encoder("vit_tiny_patch16_224", in_chans=1, zero_init_last=False)


@pytest.mark.parametrize("name", ["CA", "DA", "AB", "ABX"])
def test_scores_keep_float32_resolution_under_bf16_autocast(name: str) -> None:
    # An untrained attention weights n candidates about 1/n each; bf16 would round them to a few values (ties).
    model = tiny_model(name, dim=32, heads=2, tasks=[TaskSpec("a", 3), TaskSpec("b", 2)], pos_enc=True).eval()
    emb, idx = torch.randn(2, 64, 32), torch.arange(64).repeat(2, 1)
    seen = []
    model.aggregator.register_forward_hook(lambda module, args, out: seen.append((args[0].dtype, out.dtype)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = model.score(emb.bfloat16().float(), idx)
        model(torch.rand(2, 3, 1, 16, 16), idx[:, :3], emb[:, :4].bfloat16(), idx[:, 3:7])
    assert mixed.dtype == torch.float32 and seen == [(torch.float32, torch.float32)]
    torch.testing.assert_close(mixed, model.score(emb.bfloat16().float(), idx), rtol=0, atol=0)
    assert all(len(torch.unique(row)) == 64 for row in mixed)  # every candidate keeps its own rank


BRANCH_LAYER = {"AB": "weight", "ABX": "logit.4"}  # the layer that gives each task its own attention logit


@pytest.mark.parametrize("name", sorted(BRANCH_LAYER))
def test_per_task_attention_equals_one_single_task_model_per_branch(name: str) -> None:
    torch.manual_seed(0)
    agg = create_aggregator(name, **COMMON, per_task=True).eval()
    if name == "ABX":
        agg.alpha.data.fill_(0.7)  # "attention plus" mixes the logits (its α starts at 0)
    salient, context = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    tokens = agg(salient, context)
    assert agg.num_tokens == 3 and tokens.shape == (2, 3, 16)
    layer, scores = BRANCH_LAYER[name], []
    for task in range(3):
        single = create_aggregator(name, **COMMON).eval()
        state = agg.state_dict()
        state[f"{layer}.weight"] = state[f"{layer}.weight"][task : task + 1]
        state[f"{layer}.bias"] = state[f"{layer}.bias"][task : task + 1]
        single.load_state_dict(state)
        torch.testing.assert_close(tokens[:, task : task + 1], single(salient, context))
        scores.append(single.score(torch.cat([salient, context], 1)))
    torch.testing.assert_close(agg.score(torch.cat([salient, context], 1)), torch.stack(scores).mean(0))


@pytest.mark.parametrize("name", sorted(BRANCH_LAYER))
def test_each_task_token_gets_no_gradient_from_another_tasks_branch(name: str) -> None:
    agg = create_aggregator(name, **COMMON, per_task=True)
    agg(torch.randn(2, 5, 16), torch.randn(2, 7, 16))[:, 1].sum().backward()
    grad = dict(agg.named_parameters())[f"{BRANCH_LAYER[name]}.weight"].grad
    assert grad[1].abs().sum() > 0
    assert torch.equal(grad[[0, 2]], torch.zeros_like(grad[[0, 2]]))


@pytest.mark.parametrize("name", sorted(BRANCH_LAYER))
def test_per_task_attention_with_one_task_is_the_shared_model(name: str) -> None:
    torch.manual_seed(0)
    shared = create_aggregator(name, **COMMON | {"num_tasks": 1}).eval()
    torch.manual_seed(0)
    branched = create_aggregator(name, **COMMON | {"num_tasks": 1}, per_task=True).eval()
    x = torch.randn(2, 9, 16)
    torch.testing.assert_close(shared(x[:, :4], x[:, 4:]), branched(x[:, :4], x[:, 4:]), rtol=0, atol=0)
