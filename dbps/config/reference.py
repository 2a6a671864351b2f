"""The reference repositories' flat keys (`M`, `B_seq`, `enc_type`, …), translated into our dotted keys.

This module is the only place that knows them: the rest of dbps sees a `Config`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from dbps.config.schema import Config
from dbps.selection import Method, Sampling

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


_GROUPS = {f.name for f in dataclasses.fields(Config)} - {"tasks"}  # keys that hold a mapping of keys


def translate(raw: dict[str, Any], errors: list[str], notes: list[str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    translate_into(tree, raw, errors, notes)
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


def translate_into(tree: dict[str, Any], raw: dict[str, Any], errors: list[str], notes: list[str]) -> None:
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
