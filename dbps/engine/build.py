"""Building a run: the one place that turns a config (or a checkpoint) into device, data, tasks, model and selector.

Training, evaluation, prediction and benchmarks all start from `Run.from_config` / `Run.from_checkpoint`, and
`check_config` names every unknown dataset, encoder, aggregator, metric or device before anything is written.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from dbps.choices import hed_sigma
from dbps.config import AugmentConfig, Config, ConfigError, config_from_dict, read_yaml
from dbps.data import (
    Collate,
    DataRequest,
    DataSplits,
    DevicePrefetcher,
    EpochSampler,
    PatchSpec,
    TrainAugment,
    build_loader,
    dataset_kind,
)
from dbps.data.augment import Compose
from dbps.data.batches import Erasing
from dbps.data.kinds import DATASETS, PrepareRequest
from dbps.data.stain_augment import HEDJitter, StainNormaliser
from dbps.engine.checkpoint import load_checkpoint
from dbps.engine.distributed import Distributed, process_device
from dbps.engine.memory import keep_freed_host_memory
from dbps.engine.speed import autocast_dtype, speed_up_encoder
from dbps.metrics import METRICS, task_metric
from dbps.models import AGGREGATORS, ENCODERS, PatchClassifier, create_aggregator, create_encoder
from dbps.models.encoders import PretrainedWeightsUnavailable, WeightsFileError, is_timm_model
from dbps.models.pathology import PATHOLOGY_ENCODERS, pathology_recipe
from dbps.models.weights import load_model_state
from dbps.patches import grid_shape, to_pair
from dbps.registry import unknown_name_message
from dbps.selection import PatchSelector
from dbps.tasks import Activation, TaskSpec

log = logging.getLogger(__name__)


def parse_device(name: str) -> torch.device:
    """A device this machine has, as torch spells it: 'cpu', 'cuda', 'cuda:1'; ValueError naming it otherwise."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{name!r} is not supported; use cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name!r} requested but CUDA is not available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{name!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


def resolve_device(name: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; anything else as `parse_device` reads it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return parse_device(name)
    except ValueError as exc:
        raise ConfigError(f"train.device: {exc}") from None


def check_config(config: Config) -> None:
    """Every name the config uses (dataset, encoder, aggregator, metrics, device) exists; all problems at once."""
    errors: list[str] = []
    m = config.model

    def check(key: str, lookup: Any) -> None:
        try:
            lookup()
        except ValueError as exc:
            errors.append(f"{config.given.name(key)}: {exc}")

    check("data.name", lambda: dataset_kind(config.data.name))
    check("model.aggregator", lambda: AGGREGATORS.get(m.aggregator))
    if config.selection.mask_blank and m.aggregator in AGGREGATORS and not AGGREGATORS.get(m.aggregator).masks_tokens:
        errors.append(f"selection.mask_blank: {m.aggregator} cannot leave tokens out of its aggregation; "
                      "use CA, DA, AB or ABX")
    if m.context_gate and m.aggregator.upper() != "DA":
        errors.append(f"model.context_gate: gates DA's context read; {config.given.name('model.aggregator')} is "
                      f"{m.aggregator}")
    if m.encoder not in ENCODERS and not is_timm_model(m.encoder) and pathology_recipe(m.encoder) is None:
        known = ENCODERS.names() + PATHOLOGY_ENCODERS.names()
        message = unknown_name_message("encoder", m.encoder, known)
        errors.append(f"{config.given.name('model.encoder')}: {message} (or a timm model name)")
    for task in config.tasks:
        if task.metric is not None:
            check(f"tasks.{task.name}.metric", lambda t=task: METRICS.get(t.metric))
    if config.train.best_metric not in (None, "loss"):
        check("train.best_metric", lambda: METRICS.get(config.train.best_metric))
    try:
        resolve_device(config.train.device)
    except ConfigError as exc:
        errors.append(str(exc))
    if errors:
        raise ConfigError("\n".join(errors))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def data_request(config: Config) -> DataRequest:
    """What the dataset is asked for: the config's `data` group with the kind's defaults filled in."""
    data = config.data
    defaults = dataset_kind(data.name).defaults
    resize = data.resize if data.resize is not None else defaults.get("resize")
    files = {split: name for split, name in (("train", data.train_file), ("val", data.val_file),
                                             ("test", data.test_file)) if name}
    return DataRequest(
        root=Path(data.root), task_names=[task.name for task in config.tasks] or None,
        val_fraction=data.val_fraction, seed=config.train.seed,
        channels=data.channels or config.model.in_chans or defaults.get("channels"),
        resize=None if resize is None or str(resize).lower() == "none" else to_pair(resize, "data.resize"),
        files=files, labels=data.labels, splits=data.splits, coords=data.coords, drop_ungradable=data.drop_ungradable,
        feature_encoder=data.feature_encoder, feature_width=_encoder_width(data.feature_encoder),
    )


def _encoder_width(name: str | None) -> int | None:
    recipe = pathology_recipe(name) if name else None
    return recipe.width if recipe is not None else None


def patch_spec(config: Config) -> PatchSpec:
    """Patch geometry from `patches`; normalisation from `data.mean/std`, else a named pathology encoder's own, else
    the dataset kind's default."""
    defaults = dataset_kind(config.data.name).defaults
    recipe = pathology_recipe(config.model.encoder)
    if recipe is not None:
        defaults = defaults | {"mean": recipe.mean, "std": recipe.std}
    mean = config.data.mean if config.data.mean is not None else defaults.get("mean")
    std = config.data.std if config.data.std is not None else defaults.get("std")
    p, d = config.patches, config.data
    stain_norm = None
    if d.stain_norm is not None:
        try:
            stain_norm = StainNormaliser.from_tile(d.stain_norm, d.stain_reference, d.stain_fit)
        except (ValueError, FileNotFoundError) as exc:
            raise ConfigError(f"data.stain_reference: {exc}") from None
    return PatchSpec(
        to_pair(p.size, "patches.size"), to_pair(p.stride, "patches.stride") if p.stride else None,
        tuple(mean) if mean is not None else None, tuple(std) if std is not None else None, stain_norm,
    )


def training_transforms(config: Config) -> Collate:
    """The training loader's collate: the patch spec plus the augmentation of `data.augment` or the kind's."""
    augment = config.data.augment
    if augment is None:
        augment = AugmentConfig(**dataset_kind(config.data.name).defaults.get("augment", {}))
    jitter = augment.color_jitter
    transform = None
    if jitter or augment.translate:
        transform = TrainAugment(brightness=jitter, contrast=jitter, saturation=jitter, hue=jitter,
                                 max_shift=augment.translate)
    erasing = Erasing(augment.erase_fraction, augment.erase_area) if augment.erase_fraction else None
    spec = patch_spec(config)
    if augment.hed_jitter is not None:  # slides: as patches are read; images: before the other transforms
        jitter = HEDJitter(hed_sigma(augment.hed_jitter), augment.stain_per)
        spec = dataclasses.replace(spec, stain_jitter=jitter)
        transform = jitter if transform is None else Compose((jitter, transform))
    return Collate(spec, transform, erasing)


def prepare_data(config: Config, *, progress: bool = True, generate: bool = True) -> tuple[DataSplits, list[str]]:
    """The dataset's splits and notes about them; a kind that makes its data (`prepare`) makes it first when
    `data.generate` asks and `generate` allows."""
    data = config.data
    if Path(data.root).exists() and not Path(data.root).is_dir():
        raise NotADirectoryError(f"data.root: {data.root} is a file, not a dataset folder")
    kind = dataset_kind(data.name)
    if kind.prepare is not None:
        settings = dataclasses.asdict(data.generate) if data.generate is not None else None
        notes = list(kind.prepare(PrepareRequest(Path(data.root), settings, progress=progress, may_generate=generate,
                                                 root_named=config.given.root_named,
                                                 root_key=config.given.name("data.root"))))
    else:
        notes = []
        if data.generate is not None:
            makers = ", ".join(name for name in DATASETS.names() if dataset_kind(name).prepare is not None)
            notes.append(f"data.generate: ignored, only the kinds {makers} generate their data (the data is "
                         f"{data.name!r})")
    splits = kind(data_request(config))
    notes += splits.notes
    if not len(splits.val):  # type: ignore[arg-type]
        notes.append("no validation split (data.val_fraction = 0): every training image trains, and best.pt is the "
                     "last epoch's weights")
    if splits.image_size is not None:
        height, width = splits.image_size
        try:
            rows, cols = grid_shape(height, width, config.patches.size, config.patches.stride)
        except ValueError as exc:
            raise ConfigError(f"{config.given.name('patches.size')}: {exc}") from None
        expected = config.patches.num_patches
        if expected is not None and expected != rows * cols:
            notes.append(f"N: the config says {expected}, but a {height}×{width} image gives {rows}×{cols} = "
                         f"{rows * cols} patches; the grid wins")
        notes += selection_notes(config, rows * cols)
    return splits, notes


def selection_notes(config: Config, num_patches: int) -> list[str]:
    """What the selection does when its sizes reach the number of patches of an image (accepted, but odd)."""
    s = config.selection
    notes = []
    for key, value in (("M (selection.num_salient)", s.num_salient),
                       ("selection.eval_num_salient", s.eval_num_salient)):
        if value is not None and value >= num_patches:
            notes.append(f"{key} = {value} ≥ the {num_patches} patches of an image: every patch is selected")
    if s.chunk_size >= num_patches:
        notes.append(f"I (selection.chunk_size) = {s.chunk_size} ≥ the {num_patches} patches of an image: "
                     "each image is scored in one chunk")
    return notes


def resolve_tasks(config: Config, dataset_tasks: list[TaskSpec]) -> list[TaskSpec]:
    """The dataset's tasks in the config's order, with the config's overrides (classes, activation, metric)."""
    by_name = {task.name: task for task in dataset_tasks}
    tasks = [] if config.tasks else list(dataset_tasks)
    for wanted in config.tasks:
        if wanted.name not in by_name:
            raise ConfigError(f"tasks: {wanted.name!r} is not a task of this dataset ({', '.join(by_name)})")
        base = by_name[wanted.name]
        activation = wanted.activation or base.activation
        classes = wanted.num_classes or config.model.num_classes or base.num_classes
        binary_sigmoid = activation is Activation.SIGMOID and classes == 1 and base.num_classes == 2
        if base.class_names is not None and classes != base.num_classes and not binary_sigmoid:
            raise ConfigError(
                f"tasks.{wanted.name}: {classes} classes configured (n_class), but the data has {base.num_classes}: "
                f"{', '.join(base.class_names)}"
            )
        metric = wanted.metric or ("auc" if binary_sigmoid else base.metric)
        tasks.append(TaskSpec(base.name, classes, activation, metric, base.class_names))
    for task in tasks:
        task_metric(task)  # an unknown metric is named here, before anything runs
    return tasks


def build_model(config: Config, tasks: list[TaskSpec], channels: int, feature_dim: int | None = None
                ) -> PatchClassifier:
    """Encoder (by name, for images of `channels` or feature vectors of `feature_dim`), aggregator, heads."""
    m = config.model
    if feature_dim is not None and m.in_chans not in (None, feature_dim):
        raise ConfigError(f"model.in_chans (n_chan_in) is {m.in_chans}, but the feature bags are {feature_dim} wide")
    try:
        encoder = create_encoder(
            m.encoder, in_chans=m.in_chans or channels or 3, dim=m.dim, stages=m.encoder_stages,
            weights=m.weights, pretrained=m.pretrained, in_dim=feature_dim, zero_init_last=m.zero_init_last,
            widths=m.encoder_widths,
        )
    except PretrainedWeightsUnavailable as exc:
        raise ConfigError(f"{config.given.name('model.pretrained')}: {exc}") from None
    except WeightsFileError as exc:
        raise ConfigError(f"model.weights: {exc}") from None
    except (ValueError, FileNotFoundError) as exc:
        raise ConfigError(f"{config.given.name('model.encoder')}: {exc}") from None
    aggregator = create_aggregator(
        m.aggregator, dim=m.dim, num_tasks=len(tasks), heads=m.heads, dim_key=m.dim_key, dim_value=m.dim_value,
        dim_ffn=m.dim_ffn, dropout=m.dropout, attn_dropout=m.attn_dropout, per_task=m.attention_per_task,
        context_gate=m.context_gate,
    )
    if m.attention_per_task and aggregator.num_tokens != len(tasks):
        raise ConfigError(f"model.attention_per_task: {m.aggregator} gives {aggregator.num_tokens} token(s) for "
                          f"{len(tasks)} tasks; it has no per-task attention")
    return PatchClassifier(encoder, aggregator, tasks, pos_enc=m.pos_enc, pos_gate=m.pos_gate,
                           pos_gate_init=m.pos_gate_init, bn_mode=m.bn_mode)


def amp_dtype(config: Config, device: torch.device) -> torch.dtype | None:
    """bf16 autocast when `train.amp` is set and the device has native bf16 (see `speed.autocast_dtype`)."""
    return autocast_dtype(device, amp=config.train.amp, amp_cpu=config.train.amp_cpu)


def place_model(model: PatchClassifier, config: Config, device: torch.device) -> PatchClassifier:
    """Move the model to `device` with the config's speed options (see `speed.speed_up_encoder`)."""
    model = model.to(device)
    t = config.train
    speed_up_encoder(model.encoder, device, channels_last=t.channels_last, fold_batchnorm=t.fold_batchnorm,
                     compile=t.compile)
    return model


@dataclass
class Run:
    """Everything a config describes, shared by training, evaluation, prediction and benchmarks.

    Attributes:
        config: the resolved config.
        device: where the model and batches live.
        data: the dataset's splits.
        model: the classifier, on `device`.
        selector: the patch selection.
        amp_dtype: autocast dtype, or None for full precision.
        spec: how images become patches.
        notes: what was decided while building (one line each), for the user.
    """

    config: Config
    device: torch.device
    data: DataSplits
    model: PatchClassifier
    selector: PatchSelector
    amp_dtype: torch.dtype | None
    spec: PatchSpec
    notes: list[str] = field(default_factory=list)
    dist: Distributed = field(default_factory=Distributed)

    @classmethod
    def from_config(cls, config: Config, *, progress: bool = True, generate: bool = True,
                    dist: Distributed | None = None) -> Run:
        """Build a run; nothing is written anywhere except a generated dataset (when `generate`, by rank 0)."""
        dist = dist or Distributed()
        check_config(config)
        seed_everything(config.train.seed)
        device = process_device(resolve_device(config.train.device), dist)
        keep_freed_host_memory()
        if dist.is_main:
            data, notes = prepare_data(config, progress=progress, generate=generate)
        dist.barrier()  # the others read what rank 0 may have generated
        if not dist.is_main:
            data, notes = prepare_data(config, progress=False, generate=False)
        tasks = resolve_tasks(config, data.tasks)
        model = place_model(build_model(config, tasks, data.channels, data.feature_dim), config, device)
        selector = PatchSelector.from_config(config)
        return cls(config, device, data, model, selector, amp_dtype(config, device), patch_spec(config), notes, dist)

    @classmethod
    def from_checkpoint(cls, target: Path, overrides: list[str] | tuple[str, ...] = ()) -> tuple[Run, Path]:
        """The run of a run folder (its best.pt) or of a checkpoint file, with the trained weights loaded."""
        if target.is_dir() and not (target / "best.pt").is_file():
            raise FileNotFoundError(f"{target}: no best.pt (written after a run's first epoch); give a checkpoint file")
        checkpoint_path = target / "best.pt" if target.is_dir() else target
        checkpoint = load_checkpoint(checkpoint_path)
        raw = checkpoint.get("config")
        if raw is not None and not isinstance(raw, dict):
            raise ValueError(f"{checkpoint_path}: its 'config' is a {type(raw).__name__}, not a mapping of keys")
        if raw is None:
            config_file = checkpoint_path.parent / "config.yaml"
            if not config_file.is_file():
                raise FileNotFoundError(f"{checkpoint_path} holds no config and {config_file} is missing")
            raw = read_yaml(config_file)
        config, _ = config_from_dict(raw, overrides)
        run = cls.from_config(config, progress=config.log.progress, generate=False)
        load_model_state(run.model, checkpoint["model"], checkpoint_path)
        return run, checkpoint_path

    def loader(self, split: str) -> DataLoader:
        """The evaluation loader of a split, in dataset order; with several processes, this process's share."""
        dataset = getattr(self.data, split)
        if self.dist.enabled:
            share = -(-len(dataset) // self.dist.world)
            first = min(len(dataset), self.dist.rank * share)
            dataset = Subset(dataset, range(first, min(len(dataset), first + share)))
        return self.loader_for(dataset)

    def loader_for(self, dataset: Dataset, *, sampler: EpochSampler | None = None) -> DataLoader:
        """A loader of `dataset`; with a (training) sampler, batches carry the training transforms."""
        data, t = self.config.data, self.config.train
        collate = training_transforms(self.config) if sampler is not None else Collate(self.spec)
        return build_loader(
            dataset, t.batch_size // self.dist.world, collate=collate, sampler=sampler,
            num_workers=data.num_workers, pin_memory=data.pin_memory and self.device.type == "cuda", seed=t.seed,
        )

    def train_sampler(self) -> EpochSampler:
        """The training order: permuted per epoch from the seed, sharded over the processes."""
        t = self.config.train
        return EpochSampler(len(self.data.train), t.batch_size, seed=t.seed, rank=self.dist.rank, world=self.dist.world)

    def batches(self, loader: DataLoader) -> DevicePrefetcher:
        """The loader's batches on the device, the next one prefetched on CUDA."""
        return DevicePrefetcher(loader, self.device)

    @property
    def patch_dtype(self) -> torch.dtype:
        """The dtype integer images become, patch by patch (the autocast dtype when there is one)."""
        return self.amp_dtype or torch.float32

    @property
    def micro_batch_size(self) -> int:
        return self.config.train.micro_batch_size or self.config.train.batch_size // self.dist.world
