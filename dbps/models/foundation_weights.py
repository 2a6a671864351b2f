"""Weights of the named pathology encoders: which local file, read safely, in timm's names, refused when they misfit.

A weights argument is a file (.safetensors, .bin, .pth, .pt), a model folder holding the card's file, or a JSON
file mapping encoder names to such paths (TRIDENT's `local_ckpts.json`: relative paths are relative to the JSON
file). Files are read as tensors only (safetensors, or torch with `weights_only=True`): nothing is unpickled.
transformers DINOv2 checkpoints (Phikon-v2) are renamed to timm's keys. The only adaptation is the position
embedding grid, resampled when a file was saved at another image size (as timm and transformers do); every other
key must be present with its shape, or the file is refused in one line that counts what is missing and unexpected.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch
from torch import Tensor, nn

from dbps.files import read_json
from dbps.models.encoders import WeightsFileError
from dbps.models.pathology import EncoderRecipe
from dbps.models.weights import load_model_state, strip_wrapper_prefixes
from dbps.safe_load import load_safely

log = logging.getLogger(__name__)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
FOLDER_FILES = ("model.safetensors", "pytorch_model.bin")
CONTAINER_KEYS = ("state_dict", "model", "module")  # checkpoints that wrap the state dict


def resolve_weights_file(weights: str | Path, recipe: EncoderRecipe) -> Path:
    """The weights file of `recipe` that `weights` names (a file, a model folder, or a JSON of name → path)."""
    path = Path(weights)
    if path.suffix.lower() == ".json":
        path = _from_json(path, recipe)
    if path.is_dir():
        found = [path / name for name in (recipe.weights_file, *FOLDER_FILES) if (path / name).is_file()]
        if not found:
            raise WeightsFileError(f"{path}: a folder without {recipe.weights_file} (the weights of {recipe.name})")
        path = found[0]
    if not path.is_file():
        raise WeightsFileError(f"{path}: no such weights file")
    return path


def _from_json(path: Path, recipe: EncoderRecipe) -> Path:
    if not path.is_file():
        raise WeightsFileError(f"{path}: no such weights list (a JSON file of encoder name → weights file)")
    try:
        table = read_json(path)
    except ValueError as exc:
        raise WeightsFileError(str(exc)) from None
    names = {recipe.name, recipe.name.replace("_", "-")}  # TRIDENT writes kaiko-vits16
    entry = next((table[key] for key in table if key in names), None)
    if not entry:
        raise WeightsFileError(f"{path}: no weights file for {recipe.name!r} (it lists: {', '.join(table) or 'none'})")
    if not isinstance(entry, str):
        raise WeightsFileError(f"{path}: the entry of {recipe.name!r} must be a path, got {type(entry).__name__}")
    entry_path = Path(entry).expanduser()
    return entry_path if entry_path.is_absolute() else path.parent / entry_path


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """Name → tensor from a safetensors or torch file, unwrapped from a checkpoint dict; one-line error otherwise."""
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = load_safely(path)
    except Exception as exc:  # safetensors raises several types for files it cannot read; load_safely one line
        raise WeightsFileError(f"{path}: not a readable weights file ({' '.join(str(exc).split())})") from None
    while isinstance(state, dict) and len(state) == 1 and next(iter(state)) in CONTAINER_KEYS:
        state = next(iter(state.values()))
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise WeightsFileError(f"{path}: not a state dict (a mapping of names to tensors)")
    return strip_wrapper_prefixes(state)


_HF_RENAMES = (
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.layer_scale(\d)\.lambda1$", r"blocks.\1.ls\2.gamma"),
    (r"^encoder\.layer\.(\d+)\.(norm1|norm2|mlp\.fc1|mlp\.fc2)\.", r"blocks.\1.\2."),
    (r"^layernorm\.", "norm."),
)


def from_hf_dinov2(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """A transformers `Dinov2Model` state dict in timm `VisionTransformer` names (query, key, value → qkv)."""
    state = {key.removeprefix("dinov2."): value for key, value in state.items() if key != "embeddings.mask_token"}
    out: dict[str, Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, value in state.items():
        found = re.match(r"^encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$", key)
        if found:
            block, part, kind = found.groups()
            qkv.setdefault((block, kind), {})[part] = value
            continue
        for pattern, replacement in _HF_RENAMES:
            if re.match(pattern, key):
                key = re.sub(pattern, replacement, key)
                break
        out[key] = value
    for (block, kind), parts in qkv.items():
        if len(parts) == 3:
            out[f"blocks.{block}.attn.qkv.{kind}"] = torch.cat([parts["query"], parts["key"], parts["value"]])
        else:  # an incomplete triple stays under its own names and is reported as unexpected
            out |= {f"encoder.layer.{block}.attention.attention.{part}.{kind}": v for part, v in parts.items()}
    return out


def _fit_position_grid(state: dict[str, Tensor], vit: nn.Module, path: Path) -> dict[str, Tensor]:
    """The file's absolute position embedding resampled to the model's grid when only the grid differs."""
    own, theirs = getattr(vit, "pos_embed", None), state.get("pos_embed")
    if own is None or theirs is None or theirs.shape == own.shape or theirs.shape[-1] != own.shape[-1]:
        return state
    from timm.layers import resample_abs_pos_embed

    prefix = 0 if getattr(vit, "no_embed_class", False) else vit.num_prefix_tokens
    side = round((theirs.shape[1] - prefix) ** 0.5)
    if side * side + prefix != theirs.shape[1]:
        return state  # not a square grid: left for the shape check to refuse
    log.info("note: %s: position embedding resampled from a %d×%d grid to %s", path, side, side,
             "×".join(map(str, vit.patch_embed.grid_size)))
    resampled = resample_abs_pos_embed(theirs.float(), new_size=list(vit.patch_embed.grid_size),
                                       old_size=[side, side], num_prefix_tokens=prefix)
    return state | {"pos_embed": resampled.to(theirs.dtype)}


def load_foundation_weights(vit: nn.Module, path: Path, recipe: EncoderRecipe) -> None:
    """Load `path` into a recipe's timm model, strictly; `WeightsFileError` in one line when it does not fit."""
    state = read_state_dict(path)
    if recipe.weights_layout == "hf_dinov2" or "embeddings.patch_embeddings.projection.weight" in state:
        state = from_hf_dinov2(state)
    state = _fit_position_grid(state, vit, path)
    hint = f"is it the {recipe.weights_file} of {recipe.name} ({recipe.source})?"
    try:
        load_model_state(vit, state, path, hint=hint)
    except ValueError as exc:
        raise WeightsFileError(str(exc)) from None
