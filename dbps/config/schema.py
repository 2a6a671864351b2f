"""The configuration schema: typed groups with defaults, and the cross-field checks."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from dbps.choices import (
    STAIN_METHODS,
    STAIN_UNITS,
    BatchNormMode,
    BufferUpdate,
    Method,
    Sampling,
    ShuffleStyle,
    check_selection,
    hed_sigma,
)
from dbps.tasks import Activation


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
class AugmentConfig:
    """Training transforms of uint8 images, on the device (0 turns one off)."""

    color_jitter: float = 0.0  # brightness, contrast, saturation and hue jitter strength (reference: 0.1)
    translate: int = 0  # random translation of at most this many pixels each way, black fill (reference: 100)
    erase_fraction: float = 0.0  # share of each image's patches with a rectangle erased (traffic signs: 0.1)
    erase_area: float = 0.94  # share of an erased patch's area
    hed_jitter: Any = None  # HED stain jitter (Tellez et al.): 'light' (σ = 0.05), 'strong' (0.2), a σ, or null: off
    stain_per: str = "image"  # one jitter draw per 'image' (each patch of a slide) or per 'slide'


@dataclass
class DataConfig:
    """Where images come from and how they are loaded; null fields take the dataset kind's default."""

    name: str = "megapixel_mnist"  # a dataset kind or a reference name: `dbps datasets` lists them
    root: str = "data/megapixel-mnist"
    val_fraction: float = 0.1  # carved from train when the dataset has no validation split; 0: none (best = last)
    num_workers: int = 2
    pin_memory: bool = True
    generate: GenerateConfig | None = None
    channels: int | None = None  # 1 or 3: images are converted to this many channels
    resize: Any = None  # [height, width], or 'none' to keep each image's native size
    mean: list[float] | None = None  # per-channel normalisation of patches (photos: ImageNet's)
    std: list[float] | None = None
    augment: AugmentConfig | None = None  # training transforms; null: the dataset kind's (photos: the reference's)
    train_file: str | None = None  # split lists (CSV `path,label[,split]` or `name label` lines) or feature files
    val_file: str | None = None
    test_file: str | None = None
    labels: str | None = None  # labels CSV (`case_id,slide_id,label` or `slide_name,label`)
    splits: str | None = None  # splits CSV (CLAM `splits_k.csv`, TransMIL `fold{k}.csv`)
    coords: str | None = None  # folder of patch coordinates for slides (CLAM / TRIDENT h5)
    drop_ungradable: bool = True  # DDR grade 5 ('ungradable') images are left out
    feature_encoder: str | None = None  # feature bags: the encoder they must come from (their `encoder` attribute)
    stain_norm: str | None = None  # slides: 'macenko' or 'reinhard' stain normalisation of every patch; null: none
    stain_reference: str | None = None  # the reference tile (an image file); Macenko has a standard one without it
    stain_fit: str = "slide"  # fit the normalisation per 'slide' (a sample of its patches) or per 'image' (patch)


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
    score_scale: float = 1.0  # < 1: the no-gradient pass embeds patches downsampled by this factor (`lrs`: 0.5)
    explore_epochs: int = 0  # first epochs select uniformly at random (guards against attention collapse)
    # dbps: rank static ∪ dynamic ∪ chunk at once (joint), or the reference's static-then-dynamic update (two_stage)
    buffer_update: BufferUpdate = BufferUpdate.JOINT
    skip_blank: bool = False  # patches whose values are all equal score 0: never salient while others are left
    mask_blank: bool = False  # with skip_blank: blank salient / context patches are left out of the aggregation


@dataclass
class ModelConfig:
    """Encoder, aggregator and their sizes."""

    encoder: str = "resnet18"
    encoder_stages: int | None = None
    encoder_widths: list[int] | None = None  # small_cnn: channels of its stride-2 stages (default 16, 32, 64, 64)
    in_chans: int | None = None  # defaults to the dataset's channels
    pretrained: bool = False  # timm hub weights (needs network); prefer `weights`
    weights: str | None = None  # local encoder weights file
    # γ = 0 on the last BatchNorm of each residual block at initialisation (timm's default for ResNets); None: the
    # encoder's own default. Matters only for encoders trained from random weights.
    zero_init_last: bool | None = None
    aggregator: str = "DA"
    dim: int = 128
    heads: int = 8
    dim_key: int = 16
    dim_value: int = 16
    dim_ffn: int = 512
    dropout: float = 0.0
    attn_dropout: float = 0.0
    pos_enc: bool = False
    pos_gate: bool = False  # the positional encoding scaled by a learnable per-channel gate
    pos_gate_init: float = 0.0  # the gate's value at initialisation (0: scores start from the content alone)
    # MIL pooling (AB, ABX): one attention branch and token per task instead of one shared token; CA and DA always
    # have one query per task
    attention_per_task: bool = False
    # BatchNorm of the salient patches in the gradient pass: batch statistics (the reference), running statistics
    # (normalised as the context, still updated), or frozen (never updated, for pretrained encoders)
    bn_mode: BatchNormMode = BatchNormMode.BATCH
    # DA: the context read scaled by a learnable per-channel gate that starts at zero (the model starts as CA over
    # the salient patches); false is the paper's DA
    context_gate: bool = False
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
    best_metric: str | None = None  # validation metric choosing best.pt: null = each task's own; or 'loss'
    grad_clip: float | None = None  # clip the gradient norm to this value
    checkpoint_every: int = 0  # also write last.pt every this many steps (long epochs: slides); 0 = per epoch
    max_bad_steps: int = 10  # stop after this many steps in a row with a non-finite loss or gradient
    sync_bn: bool = False  # SyncBatchNorm when several processes train (torchrun)


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
    heatmaps: int = 4  # attention maps of this many test instances drawn at the end of training (0: none)
    test_every_epoch: bool = False  # also evaluate the test split after each epoch (learning curves; not selection)


@dataclass
class Given:
    """How the user gave a config: for its messages, and for where it may generate data (set by the loader).

    Attributes:
        spelled: our dotted key → the reference key the user wrote for it (`attention` for model.aggregator).
        root_named: data.root was named on the command line, to another place than the config file's, and
            data.generate was not: a dataset missing there is an error, not generated into a mistyped path.
    """

    spelled: dict[str, str] = field(default_factory=dict)
    root_named: bool = False

    def name(self, key: str) -> str:
        """`key` as the user wrote it with ours beside it (`attention (model.aggregator)`), or `key` itself."""
        return f"{self.spelled[key]} ({key})" if key in self.spelled else key


@dataclass
class Config:
    """A whole run. `given` (not a field: neither saved nor compared) says how the user gave it."""

    data: DataConfig = field(default_factory=DataConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tasks: list[TaskConfig] = field(default_factory=list)  # empty: every task of the dataset
    train: TrainConfig = field(default_factory=TrainConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def __post_init__(self) -> None:
        self.given = Given()

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))



def validate(config: Config, errors: list[str]) -> None:
    """Cross-field checks; per-field types were checked while building."""
    t, s, m = config.train, config.selection, config.model
    positive = {
        "train.epochs": t.epochs, "train.batch_size": t.batch_size, "model.dim": m.dim, "model.heads": m.heads,
        "model.dim_key": m.dim_key, "model.dim_value": m.dim_value, "model.dim_ffn": m.dim_ffn,
        "model.num_classes": m.num_classes, "model.encoder_stages": m.encoder_stages, "model.in_chans": m.in_chans,
        "patches.num_patches": config.patches.num_patches,
        **{f"tasks.{task.name}.num_classes": task.num_classes for task in config.tasks},
    }
    errors += [f"{key}: must be ≥ 1, got {value}" for key, value in positive.items() if value is not None and value < 1]
    if m.encoder_widths is not None and (not m.encoder_widths or min(m.encoder_widths) < 1):
        errors.append(f"model.encoder_widths: must be a list of widths ≥ 1, got {m.encoder_widths}")
    elif m.encoder_widths is not None and m.encoder.lower() != "small_cnn":
        errors.append(f"model.encoder_widths: only small_cnn takes stage widths, not model.encoder {m.encoder!r}")
    _validate_ranges(config, errors)
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
    if t.grad_clip is not None and t.grad_clip <= 0:
        errors.append(f"train.grad_clip: must be > 0, got {t.grad_clip}")
    if t.checkpoint_every < 0:
        errors.append(f"train.checkpoint_every: must be ≥ 0, got {t.checkpoint_every}")
    if t.max_bad_steps < 1:
        errors.append(f"train.max_bad_steps: must be ≥ 1, got {t.max_bad_steps}")
    if not 0 <= config.data.val_fraction < 1:
        errors.append(f"data.val_fraction: must be in [0, 1), got {config.data.val_fraction}")
    if config.model.pos_gate and not config.model.pos_enc:
        errors.append("model.pos_gate: gates the positional encoding; model.pos_enc is false")
    if config.model.pos_gate_init and not config.model.pos_gate:
        errors.append("model.pos_gate_init: sets the positional gate's start; model.pos_gate is false")
    if s.method is Method.DBPS and s.num_context is None:
        errors.append("selection.num_context: method 'dbps' needs the dynamic buffer size S")
    try:  # what `PatchSelector.from_config` would refuse
        check_selection(
            s.method, s.num_salient, s.chunk_size, s.num_context, drop_ratio=config.patches.drop_ratio,
            sampling=s.sampling, temperature=s.temperature, eval_num_salient=s.eval_num_salient,
            score_scale=s.score_scale, buffer_update=s.buffer_update, skip_blank=s.skip_blank,
            mask_blank=s.mask_blank,
        )
    except ValueError as exc:
        errors.append(f"selection: {exc}")
    _validate_data(config.data, errors)
    names = [task.name for task in config.tasks]
    if len(set(names)) != len(names):
        errors.append(f"tasks: duplicate task names {names}")


def _validate_ranges(config: Config, errors: list[str]) -> None:
    """Numbers that must lie in a range: rates, probabilities, counts and the seed."""
    t, m, d = config.train, config.model, config.data
    if t.weight_decay < 0:
        errors.append(f"train.weight_decay: must be ≥ 0, got {t.weight_decay}")
    if not 0 <= t.min_lr_ratio <= 1:
        errors.append(f"train.min_lr_ratio: must be in [0, 1] (a share of train.lr), got {t.min_lr_ratio}")
    if not 0 <= t.seed < 2**32:
        errors.append(f"train.seed: must be in [0, 2**32), got {t.seed}")
    for key, value in (("model.dropout", m.dropout), ("model.attn_dropout", m.attn_dropout)):
        if not 0 <= value < 1:
            errors.append(f"{key}: must be in [0, 1), got {value}")
    if d.num_workers < 0:
        errors.append(f"data.num_workers: must be ≥ 0 (0 loads in the main process), got {d.num_workers}")
    if config.log.heatmaps < 0:
        errors.append(f"log.heatmaps: must be ≥ 0 (0 draws none), got {config.log.heatmaps}")
    if d.generate is not None:
        minimum = {"n_train": 1, "n_test": 1, "size": 1, "n_noise": 0, "seed": 0}
        errors += [f"data.generate.{key}: must be ≥ {low}, got {getattr(d.generate, key)}"
                   for key, low in minimum.items() if getattr(d.generate, key) < low]


def _validate_data(data: DataConfig, errors: list[str]) -> None:
    resize = data.resize
    pair = [resize, resize] if isinstance(resize, int) and not isinstance(resize, bool) else resize
    size_ok = (
        isinstance(pair, list | tuple) and len(pair) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair)
    )
    if resize is not None and not size_ok and str(resize).lower() != "none":
        errors.append(f"data.resize: expected [height, width] or 'none' (native size), got {resize!r}")
    if data.channels not in (None, 1, 3):
        errors.append(f"data.channels: must be 1 or 3, got {data.channels}")
    for key, values in (("data.mean", data.mean), ("data.std", data.std)):
        if values is not None and len(values) not in (1, 3):
            errors.append(f"{key}: needs 1 or 3 values, got {len(values)}")
    if data.std is not None and any(v <= 0 for v in data.std):
        errors.append(f"data.std: must be > 0, got {data.std}")
    a = data.augment
    if a is not None:
        if not 0 <= a.color_jitter <= 0.5:
            errors.append(f"data.augment.color_jitter: must be in [0, 0.5], got {a.color_jitter}")
        if a.translate < 0:
            errors.append(f"data.augment.translate: must be ≥ 0, got {a.translate}")
        if not 0 <= a.erase_fraction <= 1 or not 0 < a.erase_area <= 1:
            errors.append("data.augment: erase_fraction must be in [0, 1] and erase_area in (0, 1]")
        if a.hed_jitter is not None:
            try:
                hed_sigma(a.hed_jitter)
            except ValueError as exc:
                errors.append(f"data.augment.hed_jitter: {exc}")
        if a.stain_per not in STAIN_UNITS:
            errors.append(f"data.augment.stain_per: must be one of {', '.join(STAIN_UNITS)}, got {a.stain_per!r}")
    _validate_stain(data, errors)


def _validate_stain(data: DataConfig, errors: list[str]) -> None:
    if data.stain_norm is not None and data.stain_norm not in STAIN_METHODS:
        errors.append(f"data.stain_norm: must be one of {', '.join(STAIN_METHODS)} or null, got {data.stain_norm!r}")
    if data.stain_norm is not None and data.name != "slides":
        errors.append("data.stain_norm: normalises slide patches as they are read (data.name=slides); for feature "
                      "bags, normalise at `dbps extract-features --stain-norm`")
    if data.stain_norm == "reinhard" and data.stain_reference is None:
        errors.append("data.stain_reference: Reinhard normalisation needs a reference tile")
    if data.stain_fit not in STAIN_UNITS:
        errors.append(f"data.stain_fit: must be one of {', '.join(STAIN_UNITS)}, got {data.stain_fit!r}")


def _plain(value: Any) -> Any:
    """Enums → str, tuples → lists, recursively (for YAML/JSON)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, StrEnum):
        return value.value
    return value
