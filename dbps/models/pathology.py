"""Named pathology foundation encoders: each model's timm architecture and settings, input, normalisation and pooling.

A recipe is what the model's card builds (and TRIDENT builds under the same name): `uni_v1` is timm's
`vit_large_patch16_224` with `init_values=1e-5`, ImageNet normalisation, the class token, 1,024 features;
`virchow2` pools the class token ⊕ the mean of the patch tokens (registers left out), 2,560 features; the
H-optimus models normalise with their own H&E statistics. Weights always come from a local file (or a JSON file
mapping names to files, like TRIDENT's `local_ckpts.json`): nothing is downloaded, and a named encoder without
weights is refused rather than built with random ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dbps.models.encoders import PatchEncoder, WeightsFileError
from dbps.registry import Registry

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HOPTIMUS = ((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517))  # the H-optimus cards' H&E statistics
KAIKO = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
SWIGLU = {"mlp_layer": "swiglu_packed", "act_layer": "silu"}  # timm classes, named so recipes stay plain data
POOLINGS = ("cls", "cls+mean")


@dataclass(frozen=True)
class EncoderRecipe:
    """How one pathology foundation encoder is built, fed and pooled.

    Attributes:
        name: the registry name (TRIDENT's, with `_` for `-`).
        architecture: the timm model the card builds.
        settings: timm constructor settings (`mlp_layer` / `act_layer` by name: 'swiglu_packed', 'silu').
        mean, std: the normalisation the weights were trained with.
        pooling: 'cls' (the class token) or 'cls+mean' (class token ⊕ mean of the patch tokens, registers left out).
        width: the output width.
        input_size: the side the encoder sees; other patch sizes are resized (and cropped) on the device.
        interpolation: 'bilinear' or 'bicubic', as the card's resize.
        crop_fraction: input_size / the side resized to before a centre crop (GigaPath: 224 / 256).
        weights_layout: 'timm' (the card's state dict) or 'hf_dinov2' (a transformers DINOv2 checkpoint).
        weights_file: the file the card ships.
        source: where the weights are published.
    """

    name: str
    architecture: str
    settings: dict[str, Any]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pooling: str
    width: int
    input_size: int = 224
    interpolation: str = "bilinear"
    crop_fraction: float = 1.0
    weights_layout: str = "timm"
    weights_file: str = "pytorch_model.bin"
    source: str = field(default="", compare=False)

    def timm_settings(self) -> dict[str, Any]:
        from timm.layers import SwiGLUPacked

        classes = {"swiglu_packed": SwiGLUPacked, "silu": nn.SiLU}
        return {key: classes.get(value, value) if isinstance(value, str) and key.endswith("_layer") else value
                for key, value in self.settings.items()}

    def create_backbone(self) -> nn.Module:
        """The timm model with random weights (on the current default device: `torch.device('meta')` works)."""
        import timm

        return timm.create_model(self.architecture, pretrained=False, num_classes=0, **self.timm_settings())

    def tiny(self, depth: int = 1, embed_dim: int = 32, heads: int = 2) -> EncoderRecipe:
        """The same recipe at a tiny depth and width (tests, CPU smoke runs): only the sizes differ."""
        settings = self.settings | {"depth": depth, "embed_dim": embed_dim, "num_heads": heads}
        width = embed_dim * (2 if self.pooling == "cls+mean" else 1)
        return dataclasses.replace(self, settings=settings, width=width)


def _recipes() -> list[EncoderRecipe]:
    hub = "https://huggingface.co/"
    uni = {"img_size": 224, "patch_size": 16, "init_values": 1e-5, "dynamic_img_size": True}
    uni2 = {"img_size": 224, "patch_size": 14, "depth": 24, "num_heads": 24, "init_values": 1e-5, "embed_dim": 1536,
            "mlp_ratio": 2.66667 * 2, "no_embed_class": True, "reg_tokens": 8, "dynamic_img_size": True, **SWIGLU}
    virchow = {"img_size": 224, "init_values": 1e-5, "mlp_ratio": 5.3375, "global_pool": "", "dynamic_img_size": True,
               **SWIGLU}
    hoptimus = {"img_size": 224, "init_values": 1e-5, "global_pool": "token", "dynamic_img_size": True}
    gigapath = {"img_size": 224, "patch_size": 16, "embed_dim": 1536, "depth": 40, "num_heads": 24,
                "mlp_ratio": 5.33334, "dynamic_img_size": True}  # SwiGLU, SiLU and LayerScale from the timm model
    recipes = [
        EncoderRecipe("uni_v1", "vit_large_patch16_224", uni, *IMAGENET, "cls", 1024, source=hub + "MahmoodLab/UNI"),
        EncoderRecipe("uni_v2", "vit_giant_patch14_224", uni2, *IMAGENET, "cls", 1536,
                      source=hub + "MahmoodLab/UNI2-h"),
        EncoderRecipe("virchow", "vit_huge_patch14_224", virchow, *IMAGENET, "cls+mean", 2560, interpolation="bicubic",
                      source=hub + "paige-ai/Virchow"),
        EncoderRecipe("virchow2", "vit_huge_patch14_224", virchow | {"reg_tokens": 4}, *IMAGENET, "cls+mean", 2560,
                      interpolation="bicubic", source=hub + "paige-ai/Virchow2"),
        EncoderRecipe("hoptimus0", "vit_giant_patch14_reg4_dinov2", hoptimus, *HOPTIMUS, "cls", 1536,
                      source=hub + "bioptimus/H-optimus-0"),
        EncoderRecipe("hoptimus1", "vit_giant_patch14_reg4_dinov2", hoptimus, *HOPTIMUS, "cls", 1536,
                      source=hub + "bioptimus/H-optimus-1"),
        EncoderRecipe("gigapath", "vit_giant_patch14_dinov2", gigapath, *IMAGENET, "cls", 1536,
                      interpolation="bicubic", crop_fraction=224 / 256, source=hub + "prov-gigapath/prov-gigapath"),
        EncoderRecipe("phikon_v2", "vit_large_patch16_224", {"img_size": 224, "init_values": 1e-5,
                      "dynamic_img_size": True}, *IMAGENET, "cls", 1024, weights_layout="hf_dinov2",
                      weights_file="model.safetensors", source=hub + "owkin/phikon-v2"),
    ]
    for variant, architecture, width, img_size in (
        ("vits16", "vit_small_patch16_224", 384, 224), ("vits8", "vit_small_patch8_224", 384, 224),
        ("vitb16", "vit_base_patch16_224", 768, 224), ("vitb8", "vit_base_patch8_224", 768, 224),
        ("vitl14", "vit_large_patch14_reg4_dinov2", 1024, 518),  # built at 518 as published, fed 224
    ):
        source = f"{hub}1aurent/{architecture}.kaiko_ai_towards_large_pathology_fms"
        settings = {"img_size": img_size, "dynamic_img_size": True}
        recipes.append(EncoderRecipe(f"kaiko_{variant}", architecture, settings, *KAIKO, "cls", width,
                                     weights_file="model.safetensors", source=source))
    return recipes


PATHOLOGY_ENCODERS: Registry[EncoderRecipe] = Registry("pathology encoder")
for _recipe in _recipes():
    PATHOLOGY_ENCODERS.register(_recipe.name)(lambda recipe=_recipe: recipe)


def pathology_recipe(name: str) -> EncoderRecipe | None:
    """The recipe of a named pathology encoder (TRIDENT's spelling `kaiko-vits16` too), or None."""
    key = name.replace("-", "_")
    return PATHOLOGY_ENCODERS.create(key) if key in PATHOLOGY_ENCODERS else None


def fit_input(x: Tensor, size: int, crop_fraction: float = 1.0, interpolation: str = "bilinear") -> Tensor:
    """Patches (n, C, h, w) resized so their side is size / crop_fraction, then centre-cropped to size × size."""
    side = round(size / crop_fraction)
    if x.shape[-2:] != (side, side):
        resized = F.interpolate(x.float(), size=(side, side), mode=interpolation, antialias=True, align_corners=False)
        x = resized.to(x.dtype)  # antialiased resizing has no bf16 kernel on CPUs
    top = (side - size) // 2
    return x[..., top : top + size, top : top + size]


class FoundationBackbone(nn.Module):
    """A recipe's ViT with its input geometry and pooling: (n, 3, h, w) normalised patches → (n, width)."""

    def __init__(self, recipe: EncoderRecipe, vit: nn.Module) -> None:
        super().__init__()
        if recipe.pooling not in POOLINGS:
            raise ValueError(f"{recipe.name}: pooling must be one of {POOLINGS}, got {recipe.pooling!r}")
        self.recipe = recipe
        self.vit = vit
        self.embed_dim = recipe.width
        # what these weights expect, where feature extraction looks for it (timm's convention)
        vit.pretrained_cfg = {**getattr(vit, "pretrained_cfg", {}), "mean": recipe.mean, "std": recipe.std,
                              "input_size": (3, recipe.input_size, recipe.input_size)}

    def forward(self, x: Tensor) -> Tensor:
        r = self.recipe
        tokens = self.vit.forward_features(fit_input(x, r.input_size, r.crop_fraction, r.interpolation))
        cls = tokens[:, 0]
        if r.pooling == "cls":
            return cls
        return torch.cat([cls, tokens[:, self.vit.num_prefix_tokens :].mean(dim=1)], dim=-1)


def create_pathology_encoder(
    name: str,
    *,
    weights: str | Path | None = None,
    dim: int | None = None,
    random_weights: bool = False,
    recipe: EncoderRecipe | None = None,
) -> PatchEncoder:
    """A named pathology encoder with its weights from a local file, projected to `dim` when given.

    Args:
        name: a registered name ('uni_v1', 'virchow2', 'kaiko_vits16', …).
        weights: the weights file (.safetensors, .bin, .pth), its folder, or a JSON file of name → file.
        dim: output width D; a projector is appended when it differs from the recipe's.
        random_weights: build with random weights when no file is given (tests, smoke runs); never implied.
        recipe: use this recipe instead of the registered one (e.g. its `tiny()` variant).

    Raises:
        WeightsFileError: no weights given (and not `random_weights`), or a file that does not fit, in one line.
    """
    from dbps.models.foundation_weights import load_foundation_weights, resolve_weights_file

    recipe = recipe or pathology_recipe(name)
    if recipe is None:
        PATHOLOGY_ENCODERS.get(name)  # raises the unknown-name error with the known names
        raise AssertionError("unreachable")
    if weights is None and not random_weights:
        raise WeightsFileError(f"encoder {recipe.name!r} needs its weights: pass a local file ({recipe.weights_file} "
                               f"from {recipe.source}) or a JSON file of name → file as the weights")
    path = resolve_weights_file(weights, recipe) if weights is not None else None  # before a billion parameters
    vit = recipe.create_backbone()
    if path is not None:
        load_foundation_weights(vit, path, recipe)
    return PatchEncoder(FoundationBackbone(recipe, vit), recipe.width, dim)
