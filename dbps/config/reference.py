"""The reference repositories' flat keys (`M`, `B_seq`, `enc_type`, …), translated into our dotted keys.

This module is the only place that knows them: the rest of dbps sees a `Config`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from dbps.choices import Method, Sampling
from dbps.config.schema import Config, Given

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
    "train_fname": "data.train_file",
    "test_fname": "data.test_file",
}

# Reference keys accepted with a note: they have no effect here, and why.
IGNORED_REFERENCE_KEYS: dict[str, str] = {
    "eps": "losses use log-softmax, which needs no epsilon",
    "eager": "batches always move to the device before selection",
    "N1": "unused in the reference code",
    "I1": "unused in the reference code",
    "n_token": "one query token per task is implied by `tasks`",
    "M1": "unused in the reference code",
    "track_efficiency": "use `dbps bench` to measure speed and memory",
    "track_epoch": "use `dbps bench` to measure speed and memory",
    "isParallel": "launch with torchrun for several GPUs",
    "isOnlyTest": "use `dbps eval`",
    "eval_with_attn": "use `dbps eval`",
    "eval_vis_path": "use `dbps eval`",
    "test_dir": "use `dbps eval`",
}

# Reference keys whose meaning spans several of ours; `_special` translates them.
SPECIAL_REFERENCE_KEYS = ("height", "width", "lrs", "is_image", "use_patch_enc", "single")
LOW_RESOLUTION_SCALE = 0.5  # the reference's `lrs` scores on a half-resolution copy


_GROUPS = {f.name for f in dataclasses.fields(Config)} - {"tasks"}  # keys that hold a mapping of keys


def translate(raw: dict[str, Any], errors: list[str], notes: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    translate_into(tree, raw, errors, notes)
    if raw.get("is_image") is False or raw.get("use_patch_enc") is False:
        _set(tree, "model.encoder", "projector")  # whatever `enc_type` says, wherever it stands in the file
    method = tree.get("selection", {}).get("method")
    if method is None and _is_reference_config(raw):
        method, what = _reference_method(raw)
        tree.setdefault("selection", {})["method"] = method
        notes.insert(0, f"runs {method}: {what}")
    if method not in (None, Method.DBPS, Method.DBPS.value) and "S" in raw:
        tree.get("selection", {}).pop("num_context", None)
        notes.append(f"S: unused by method {method} (ips has no dynamic buffer; dbps+ keeps every other patch)")
    return tree


def _is_reference_config(raw: dict[str, Any]) -> bool:
    return any(key in raw for key in ("M", "I", "single", "S", "sample_style", "attention", "n_token"))


def _reference_method(raw: dict[str, Any]) -> tuple[str, str]:
    """The method a reference config runs, and how the reference code runs it.

    DBPS HEAD files all carry `single`: `single: True` is IPS; otherwise the HEAD code embeds every kept patch,
    draws M by `sample_style` and uses all N'−M other embeddings as context (S is read but unused). CVPR-era
    files carry `S` and no `single`: the chunked dual buffer. A file with neither (the IPS files) is IPS.
    """
    sampling = str(raw.get("sample_style", "hard")).lower()
    if "single" in raw:
        if raw["single"] is True:
            return Method.IPS.value, "single: True, IPS (one buffer of the M most salient patches)"
        return Method.DBPS_PLUS.value, (
            f"DBPS HEAD code: every kept patch embedded, M drawn by {sampling!r} sampling, all N'−M other "
            "embeddings as context (S unused)"
        )
    if sampling in (Sampling.PROB, Sampling.HALF):
        return Method.DBPS_PLUS.value, f"{sampling!r} sampling draws from every kept patch (DBformer+)"
    if "S" in raw:
        return Method.DBPS.value, "CVPR-era DBPS: chunked static buffer of M patches + dynamic buffer of S embeddings"
    return Method.IPS.value, "IPS config (no S, no single): one buffer of the M most salient patches"


def translate_into(tree: dict[str, Any], raw: dict[str, Any], errors: list[str], notes: list[str]) -> None:
    for key, value in raw.items():
        key = str(key)
        if key in IGNORED_REFERENCE_KEYS:
            notes.append(f"{key}: accepted and ignored ({IGNORED_REFERENCE_KEYS[key]})")
            continue
        if key in SPECIAL_REFERENCE_KEYS:
            _special(tree, key, value, raw, errors, notes)
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


def _special(tree: dict[str, Any], key: str, value: Any, raw: dict[str, Any], errors: list[str],
             notes: list[str]) -> None:
    """Reference keys that map onto ours only together or with a change of meaning."""
    if key in ("height", "width"):
        other = "width" if key == "height" else "height"
        if other not in raw:
            errors.append(f"{key}: given without {other}; the reference resizes to (height, width)")
        elif key == "height":
            _set(tree, "data.resize", [value, raw["width"]])
    elif key == "lrs":
        if not isinstance(value, bool):
            errors.append(f"lrs: expected true or false, got {value!r}")
        elif value:
            _set(tree, "selection.score_scale", LOW_RESOLUTION_SCALE)
    elif key in ("is_image", "use_patch_enc"):
        if value is False:
            _set(tree, "model.encoder", "projector")
            notes.append(f"{key}: False, so patches are feature vectors mapped by the projector (enc_type unused)")
    elif key == "single" and not isinstance(value, bool):
        errors.append(f"single: expected true or false, got {value!r}")


def spelled_keys(raw: dict[str, Any]) -> dict[str, str]:
    """Our dotted key → the reference key that sets it in `raw` (a later key setting it our way takes it back)."""
    spelled: dict[str, str] = {}
    for key, value in raw.items():
        key = str(key)
        if key in REFERENCE_KEYS:
            spelled[REFERENCE_KEYS[key]] = key
        elif key in ("height", "width"):
            spelled["data.resize"] = "height, width"
        elif key == "lrs":
            spelled["selection.score_scale"] = "lrs"
        elif isinstance(value, dict) and key in _GROUPS:
            for sub in value:
                spelled.pop(f"{key}.{sub}", None)
        else:
            spelled.pop(key, None)
    return spelled


def as_written(message: str, given: Given) -> str:
    """Each line of `message` whose leading key the user wrote as a reference key, named their way with ours beside
    it: `sample_style (selection.sampling) must be one of …`."""
    lines = []
    for line in message.splitlines():
        key = re.match(r"[A-Za-z_][\w.]*(?=[: \[]|$)", line)
        if key and key.group() in given.spelled:
            line = given.name(key.group()) + line[key.end() :]
        lines.append(line)
    return "\n".join(lines)


def _reference_tasks(value: Any, errors: list[str]) -> Any:
    """Reference form `{task0: {id, name, act_fn, metric}}` → our list; our list passes through."""
    if isinstance(value, dict):
        tasks = []
        for key, spec in sorted(value.items(), key=lambda kv: kv[1].get("id", 0) if isinstance(kv[1], dict) else 0):
            if not isinstance(spec, dict) or "name" not in spec:
                errors.append(f"tasks.{key}: expected a mapping with a name")
                continue
            spec = {k: v for k, v in spec.items() if k not in ("id", "multi_label")}  # activation decides
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
