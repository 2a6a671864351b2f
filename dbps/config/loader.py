"""Loading a Config: YAML file or preset, `key=value` overrides, type coercion, and one report of every error.

Precedence: defaults < YAML file < command-line overrides; the file's keys and the overrides are one config before
anything is checked (a reference file's `height` with `width=…` on the command line). Keys are our dotted names
(`selection.num_salient`) or the reference repos' flat keys (`M`). Every problem (unknown key, wrong type,
inconsistent values) is collected and raised once, each message naming its key as the user wrote it (with ours
beside a reference key). YAML errors and duplicate keys name the file (or the override), the line and the column.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from dbps.config.reference import as_written, spelled_keys, translate, translate_into
from dbps.config.schema import Config, ConfigError, Given, validate
from dbps.files import read_text, write_text
from dbps.registry import parse_enum


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
    given = _parse_overrides(overrides, errors)
    merged = {str(key): value for key, value in raw.items() if str(key) not in given} | given  # overrides last
    tree = translate(merged, errors, notes)
    translation_errors = len(errors)
    config = _build(Config, tree, "", errors)
    if len(errors) == translation_errors:  # cross-field checks need every field well typed
        validate(config, errors)
    origin = Given(spelled_keys(merged), root_named=_root_named(raw, given))
    if errors:
        raise ConfigError(as_written("\n".join(errors), origin))
    config.given = origin
    return config, notes


def _parse_overrides(overrides: list[str] | tuple[str, ...], errors: list[str]) -> dict[str, Any]:
    """`key=value` strings as a mapping (the last of a key given twice wins); a bad one is an error."""
    parsed: dict[str, Any] = {}
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            errors.append(f"override {override!r} is not key=value")
            continue
        try:
            value = parse_yaml(text)
        except yaml.YAMLError as exc:
            errors.append(f"override {override!r}: not valid YAML ({yaml_error(exc)})")
            continue
        parsed.pop(key.strip(), None)
        parsed[key.strip()] = value
    return parsed


def _root_named(file: dict[str, Any], command_line: dict[str, Any]) -> bool:
    """Whether the command line names data.root (another place than the file's) without data.generate."""
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    translate_into(ours, command_line, [], [])
    translate_into(theirs, file, [], [])
    data, file_data = ours.get("data"), theirs.get("data")
    if not isinstance(data, dict) or "root" not in data or "generate" in data:
        return False
    return not isinstance(file_data, dict) or file_data.get("root") != data["root"]


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


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, list | dict):
                continue  # unhashable: the safe loader reports it
            if key in first:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first given on line {first[key] + 1})", key_node.start_mark
                )
            first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """YAML text → Python data (safe types only); a key given twice in a mapping is a `yaml.YAMLError`."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a subclass of the safe loader


def yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML error in one line: `line L, column C: what`, positions counted from 1 as editors do."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return " ".join(str(exc).split())
    mark = exc.problem_mark
    context = f" ({exc.context})" if exc.context else ""
    return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}"


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML file holding a mapping of keys; ConfigError naming the file (and line, column) otherwise."""
    try:
        data = parse_yaml(read_text(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {yaml_error(exc)}") from None
    if data is None:
        raise ConfigError(f"{path}: empty, no keys (give at least one, or use a preset: {', '.join(preset_names())})")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(data).__name__}")
    return data


def save_config(config: Config, path: Path) -> None:
    """The resolved config as plain YAML, written atomically."""
    write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


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
    close = difflib.get_close_matches(key, sorted(names), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _coerce(value: Any, hint: Any, key: str, errors: list[str]) -> Any:
    if hint is Any:  # checked by `validate`
        return value
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
        number = _float(value)
        if number is not None and math.isfinite(number):
            return number
        if number is not None:
            errors.append(f"{key}: must be a finite number, got {value!r}")
            return None
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"unsupported config type {hint!r} for {key}")
    errors.append(f"{key}: expected {hint.__name__}, got {value!r} ({type(value).__name__})")
    return None


def _float(value: Any) -> float | None:
    """A number as float; YAML 1.1 reads `1e-3` as a string, so numeric strings count. None when not a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None
