"""The configuration schema: typed groups with defaults, and the cross-field checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dbps.models.heads import Activation
from dbps.patches import ShuffleStyle
from dbps.selection import Method, PatchSelector, Sampling


class ConfigError(ValueError):
    """One or more invalid configuration entries; the message has one line per problem."""


@dataclass
class GenerateConfig:
    """Megapixel MNIST generated at `data.root` when it is missing."""

    n_train: int = 5000
    n_test: int = 1000
    size: int = 1500
    n_noise: int = 50
    seed: int = 0
    digits: str | None = None


@dataclass
class DataConfig:
    """Where images come from and how they are loaded."""

    name: str = "megapixel_mnist"
    root: str = "data/megapixel-mnist"
    val_fraction: float = 0.1  # carved from train when the dataset has no validation split
    num_workers: int = 2
    pin_memory: bool = True
    generate: GenerateConfig | None = None


@dataclass
class PatchConfig:
    """The patch grid and what training does to it."""

    size: tuple[int, int] = (50, 50)
    stride: tuple[int, int] | None = None  # defaults to the patch size
    num_patches: int | None = None  # N; checked against the grid when given
    drop_ratio: float = 0.0
    shuffle: bool = False
    shuffle_style: ShuffleStyle = ShuffleStyle.BATCH


@dataclass
class SelectionConfig:
    """The no-gradient selection pass (see `dbps.selection.PatchSelector`)."""

    method: Method = Method.DBPS
    num_salient: int = 100  # M
    eval_num_salient: int | None = None  # M at evaluation
    chunk_size: int = 100  # I
    num_context: int | None = None  # S
    sampling: Sampling = Sampling.HARD
    temperature: float = 1.0
    reference_sampling: bool = False
    explore_epochs: int = 0  # first epochs select uniformly at random (guards against attention collapse)


@dataclass
class ModelConfig:
    """Encoder, aggregator and their sizes."""

    encoder: str = "resnet18"
    encoder_stages: int | None = None
    in_chans: int | None = None  # defaults to the dataset's channels
    pretrained: bool = False  # timm hub weights (needs network); prefer `weights`
    weights: str | None = None  # local encoder weights file
    aggregator: str = "DA"
    dim: int = 128
    heads: int = 8
    dim_key: int = 16
    dim_value: int = 16
    dim_ffn: int = 512
    dropout: float = 0.0
    attn_dropout: float = 0.0
    pos_enc: bool = False
    num_classes: int | None = None  # default width of task heads that do not give one


@dataclass
class TaskConfig:
    """One task; `num_classes` and `activation` default to the dataset's definition of the task."""

    name: str
    num_classes: int | None = None
    activation: Activation | None = None
    metric: str | None = None


@dataclass
class TrainConfig:
    """Optimisation: AdamW, per-step linear warm-up then cosine decay to lr · min_lr_ratio."""

    epochs: int = 150
    warmup_epochs: int = 10
    lr: float = 1e-3
    min_lr_ratio: float = 1e-3
    weight_decay: float = 0.1
    batch_size: int = 16  # B: images per optimiser step
    micro_batch_size: int | None = None  # B_seq: images per forward/backward (gradient accumulation)
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA, and on CPUs with native bf16 unless amp_cpu is false
    amp_cpu: bool = True  # with amp: bf16 autocast on CPUs with AVX-512 BF16 or AMX
    channels_last: bool = True  # channels-last encoder
    fold_batchnorm: bool = True  # BatchNorm folded into convolutions in the no-gradient pass
    compile: bool = False  # torch.compile the encoder (on a CPU: its no-gradient pass)


@dataclass
class LogConfig:
    """Run folder and metric sinks."""

    out_dir: str = "runs"
    run_name: str | None = None
    project: str = "dbps"
    tensorboard: bool = True  # when installed
    wandb: bool = False
    swanlab: bool = False
    progress: bool = True


@dataclass
class Config:
    """A whole run."""

    data: DataConfig = field(default_factory=DataConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tasks: list[TaskConfig] = field(default_factory=list)  # empty: every task of the dataset
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def selector(self) -> PatchSelector:
        s, p = self.selection, self.patches
        return PatchSelector(
            s.method,
            s.num_salient,
            s.chunk_size,
            s.num_context,
            drop_ratio=p.drop_ratio,
            shuffle=p.shuffle_style if p.shuffle else None,
            sampling=s.sampling,
            temperature=s.temperature,
            reference_sampling=s.reference_sampling,
            eval_num_salient=s.eval_num_salient,
        )


def validate(config: Config, errors: list[str]) -> None:
    """Cross-field checks; per-field types were checked while building."""
    t, s, m = config.train, config.selection, config.model
    positive = {
        "train.epochs": t.epochs, "train.batch_size": t.batch_size, "model.dim": m.dim, "model.heads": m.heads,
        "model.dim_key": m.dim_key, "model.dim_value": m.dim_value, "model.dim_ffn": m.dim_ffn,
    }  # fmt: skip
    errors += [f"{key}: must be ≥ 1, got {value}" for key, value in positive.items() if value < 1]
    if t.micro_batch_size is not None and (t.micro_batch_size < 1 or t.batch_size % t.micro_batch_size):
        errors.append(
            f"train.micro_batch_size: must divide train.batch_size ({t.batch_size}), got {t.micro_batch_size}"
        )
    if not 0 <= s.explore_epochs <= t.epochs:
        errors.append(f"selection.explore_epochs: must be in [0, train.epochs], got {s.explore_epochs}")
    if not 0 <= t.warmup_epochs <= t.epochs:
        errors.append(f"train.warmup_epochs: must be in [0, train.epochs], got {t.warmup_epochs}")
    if t.lr <= 0:
        errors.append(f"train.lr: must be > 0, got {t.lr}")
    if not 0 <= config.data.val_fraction < 1:
        errors.append(f"data.val_fraction: must be in [0, 1), got {config.data.val_fraction}")
    if s.method is Method.DBPS and s.num_context is None:
        errors.append("selection.num_context: method 'dbps' needs the dynamic buffer size S")
    try:
        config.selector()
    except ValueError as exc:
        errors.append(f"selection: {exc}")
    names = [task.name for task in config.tasks]
    if len(set(names)) != len(names):
        errors.append(f"tasks: duplicate task names {names}")


def _plain(value: Any) -> Any:
    """Enums → str, tuples → lists, recursively (for YAML/JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value
