"""dbps `ips` against the IPS reference code (github.com/benbergner/ips), with the same weights copied into both.

Runs only where a checkout of the reference lies at external/ips (ignored by git; `git clone
https://github.com/benbergner/ips external/ips`), or at $DBPS_IPS_REFERENCE. With equal weights the two must
embed, select, predict and back-propagate alike, so any difference in how they learn comes from initialisation,
random draws or the training protocol, not from the computation.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from dbps.models import PatchClassifier, create_aggregator, create_encoder
from dbps.patches import ImagePatches
from dbps.selection import PatchSelector
from dbps.tasks import Activation, TaskSpec, multitask_loss

REFERENCE = Path(os.environ.get("DBPS_IPS_REFERENCE", Path(__file__).resolve().parents[2] / "external" / "ips"))
pytestmark = pytest.mark.skipif(not (REFERENCE / "architecture" / "ips_net.py").is_file(),
                                reason=f"no IPS reference checkout at {REFERENCE}")

TASKS = {"task0": {"id": 0, "name": "majority", "act_fn": "softmax", "metric": "accuracy"},
         "task1": {"id": 1, "name": "multi", "act_fn": "sigmoid", "metric": "multilabel_accuracy"}}
SPECS = [TaskSpec("majority", 10), TaskSpec("multi", 10, Activation.SIGMOID, "multilabel_accuracy")]
SIDE, PATCH, M = 200, 50, 4  # N = 16 patches, I = M: both codes then score the same candidate sets


def reference_net(use_pos: bool):
    sys.path.insert(0, str(REFERENCE))
    try:
        from architecture.ips_net import IPSNet
    finally:
        sys.path.remove(str(REFERENCE))
    conf = SimpleNamespace(n_class=10, M=M, I=M, D=128, use_pos=use_pos, tasks=TASKS, shuffle=False,
                           shuffle_style="batch", is_image=True, enc_type="resnet18", pretrained=False, n_chan_in=1,
                           n_res_blocks=2, n_token=2, H=8, D_k=16, D_v=16, D_inner=512, attn_dropout=0.0,
                           dropout=0.0, N=(SIDE // PATCH) ** 2, B=3)
    return IPSNet(torch.device("cpu"), conf)


def dbps_model_with_the_weights_of(net) -> PatchClassifier:
    encoder = create_encoder("resnet18", in_chans=1, stages=2)
    aggregator = create_aggregator("CA", dim=128, num_tasks=2, heads=8, dim_key=16, dim_value=16, dim_ffn=512)
    model = PatchClassifier(encoder, aggregator, SPECS, pos_enc=net.use_pos)
    names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2"]
    ours = {}
    for key, value in net.encoder.state_dict().items():
        index, rest = key.split(".", 1)
        ours[f"encoder.backbone.features.{names[int(index)]}.{rest}"] = value
    attn, mlp = net.transf.crs_attn, net.transf.mlp
    ours |= {"aggregator.query": attn.q, "aggregator.attn.q.weight": attn.q_w.weight,
             "aggregator.attn.k.weight": attn.k_w.weight, "aggregator.attn.v.weight": attn.v_w.weight,
             "aggregator.attn.out.weight": attn.fc.weight, "aggregator.norm_attn.weight": attn.layer_norm.weight,
             "aggregator.norm_attn.bias": attn.layer_norm.bias, "aggregator.mlp.0.weight": mlp.w_1.weight,
             "aggregator.mlp.0.bias": mlp.w_1.bias, "aggregator.mlp.3.weight": mlp.w_2.weight,
             "aggregator.mlp.3.bias": mlp.w_2.bias, "aggregator.norm_mlp.weight": mlp.layer_norm.weight,
             "aggregator.norm_mlp.bias": mlp.layer_norm.bias}
    for task in SPECS:
        layer = net.output_layers[task.name][0]
        ours |= {f"heads.heads.{task.name}.weight": layer.weight, f"heads.heads.{task.name}.bias": layer.bias}
    model.load_state_dict({key: value.detach().clone() for key, value in ours.items()})
    for norm in (model.aggregator.norm_attn, model.aggregator.norm_mlp):
        norm.eps = 1e-6  # the reference's LayerNorm epsilon
    return model


def images(seed: int = 0) -> torch.Tensor:
    """Dark canvases with a few bright digit-sized squares: blank and inked patches to rank."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.zeros(3, 1, SIDE, SIDE)
    for i in range(3):
        for _ in range(4):
            y, z = torch.randint(0, SIDE - 28, (2,), generator=gen).tolist()
            x[i, 0, y : y + 28, z : z + 28] = torch.rand(28, 28, generator=gen)
    return x


def reference_patches(x: torch.Tensor) -> torch.Tensor:
    """The reference dataset's patch layout: (B, N, C, p, p), row-major."""
    p = x.unfold(2, PATCH, PATCH).unfold(3, PATCH, PATCH)  # B, C, nh, nw, p, p
    return p.permute(0, 2, 3, 1, 4, 5).flatten(1, 2)


@pytest.mark.parametrize("use_pos", [False, True], ids=["no-pos", "pos"])
def test_same_weights_give_the_same_selection_predictions_and_gradients(use_pos: bool) -> None:
    torch.manual_seed(0)
    net = reference_net(use_pos)
    if use_pos:  # the reference interleaves sin and cos; ours concatenates them: give the reference our table
        from dbps.models.pos_enc import sinusoidal_encoding

        n = (SIDE // PATCH) ** 2
        net.pos_enc = sinusoidal_encoding(torch.arange(n).unsqueeze(0), 128)
    model = dbps_model_with_the_weights_of(net)
    x = images()
    targets = {"majority": torch.tensor([1, 2, 3]), "multi": torch.randint(0, 2, (3, 10)).float()}

    net.train(), model.train()
    ref_patches, ref_pos = net.ips(reference_patches(x))
    selector = PatchSelector("ips", num_salient=M, chunk_size=M)
    source = ImagePatches(x, PATCH)
    selection = selector.select(model, source, training=True)
    assert torch.equal(source.fetch(selection.salient_idx), ref_patches)  # the same patches, in the same order

    ref_out = net(ref_patches, ref_pos)  # train mode: BatchNorm on the batch's statistics (dropout is off in both)
    out = model(source.fetch(selection.salient_idx), selection.salient_idx, selection.context_emb,
                selection.context_idx)
    torch.testing.assert_close(out["majority"].softmax(-1), ref_out["majority"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out["multi"].sigmoid(), ref_out["multi"], atol=1e-5, rtol=1e-4)

    loss = multitask_loss(out, targets, SPECS)
    ref_loss = (torch.nn.functional.nll_loss(torch.log(ref_out["majority"] + 1e-6), targets["majority"])
                + torch.nn.functional.binary_cross_entropy(ref_out["multi"], targets["multi"])) / 2
    torch.testing.assert_close(loss, ref_loss, atol=1e-4, rtol=1e-4)
    loss.backward(), ref_loss.backward()
    ours = dict(model.named_parameters())
    pairs = [(ours["encoder.backbone.features.layer1.0.conv1.weight"], net.encoder[4][0].conv1.weight),
             (ours["encoder.backbone.features.conv1.weight"], net.encoder[0].weight),
             (ours["aggregator.query"], net.transf.crs_attn.q),
             (ours["aggregator.attn.k.weight"], net.transf.crs_attn.k_w.weight),
             (ours["heads.heads.majority.weight"], net.output_layers["majority"][0].weight)]
    for mine, theirs in pairs:
        torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-4, rtol=1e-3)


def test_five_training_steps_stay_in_lockstep_with_the_reference() -> None:
    """Selection, BatchNorm running statistics and the folded no-gradient pass: the same weights after 5 steps.

    Both use torch's optimisers; plain SGD here, because Adam's first steps move every weight by ±lr whatever the
    size of its gradient, so that rounding-level differences of near-zero gradients would show as lr-sized ones."""
    from dbps.engine.speed import speed_up_encoder
    from dbps.engine.step import train_step

    torch.manual_seed(0)
    net = reference_net(use_pos=False)
    model = dbps_model_with_the_weights_of(net)
    # channels-last convolutions round differently, and 5 steps amplify that: fold alone keeps the comparison exact
    speed_up_encoder(model.encoder, torch.device("cpu"), channels_last=False, fold_batchnorm=True, compile=False)
    ref_opt = torch.optim.SGD(net.parameters(), lr=0.05)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    selector = PatchSelector("ips", num_salient=M, chunk_size=M)
    net.train(), model.train()
    for step in range(5):
        x = images(seed=step)
        targets = {"majority": torch.tensor([1, 2, 3]), "multi": (torch.rand(3, 10) > 0.5).float()}
        ref_patches, ref_pos = net.ips(reference_patches(x))
        out = net(ref_patches, ref_pos)
        ref_loss = (torch.nn.functional.nll_loss(torch.log(out["majority"] + 1e-6), targets["majority"])
                    + torch.nn.functional.binary_cross_entropy(out["multi"], targets["multi"])) / 2
        ref_opt.zero_grad()
        ref_loss.backward()
        ref_opt.step()
        result = train_step(model, selector, ImagePatches(x, PATCH), targets, opt)
        assert torch.equal(ImagePatches(x, PATCH).fetch(result.selection.salient_idx), ref_patches), f"step {step}"
        torch.testing.assert_close(result.loss, ref_loss.detach(), atol=1e-4, rtol=1e-4)
    ours = dict(model.named_parameters()) | dict(model.named_buffers())
    torch.testing.assert_close(ours["encoder.backbone.features.layer2.1.conv2.weight"],
                               net.encoder[5][1].conv2.weight, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours["encoder.backbone.features.layer1.0.bn1.running_var"],
                               net.encoder[4][0].bn1.running_var, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(ours["aggregator.query"], net.transf.crs_attn.q, atol=1e-5, rtol=1e-4)
