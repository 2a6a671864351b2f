"""Run configuration: typed groups, YAML + `key=value` overrides, the reference repos' flat keys, one validation.

Precedence: defaults < YAML file < command-line overrides. Keys are our dotted names
(`selection.num_salient`) or the reference repos' flat keys (`M`), which are translated here and nowhere
else. Every problem (unknown key, wrong type, inconsistent values) is collected and raised once, each
message naming its key.
"""

from __future__ import annotations

import dataclasses
import types
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from dbps.models.heads import Activation
from dbps.patches import ShuffleStyle
from dbps.registry import parse_enum
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
    amp: bool = True  # bf16 autocast on CUDA
    channels_last: bool = True  # on CUDA
    compile: bool = False  # torch.compile the encoder


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


# The reference repositories' flat keys → our dotted keys.
REFERENCE_KEYS: dict[str, str] = {
    "n_epoch": "train.epochs",
    "n_epoch_warmup": "train.warmup_epochs",
    "lr": "train.lr",
    "wd": "train.weight_decay",
    "B": "train.batch_size",
    "B_seq": "train.micro_batch_size",
    "seed": "train.seed",
    "dataset_path": "data.root",
    "data_dir": "data.root",
    "n_worker": "data.num_workers",
    "pin_memory": "data.pin_memory",
    "patch_size": "patches.size",
    "patch_stride": "patches.stride",
    "N": "patches.num_patches",
    "ratio": "patches.drop_ratio",
    "shuffle": "patches.shuffle",
    "shuffle_style": "patches.shuffle_style",
    "M": "selection.num_salient",
    "test_M": "selection.eval_num_salient",
    "I": "selection.chunk_size",
    "S": "selection.num_context",
    "sample_style": "selection.sampling",
    "enc_type": "model.encoder",
    "pretrained": "model.pretrained",
    "n_chan_in": "model.in_chans",
    "n_res_blocks": "model.encoder_stages",
    "attention": "model.aggregator",
    "use_pos": "model.pos_enc",
    "H": "model.heads",
    "D": "model.dim",
    "D_k": "model.dim_key",
    "D_v": "model.dim_value",
    "D_inner": "model.dim_ffn",
    "dropout": "model.dropout",
    "attn_dropout": "model.attn_dropout",
    "n_class": "model.num_classes",
    "wandb": "log.wandb",
    "swanlab": "log.swanlab",
    "project": "log.project",
    "title": "log.run_name",
    "save_dir": "log.out_dir",
}

# Reference keys accepted with a note: they have no effect here, and why.
IGNORED_REFERENCE_KEYS: dict[str, str] = {
    "eps": "losses use log-softmax, which needs no epsilon",
    "eager": "batches always move to the device before selection",
    "N1": "unused in the reference code",
    "I1": "unused in the reference code",
    "n_token": "one query token per task is implied by `tasks`",
    "is_image": "the encoder name decides ('projector' for feature bags)",
    "height": "resizing belongs to the photo datasets (not available yet)",
    "width": "resizing belongs to the photo datasets (not available yet)",
    "train_fname": "feature-bag files belong to the feature datasets (not available yet)",
    "test_fname": "feature-bag files belong to the feature datasets (not available yet)",
    "track_efficiency": "use `dbps bench` to measure speed and memory",
    "track_epoch": "use `dbps bench` to measure speed and memory",
    "isParallel": "launch with torchrun for several GPUs",
    "isOnlyTest": "use `dbps eval`",
    "eval_with_attn": "use `dbps eval`",
    "eval_vis_path": "use `dbps eval`",
    "test_dir": "use `dbps eval`",
    "single": "translated to selection.method",
    "lrs": "low-resolution scoring is not supported; only lrs: False is accepted",
}


def load_config(
    source: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> tuple[Config, list[str]]:
    """Build and validate a Config.

    Args:
        source: a YAML path, the name of a shipped preset (e.g. 'quickstart'), or None for the defaults.
        overrides: `key=value` strings; values are parsed as YAML (`M=10`, `patches.size=[50,50]`).

    Returns:
        The config and notes about accepted-but-ignored reference keys.

    Raises:
        ConfigError: naming every bad key.
        FileNotFoundError: when `source` is neither a file nor a preset.
    """
    raw = read_yaml(resolve_config_path(source)) if source is not None else {}
    return config_from_dict(raw, overrides)


def config_from_dict(raw: dict[str, Any], overrides: list[str] | tuple[str, ...] = ()) -> tuple[Config, list[str]]:
    """Like `load_config`, from an already parsed mapping (e.g. the config stored in a checkpoint)."""
    errors: list[str] = []
    notes: list[str] = []
    tree = _translate(raw, errors, notes)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            errors.append(f"override {override!r} is not key=value")
            continue
        _translate_into(tree, {key.strip(): yaml.safe_load(text)}, errors, notes)
    translation_errors = len(errors)
    config = _build(Config, tree, "", errors)
    if len(errors) == translation_errors:  # cross-field checks need every field well typed
        _validate(config, errors)
    if errors:
        raise ConfigError("\n".join(errors))
    return config, notes


def resolve_config_path(source: str | Path) -> Path:
    """A YAML path as given, or a preset shipped in `dbps/configs` by name."""
    path = Path(source)
    if path.is_file():
        return path
    preset = resources.files("dbps.configs") / f"{Path(str(source)).stem}.yaml"
    if path.suffix in ("", ".yaml") and preset.is_file():
        return Path(str(preset))
    presets = ", ".join(preset_names())
    raise FileNotFoundError(f"config {source!r} is neither a file nor a preset ({presets})")


def preset_names() -> list[str]:
    return sorted(Path(p.name).stem for p in resources.files("dbps.configs").iterdir() if p.name.endswith(".yaml"))


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    return data


def save_config(config: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _translate(raw: dict[str, Any], errors: list[str], notes: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    _translate_into(tree, raw, errors, notes)
    if "method" not in tree.get("selection", {}) and any(k in raw for k in ("single", "sample_style", "attention")):
        tree.setdefault("selection", {})["method"] = _reference_method(raw)
        if tree["selection"]["method"] != Method.DBPS and "num_context" in tree["selection"]:
            tree["selection"].pop("num_context")
            notes.append("S: ignored for the inferred method (ips has no dynamic buffer; dbps+ keeps all context)")
    return tree


def _reference_method(raw: dict[str, Any]) -> str:
    """The method a reference config runs: `single` → IPS; triple sampling or ABMILX → DBformer+; else DBPS."""
    if raw.get("single") is True:
        return Method.IPS.value
    sampling = str(raw.get("sample_style", "hard")).lower()
    if sampling in (Sampling.PROB, Sampling.HALF) or str(raw.get("attention", "")).upper() == "ABX":
        return Method.DBPS_PLUS.value
    return Method.DBPS.value


def _translate_into(tree: dict[str, Any], raw: dict[str, Any], errors: list[str], notes: list[str]) -> None:
    for key, value in raw.items():
        key = str(key)
        if key in IGNORED_REFERENCE_KEYS:
            if key == "lrs" and value not in (False, None):
                errors.append("lrs: low-resolution scoring is not supported; set lrs: False")
            elif key != "single":
                notes.append(f"{key}: accepted and ignored ({IGNORED_REFERENCE_KEYS[key]})")
            continue
        if key == "tasks":
            tree["tasks"] = _reference_tasks(value, errors)
            continue
        dotted = REFERENCE_KEYS.get(key, key)
        if isinstance(value, dict) and "." not in dotted and dotted in _GROUPS:
            tree.setdefault(dotted, {})
            for sub, sub_value in value.items():
                _set(tree, f"{dotted}.{sub}", sub_value)
            continue
        _set(tree, dotted, value)


def _reference_tasks(value: Any, errors: list[str]) -> Any:
    """Reference form `{task0: {id, name, act_fn, metric}}` → our list; our list passes through."""
    if isinstance(value, dict):
        tasks = []
        for key, spec in sorted(value.items(), key=lambda kv: kv[1].get("id", 0) if isinstance(kv[1], dict) else 0):
            if not isinstance(spec, dict) or "name" not in spec:
                errors.append(f"tasks.{key}: expected a mapping with a name")
                continue
            spec = {k: v for k, v in spec.items() if k != "id"}
            if "act_fn" in spec:
                spec["activation"] = spec.pop("act_fn")
            if "n_class" in spec:
                spec["num_classes"] = spec.pop("n_class")
            tasks.append(spec)
        return tasks
    if isinstance(value, list):
        return [{"name": v} if isinstance(v, str) else v for v in value]
    return value


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


_GROUPS = {f.name for f in dataclasses.fields(Config)} - {"tasks"}


def _build(cls: type, data: Any, prefix: str, errors: list[str]) -> Any:
    if not isinstance(data, dict):
        errors.append(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {data!r}")
        return None
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in names:
            errors.append(f"unknown key '{prefix}{key}'" + _did_you_mean(key, names))
            continue
        values[key] = _coerce(value, hints[key], f"{prefix}{key}", errors)
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in values]
    if missing:
        errors.append(f"{prefix.rstrip('.')}: missing {', '.join(missing)}")
        return None
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        errors.append(f"{prefix.rstrip('.') or 'config'}: {exc}")
        return None


def _did_you_mean(key: str, names: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(names), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(value: Any, hint: Any, key: str, errors: list[str]) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _coerce(value, inner, key, errors)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, f"{key}.", errors)
    if origin is list:
        if not isinstance(value, list):
            errors.append(f"{key}: expected a list, got {value!r}")
            return []
        return [_coerce(item, args[0], f"{key}[{i}]", errors) for i, item in enumerate(value)]
    if origin is tuple:
        items = [value] * len(args) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(items, list | tuple) or len(items) != len(args):
            errors.append(f"{key}: expected {len(args)} values or one int, got {value!r}")
            return None
        return tuple(_coerce(item, arg, key, errors) for item, arg in zip(items, args, strict=True))
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        try:
            return parse_enum(hint, str(value), key)
        except ValueError as exc:
            errors.append(str(exc))
            return None
    return _scalar(value, hint, key, errors)


def _scalar(value: Any, hint: type, key: str, errors: list[str]) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads `1e-3` as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type {hint!r} for {key}")
    errors.append(f"{key}: expected {hint.__name__}, got {value!r} ({type(value).__name__})")
    return None


def _validate(config: Config, errors: list[str]) -> None:
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
