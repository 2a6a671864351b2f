"""Objects made from a Config: device, data, tasks, model, patch sources."""

from __future__ import annotations

import dataclasses
import logging
import random
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dbps.config import Config, ConfigError
from dbps.data import DATASETS, DataSplits, make_megapixel_mnist
from dbps.engine.speed import autocast_dtype, speed_up_encoder
from dbps.models import PatchClassifier, TaskSpec, create_aggregator, create_encoder
from dbps.patches import ImagePatches, grid_shape

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; anything else as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name!r} requested but CUDA is not available")
    return device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def prepare_data(config: Config, progress: bool = True) -> DataSplits:
    """The dataset's splits; Megapixel MNIST is generated first when `data.generate` is set and it is missing."""
    data = config.data
    if data.generate is not None and not (Path(data.root) / "meta.json").is_file():
        if data.name != "megapixel_mnist":
            raise ConfigError(f"data.generate: only megapixel_mnist can be generated, not {data.name!r}")
        log.info("generating Megapixel MNIST into %s", data.root)
        make_megapixel_mnist(data.root, **dataclasses.asdict(data.generate), progress=progress)
    names = [task.name for task in config.tasks] or None
    splits = DATASETS.get(data.name)(data.root, val_fraction=data.val_fraction, seed=config.train.seed, tasks=names)
    _, height, width = splits.image_shape
    try:
        rows, cols = grid_shape(height, width, config.patches.size, config.patches.stride)
    except ValueError as exc:
        raise ConfigError(f"patches.size: {exc}") from None
    expected = config.patches.num_patches
    if expected is not None and expected != rows * cols:
        raise ConfigError(
            f"patches.num_patches (N) is {expected}, but a {height}×{width} image gives {rows}×{cols} = {rows * cols}"
        )
    return splits


def resolve_tasks(config: Config, dataset_tasks: list[TaskSpec]) -> list[TaskSpec]:
    """The dataset's tasks in the config's order, with the config's overrides (classes, activation, metric)."""
    by_name = {task.name: task for task in dataset_tasks}
    if not config.tasks:
        return list(dataset_tasks)
    tasks = []
    for wanted in config.tasks:
        if wanted.name not in by_name:
            raise ConfigError(f"tasks: {wanted.name!r} is not a task of this dataset ({', '.join(by_name)})")
        base = by_name[wanted.name]
        tasks.append(
            TaskSpec(
                base.name,
                wanted.num_classes or config.model.num_classes or base.num_classes,
                wanted.activation or base.activation,
                wanted.metric or base.metric,
            )
        )
    return tasks


def build_model(config: Config, tasks: list[TaskSpec], in_chans: int) -> PatchClassifier:
    m = config.model
    encoder = create_encoder(
        m.encoder,
        in_chans=m.in_chans or in_chans,
        dim=m.dim,
        stages=m.encoder_stages,
        weights=m.weights,
        pretrained=m.pretrained,
    )
    aggregator = create_aggregator(
        m.aggregator,
        dim=m.dim,
        num_tasks=len(tasks),
        heads=m.heads,
        dim_key=m.dim_key,
        dim_value=m.dim_value,
        dim_ffn=m.dim_ffn,
        dropout=m.dropout,
        attn_dropout=m.attn_dropout,
    )
    return PatchClassifier(encoder, aggregator, tasks, pos_enc=m.pos_enc)


def amp_dtype(config: Config, device: torch.device) -> torch.dtype | None:
    """bf16 autocast when `train.amp` is set and the device has native bf16 (see `speed.autocast_dtype`)."""
    return autocast_dtype(device, amp=config.train.amp, amp_cpu=config.train.amp_cpu)


def place_model(model: PatchClassifier, config: Config, device: torch.device) -> PatchClassifier:
    """Move the model to `device` with the config's speed options (see `speed.speed_up_encoder`)."""
    model = model.to(device)
    t = config.train
    speed_up_encoder(model.encoder, device, channels_last=t.channels_last, fold_batchnorm=t.fold_batchnorm,
                     compile=t.compile)  # fmt: skip
    return model


def make_source(images: Tensor, config: Config, splits: DataSplits, dtype: torch.dtype | None = None) -> ImagePatches:
    """The patch grid of a dense batch on its device, normalised as the dataset asks.

    `dtype` (e.g. the autocast dtype) is what integer images are converted to, patch by patch.
    """
    return ImagePatches(
        images, config.patches.size, config.patches.stride, mean=splits.mean, std=splits.std,
        dtype=dtype or torch.float32,
    )  # fmt: skip
