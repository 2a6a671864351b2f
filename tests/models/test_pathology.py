"""Named pathology encoders: each recipe's architecture (built on the meta device at full size), tiny variants with
weights saved and loaded again, pooling, normalisation, and the refusal of weights files that do not fit."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from dbps.engine.extract import normalisation
from dbps.models import create_encoder
from dbps.models.encoders import WeightsFileError
from dbps.models.pathology import (
    HOPTIMUS,
    IMAGENET,
    PATHOLOGY_ENCODERS,
    FoundationBackbone,
    create_pathology_encoder,
    fit_input,
    pathology_recipe,
)

# what the model cards (and TRIDENT's builders) say: width D, depth, patch side, prefix tokens (class + registers),
# hidden width of the first MLP layer (SwiGLU packs gate and value: 2 × hidden), output width, LayerScale
CARDS = {
    "uni_v1": (1024, 24, 16, 1, 4096, 1024, True),
    "uni_v2": (1536, 24, 14, 9, 8192, 1536, True),
    "virchow": (1280, 32, 14, 1, 6832, 2560, True),
    "virchow2": (1280, 32, 14, 5, 6832, 2560, True),
    "hoptimus0": (1536, 40, 14, 5, 8192, 1536, True),
    "hoptimus1": (1536, 40, 14, 5, 8192, 1536, True),
    "gigapath": (1536, 40, 16, 1, 8192, 1536, True),
    "phikon_v2": (1024, 24, 16, 1, 4096, 1024, True),
    "kaiko_vits16": (384, 12, 16, 1, 1536, 384, False),  # DINO ViTs: no LayerScale
    "kaiko_vits8": (384, 12, 8, 1, 1536, 384, False),
    "kaiko_vitb16": (768, 12, 16, 1, 3072, 768, False),
    "kaiko_vitb8": (768, 12, 8, 1, 3072, 768, False),
    "kaiko_vitl14": (1024, 24, 14, 5, 4096, 1024, True),  # DINOv2 with 4 registers
}


def test_every_registered_encoder_has_its_card() -> None:
    assert set(PATHOLOGY_ENCODERS.names()) == set(CARDS)


@pytest.mark.parametrize("name", sorted(CARDS))
def test_full_size_architecture_is_the_cards(name: str) -> None:
    recipe = pathology_recipe(name)
    with torch.device("meta"):  # shapes only: a billion parameters cost nothing here
        vit = recipe.create_backbone()
        out = FoundationBackbone(recipe, vit)(torch.empty(2, 3, 224, 224))
    width, depth, patch, prefix, hidden, out_width, layer_scale = CARDS[name]
    state = vit.state_dict()
    assert (vit.embed_dim, len(vit.blocks), vit.patch_embed.patch_size[0]) == (width, depth, patch)
    assert vit.num_prefix_tokens == prefix and state["blocks.0.mlp.fc1.weight"].shape[0] == hidden
    assert ("blocks.0.ls1.gamma" in state) == layer_scale
    assert out.shape == (2, out_width) == (2, recipe.width)


def _vit_state(encoder: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in encoder.backbone.vit.state_dict().items()}


@pytest.mark.parametrize("name", sorted(CARDS))
def test_tiny_variant_embeds_and_its_saved_weights_load_back(name: str, tmp_path) -> None:
    tiny = pathology_recipe(name).tiny()
    encoder = create_pathology_encoder(name, recipe=tiny, random_weights=True).eval()
    patches = torch.randn(3, 3, tiny.input_size, tiny.input_size)
    with torch.no_grad():
        reference = encoder(patches)
        assert encoder(torch.randn(2, 3, 256, 256)).shape == (2, tiny.width)  # other patch sizes are resized
    assert reference.shape == (3, tiny.width)
    path = tmp_path / tiny.weights_file
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in _vit_state(encoder).items()}, str(path))
    else:
        torch.save(_vit_state(encoder), path)
    again = create_pathology_encoder(name, weights=path, recipe=tiny).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(patches), reference)


def test_cls_plus_mean_pooling_leaves_the_registers_out() -> None:
    tiny = pathology_recipe("virchow2").tiny()
    encoder = create_pathology_encoder("virchow2", recipe=tiny, random_weights=True).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        tokens = encoder.backbone.vit.forward_features(x)
        out = encoder(x)
    assert tokens.shape[1] == 1 + 4 + 256  # class token, 4 registers, 16 × 16 patches
    torch.testing.assert_close(out, torch.cat([tokens[:, 0], tokens[:, 5:].mean(1)], dim=-1))
    assert not torch.allclose(out[:, 32:], tokens[:, 1:].mean(1))


def test_normalisation_is_each_models_own() -> None:
    assert pathology_recipe("hoptimus0").mean == HOPTIMUS[0] != IMAGENET[0]
    assert pathology_recipe("kaiko_vitb8").std == (0.5, 0.5, 0.5)
    assert pathology_recipe("uni_v1").mean == IMAGENET[0] == pathology_recipe("virchow2").mean
    for name, expected in (("hoptimus1", HOPTIMUS), ("uni_v2", IMAGENET), ("kaiko-vits16", ((0.5,) * 3, (0.5,) * 3))):
        tiny = pathology_recipe(name).tiny()
        encoder = create_pathology_encoder(name, recipe=tiny, random_weights=True)
        assert normalisation(encoder) == expected  # what extract-features normalises patches with


def test_gigapath_crops_the_centre_of_a_256_patch_and_others_resize() -> None:
    x = torch.randn(1, 3, 256, 256)
    torch.testing.assert_close(fit_input(x, 224, 224 / 256, "bicubic"), x[..., 16:240, 16:240])
    resized = fit_input(x, 224)
    assert resized.shape[-2:] == (224, 224)
    torch.testing.assert_close(fit_input(resized, 224), resized)


def _hf_dinov2_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A timm ViT state dict written the way transformers' Dinov2Model names it (q, k, v split)."""
    out = {"embeddings.cls_token": state["cls_token"], "embeddings.position_embeddings": state["pos_embed"],
           "embeddings.mask_token": torch.zeros(1, state["cls_token"].shape[-1]),
           "layernorm.weight": state["norm.weight"], "layernorm.bias": state["norm.bias"]}
    for kind in ("weight", "bias"):
        out[f"embeddings.patch_embeddings.projection.{kind}"] = state[f"patch_embed.proj.{kind}"]
    blocks = {key.split(".")[1] for key in state if key.startswith("blocks.")}
    for i in blocks:
        b, layer = f"blocks.{i}.", f"encoder.layer.{i}."
        for kind in ("weight", "bias"):
            q, k, v = state[b + f"attn.qkv.{kind}"].chunk(3)
            out |= {layer + f"attention.attention.{part}.{kind}": t for part, t in zip("qkv", (q, k, v), strict=True)}
            out[layer + f"attention.output.dense.{kind}"] = state[b + f"attn.proj.{kind}"]
            for name in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                out[layer + f"{name}.{kind}"] = state[b + f"{name}.{kind}"]
        out[layer + "layer_scale1.lambda1"], out[layer + "layer_scale2.lambda1"] = state[b + "ls1.gamma"], state[
            b + "ls2.gamma"
        ]
    return {key.replace("attention.attention.q.", "attention.attention.query.").replace(
        "attention.attention.k.", "attention.attention.key.").replace("attention.attention.v.",
        "attention.attention.value."): value.contiguous() for key, value in out.items()}


def test_phikon_v2_reads_a_transformers_dinov2_checkpoint(tmp_path) -> None:
    tiny = pathology_recipe("phikon_v2").tiny(depth=2)
    encoder = create_pathology_encoder("phikon_v2", recipe=tiny, random_weights=True).eval()
    folder = tmp_path / "phikon-v2"
    folder.mkdir()
    save_file(_hf_dinov2_names(_vit_state(encoder)), str(folder / "model.safetensors"))
    again = create_pathology_encoder("phikon_v2", weights=folder, recipe=tiny).eval()  # a model folder, as TRIDENT
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(again(x), encoder(x))


def test_a_file_saved_at_another_image_size_gets_its_position_grid_resampled(tmp_path) -> None:
    tiny = pathology_recipe("uni_v1").tiny()
    big = pathology_recipe("uni_v1").tiny()
    big = type(big)(**{**big.__dict__, "settings": big.settings | {"img_size": 448}})
    saved = create_pathology_encoder("uni_v1", recipe=big, random_weights=True)
    torch.save(_vit_state(saved), tmp_path / "uni448.bin")
    loaded = create_pathology_encoder("uni_v1", weights=tmp_path / "uni448.bin", recipe=tiny)
    assert loaded.backbone.vit.pos_embed.shape == (1, 197, 32)
    qkv = loaded.backbone.vit.blocks[0].attn.qkv.weight
    torch.testing.assert_close(qkv, saved.backbone.vit.blocks[0].attn.qkv.weight)


def test_weights_that_do_not_fit_are_refused_in_one_line_with_counts(tmp_path) -> None:
    uni, virchow = pathology_recipe("uni_v1").tiny(), pathology_recipe("virchow2").tiny()
    state = _vit_state(create_pathology_encoder("uni_v1", recipe=uni, random_weights=True))
    torch.save(state, tmp_path / "uni.bin")
    with pytest.raises(WeightsFileError) as wrong:
        create_pathology_encoder("virchow2", weights=tmp_path / "uni.bin", recipe=virchow)
    message = str(wrong.value)
    assert "\n" not in message and "uni.bin" in message and "virchow2" in message
    assert "1 missing (e.g. reg_token)" in message and "of another shape" in message
    partial = dict(list(state.items())[: len(state) // 2])
    torch.save(partial, tmp_path / "partial.bin")
    with pytest.raises(WeightsFileError, match=rf"{len(state) - len(partial)} missing"):
        create_pathology_encoder("uni_v1", weights=tmp_path / "partial.bin", recipe=uni)
    torch.save(state | {"head.weight": torch.zeros(2, 32)}, tmp_path / "extra.bin")
    with pytest.raises(WeightsFileError, match=r"1 unexpected \(e\.g\. head\.weight\)"):
        create_pathology_encoder("uni_v1", weights=tmp_path / "extra.bin", recipe=uni)
    (tmp_path / "truncated.bin").write_bytes((tmp_path / "uni.bin").read_bytes()[:1000])
    with pytest.raises(WeightsFileError, match=r"truncated\.bin: not a readable weights file"):
        create_pathology_encoder("uni_v1", weights=tmp_path / "truncated.bin", recipe=uni)
    (tmp_path / "pickle.pth").write_bytes(b"\x80\x02c__builtin__\neval\n")  # a pickle: never unpickled
    with pytest.raises(WeightsFileError, match="not a readable weights file"):
        create_pathology_encoder("uni_v1", weights=tmp_path / "pickle.pth", recipe=uni)


def test_a_named_encoder_never_falls_back_to_random_weights(tmp_path) -> None:
    with pytest.raises(WeightsFileError, match=r"'uni_v1' needs its weights.*MahmoodLab/UNI"):
        create_encoder("uni_v1")
    with pytest.raises(WeightsFileError, match=r"missing\.bin: no such weights file"):
        create_encoder("virchow2", weights=tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="drop pretrained"):
        create_encoder("uni_v1", pretrained=True)


def test_a_json_file_maps_names_to_weights_as_tridents_local_ckpts(tmp_path) -> None:
    tiny = pathology_recipe("kaiko_vits16").tiny()
    state = _vit_state(create_pathology_encoder("kaiko_vits16", recipe=tiny, random_weights=True))
    (tmp_path / "ckpts").mkdir()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "ckpts" / "kaiko.safetensors"))
    table = tmp_path / "local_ckpts.json"
    table.write_text(json.dumps({"uni_v1": "", "kaiko-vits16": "ckpts/kaiko.safetensors"}))
    loaded = create_pathology_encoder("kaiko_vits16", weights=table, recipe=tiny)
    torch.testing.assert_close(loaded.backbone.vit.cls_token, state["cls_token"])
    with pytest.raises(WeightsFileError, match=r"local_ckpts\.json: no weights file for 'uni_v1'"):
        create_pathology_encoder("uni_v1", weights=table, recipe=pathology_recipe("uni_v1").tiny())
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(WeightsFileError, match=r"broken\.json: not valid JSON"):
        create_pathology_encoder("uni_v1", weights=tmp_path / "broken.json")


def test_projected_to_dim_and_unknown_names_are_named() -> None:
    tiny = pathology_recipe("hoptimus0").tiny()
    encoder = create_pathology_encoder("hoptimus0", recipe=tiny, random_weights=True, dim=8)
    assert encoder.embed_dim == 8 and encoder(torch.rand(2, 3, 224, 224)).shape == (2, 8)
    with pytest.raises(ValueError, match=r"unknown pathology encoder 'uni_v3'.*did you mean"):
        create_pathology_encoder("uni_v3")
