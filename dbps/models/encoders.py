"""Patch encoders: any timm backbone (optionally truncated), a small CNN, and a feature projector.

Every encoder maps (n, *patch_shape) → (n, D) and exposes `embed_dim`. Names are looked up in the
registry first ('small_cnn', 'projector'); any other name is a timm model. Nothing is downloaded:
weights are random unless `weights` points to a local file.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dbps.models.folding import FoldedBackbone
from dbps.models.weights import load_model_state
from dbps.registry import Registry, unknown_name_message
from dbps.safe_load import load_safely, torch_error

ENCODERS: Registry[nn.Module] = Registry("encoder")


class PretrainedWeightsUnavailable(ValueError):
    """`pretrained=True` but the weights can be had neither from the hub nor from the local cache."""


class WeightsFileError(ValueError):
    """A local weights file that is missing, unreadable, or holds the weights of another model."""


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over embeddings that also takes a single one in training (with the running statistics).

    The gradient pass may hold one patch (one image, M = 1): batch statistics of one value are undefined.
    """

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class FeatureProjector(nn.Sequential):
    """LayerNorm(F, no affine) → Linear(F→D) → BatchNorm1d(D) → ReLU: the IPS projector for features."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__(
            nn.LayerNorm(in_dim, elementwise_affine=False), nn.Linear(in_dim, dim), TokenBatchNorm(dim), nn.ReLU()
        )
        self.embed_dim = dim


class PatchEncoder(nn.Module):
    """A pooled backbone (n, *patch) → (n, F), followed by a projector to D when F ≠ D.

    After `fold_batchnorm`, eval-mode forwards without gradients (selection, evaluation) run the backbone with
    its BatchNorms folded into the convolutions; training forwards always run the backbone itself.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, dim: int | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.project = FeatureProjector(feature_dim, dim) if dim is not None and dim != feature_dim else nn.Identity()
        self.embed_dim = dim if dim is not None else feature_dim
        self.channels_last = False
        self.folded: FoldedBackbone | None = None

    def forward(self, patches: Tensor) -> Tensor:
        if patches.dim() == 4 and self.channels_last:
            patches = patches.contiguous(memory_format=torch.channels_last)
        if self.folded is not None and not self.training and not torch.is_grad_enabled():
            return self.project(self.folded(patches))
        return self.project(self.backbone(patches))

    def fold_batchnorm(self) -> bool:
        """Fold BatchNorm into convolutions for no-gradient eval forwards; False when the backbone has no pair."""
        self.folded = FoldedBackbone.create(self.backbone)
        return self.folded is not None

    def to_channels_last(self) -> PatchEncoder:
        """Channels-last weights and inputs: faster convolutions with tensor cores."""
        self.channels_last = True
        return self.to(memory_format=torch.channels_last)


class _PooledFeatures(nn.Module):
    """Global average pool of the last feature map of a truncated timm backbone."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.features = features

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)[-1].mean(dim=(-2, -1))


@ENCODERS.register("small_cnn")
def small_cnn(in_chans: int = 1, widths: tuple[int, ...] = (16, 32, 64, 64), **_: object) -> PatchEncoder:
    """Stride-2 3×3 conv–BN–ReLU stages and a global pool: a fast encoder for CPU runs and tests."""
    layers: list[nn.Module] = []
    channels = in_chans
    for width in widths:
        layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        channels = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return PatchEncoder(nn.Sequential(*layers), channels)


@ENCODERS.register("projector")
def projector(in_dim: int, dim: int, **_: object) -> PatchEncoder:
    """For pre-extracted feature bags: the projector alone, F → D."""
    return PatchEncoder(nn.Identity(), in_dim, dim)


def is_timm_model(name: str) -> bool:
    """Whether timm knows `name` (timm is imported here, when first needed: it costs a second at start-up)."""
    import timm

    return timm.is_model(name)


def timm_encoder(
    name: str,
    in_chans: int = 3,
    stages: int | None = None,
    weights: str | Path | None = None,
    pretrained: bool = False,
    zero_init_last: bool | None = None,
) -> PatchEncoder:
    """A timm backbone as a pooled feature extractor, truncated after `stages` stages when given.

    `stages=2` on 'resnet18' keeps the stem, layer1 and layer2 (128-d): the Megapixel MNIST encoder.
    `pretrained=True` fetches timm's hub weights (needs a network); `weights` reads a local file instead.
    `zero_init_last` (residual networks): γ = 0 on each block's last BatchNorm at initialisation; None keeps the
    model's default (timm: True; torchvision and the IPS reference: False).
    """
    import timm

    if not timm.is_model(name):
        from dbps.models.pathology import PATHOLOGY_ENCODERS

        known = ENCODERS.names() + PATHOLOGY_ENCODERS.names() + timm.list_models(f"*{name[:4]}*")
        raise ValueError(unknown_name_message("encoder", name, known))
    kwargs: dict[str, object] = {"in_chans": in_chans, "pretrained": pretrained}
    if zero_init_last is not None:
        kwargs["zero_init_last"] = zero_init_last
    if weights is not None:
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(_weights_file(weights))})
    missing: list[str] = []
    try:
        with _weights_timm_missed(missing):
            if stages is None:
                backbone = timm.create_model(name, num_classes=0, **kwargs)
            else:
                features = timm.create_model(name, num_classes=0, features_only=True, out_indices=(stages,), **kwargs)
    except TypeError as exc:
        if zero_init_last is not None and "zero_init_last" in str(exc):
            raise ValueError(f"{name!r} has no zero_init_last setting (residual networks have it)") from None
        raise
    except Exception as exc:  # torch and safetensors raise several types for files they cannot read
        if weights is not None:
            raise WeightsFileError(f"{weights}: not readable as weights of {name!r} ({torch_error(exc)})") from None
        if not pretrained or not isinstance(exc, OSError):
            raise
        # the hub is unreachable and the weights are not in the local cache
        raise PretrainedWeightsUnavailable(
            f"ImageNet weights for {name!r} could not be had ({type(exc).__name__}: no network and not in the local "
            "cache); set model.weights=PATH to a local state dict, or pretrained=False to train from random weights"
        ) from None
    if weights is not None and missing:
        raise WeightsFileError(f"{weights}: lacks {len(missing)} weights of {name!r} (e.g. {', '.join(missing[:3])}); "
                               "the weights of another model?")
    if stages is None:
        return PatchEncoder(backbone, backbone.num_features)
    return PatchEncoder(_PooledFeatures(features), features.feature_info.channels()[-1])


@contextmanager
def _weights_timm_missed(missing: list[str]) -> Iterator[None]:
    """Collect the weights timm reports missing while it loads a weights file (it loads them non-strictly)."""
    logger = logging.getLogger("timm.models._builder")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found = re.match(r"Missing keys \((.*)\) discovered", record.getMessage())
            if found:
                missing.extend(found.group(1).split(", "))

    handler, level = Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(min(level or logging.INFO, logging.INFO))
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def create_encoder(
    name: str,
    *,
    in_chans: int = 3,
    dim: int | None = None,
    stages: int | None = None,
    weights: str | Path | None = None,
    pretrained: bool = False,
    in_dim: int | None = None,
    zero_init_last: bool | None = None,
    widths: Sequence[int] | None = None,
) -> PatchEncoder:
    """Build a patch encoder by name, projected to `dim` when its output width differs.

    Args:
        name: 'small_cnn', 'projector' (feature bags), a named pathology encoder ('uni_v1', 'virchow2', …: see
            `dbps.models.pathology`) or any timm model name ('resnet18', 'convnext_tiny', …).
        in_chans: image channels.
        dim: output width D; a projector is appended when the backbone's width differs.
        stages: keep only the first `stages` stages of a timm backbone.
        weights: a local weights file (timm: .safetensors/.pth/.bin; others: a torch state dict).
        pretrained: timm hub weights (needs a network).
        in_dim: feature width F, for 'projector'.
        zero_init_last: timm residual networks: γ = 0 on each block's last BatchNorm at initialisation (None: the
            model's default).
        widths: 'small_cnn': the channels of its stages (None: its default).
    """
    from dbps.models.pathology import create_pathology_encoder, pathology_recipe

    if widths is not None and name.lower() != "small_cnn":
        raise ValueError(f"only small_cnn takes stage widths, not {name!r}: drop model.encoder_widths")
    if pathology_recipe(name) is not None:
        if pretrained or stages is not None or in_chans != 3:
            raise ValueError(f"encoder {name!r} is built as its model card says, from RGB patches and local weights: "
                             "drop pretrained, stages and in_chans")
        return create_pathology_encoder(name, weights=weights, dim=dim)
    if name in ENCODERS:
        if name.lower() == "projector":
            if in_dim is None or dim is None:
                raise ValueError("encoder 'projector' needs in_dim (feature width) and dim")
            encoder = ENCODERS.create(name, in_dim=in_dim, dim=dim)
        else:
            base = ENCODERS.create(name, in_chans=in_chans, **({"widths": tuple(widths)} if widths else {}))
            encoder = PatchEncoder(base.backbone, base.embed_dim, dim)
        if weights is not None:
            _load_weights(encoder, _weights_file(weights))
        return encoder
    base = timm_encoder(name, in_chans=in_chans, stages=stages, weights=weights, pretrained=pretrained,
                        zero_init_last=zero_init_last)
    return PatchEncoder(base.backbone, base.embed_dim, dim)


def _weights_file(weights: str | Path) -> Path:
    path = Path(weights)
    if not path.is_file():
        raise WeightsFileError(f"{path}: no such weights file")
    return path


def _load_weights(encoder: nn.Module, path: Path) -> None:
    """Load a state dict file saved from this encoder; a mismatch names the file and the keys."""
    try:
        state = load_safely(path)
    except ValueError as exc:
        raise WeightsFileError(f"{path}: not a readable weights file ({exc})") from None
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise WeightsFileError(f"{path}: not a state dict (a mapping of names to tensors)")
    try:
        load_model_state(encoder, state, path)
    except ValueError as exc:
        raise WeightsFileError(str(exc)) from None
