"""Configs in the reference repositories' flat format, with the key sets their files use.

HEAD: cqu_bpdd / eyes / xbd × db+ (DBformer+) / db (DBformer) / ips. CVPR era: traffic, cqu_bpdd, eyes, fmow, mame
(IPS-style keys plus `S`, `M1`, `I1`, `N1`), camelyon (feature files), and the IPS Megapixel MNIST file.
"""

from __future__ import annotations

from typing import Any

import yaml

_BOOKKEEPING = {
    "isParallel": False, "isOnlyTest": False, "eval_vis_path": "", "eval_with_attn": False, "test_dir": "",
    "project": "DBformer_experiment", "wandb": False, "swanlab": False, "save_dir": "", "title": "",
    "eps": 0.000001, "seed": 0, "track_efficiency": False, "track_epoch": 0,
}
_AGGREGATION = {"use_pos": False, "H": 8, "D": 512, "D_k": 64, "D_v": 64, "D_inner": 2048, "attn_dropout": 0.1,
                "dropout": 0.1}
_SIGN_TASK = {"tasks": {"task0": {"id": 0, "name": "sign", "act_fn": "softmax", "metric": "accuracy"}}}

# (height, width, n_class, patch side, N) of the HEAD datasets
HEAD_SHAPES = {"cqu_bpdd": (1200, 1000, 7, 200, 30), "eyes": (1200, 1200, 5, 200, 36), "xbd": (1200, 1200, 4, 200, 36)}
HEAD_VARIANTS = {  # single, attention, sample_style, ratio
    "db+": (False, "ABX", "Half", 0.3),
    "db": (False, "CA", "Hard", 0.0),
    "ips": (True, "CA", "Hard", 0.3),
}


def head_config(dataset: str, variant: str) -> dict[str, Any]:
    """A DBPS HEAD file (`config/<dataset>_<variant>.yml`)."""
    height, width, n_class, side, n = HEAD_SHAPES[dataset]
    single, attention, sample_style, ratio = HEAD_VARIANTS[variant]
    return {
        "n_epoch": 100, "n_epoch_warmup": 10, "lr": 0.0001, "wd": 0.1, "lrs": False, "B": 128, "B_seq": 128,
        "single": single, **_BOOKKEEPING, "height": height, "width": width, "n_class": n_class, "data_dir": "",
        "n_worker": 8, "pin_memory": True, "eager": True, "is_image": True, "enc_type": "resnet18",
        "pretrained": True, "n_chan_in": 3, "n_res_blocks": 4, "shuffle": False, "attention": attention,
        "shuffle_style": "batch", "sample_style": sample_style, "n_token": 1, "N1": n, "N": n, "M": 2, "test_M": 2,
        "I1": 10, "I": 10, "S": 8, "ratio": ratio, "patch_size": [side, side], "patch_stride": [side, side],
        **_AGGREGATION, **_SIGN_TASK,
    }


# (n_class, patch side, N, M, I, S) of the CVPR-era photo configs
CVPR_SHAPES = {
    "traffic": (4, 100, 192, 10, 32, 3),
    "cqu_bpdd": (7, 100, 108, 3, 32, 6),
    "eyes": (5, 100, 144, 3, 32, 6),
    "fmow": (10, 100, 81, 3, 32, 6),
    "mame": (29, 100, 100, 3, 32, 6),
}


def cvpr_config(dataset: str) -> dict[str, Any]:
    """A CVPR-era DBPS file (IPS keys, plus the dual buffer's `S` and the unused `M1`, `I1`, `N1`)."""
    if dataset == "camelyon":
        return camelyon_config()
    n_class, side, n, m, i, s = CVPR_SHAPES[dataset]
    return {
        "n_epoch": 150, "B": 16, "B_seq": 16, "n_epoch_warmup": 10, "lr": 0.0003, "wd": 0.1, "n_class": n_class,
        "project": "IPS-zx", "data_dir": "", "n_worker": 4, "pin_memory": True, "eager": True, "save_dir": "",
        "title": f"{dataset}-lr0.0003", "wandb": False, "eps": 0.000001, "seed": 0, "track_efficiency": False,
        "track_epoch": 0, "is_image": True, "enc_type": "resnet18", "pretrained": True, "n_chan_in": 3,
        "n_res_blocks": 4, "shuffle": True, "shuffle_style": "batch", "n_token": 1, "N": n, "N1": n, "M": m, "M1": m,
        "I": i, "I1": i, "S": s, "patch_size": [side, side], "patch_stride": [side, side], **_AGGREGATION,
        **_SIGN_TASK,
    }


def camelyon_config() -> dict[str, Any]:
    """The CVPR-era CAMELYON16 file: feature bags (`is_image: False`, 1024-d), M = 100, I = 500, S = 400."""
    return {
        "n_epoch": 50, "B": 16, "B_seq": 1, "n_epoch_warmup": 10, "lr": 0.0003, "wd": 0.1, "n_class": 1,
        "project": "IPS-zx", "wandb": False, "data_dir": "", "train_fname": "feat_train.hdf5",
        "test_fname": "feat_test.hdf5", "n_worker": 4, "pin_memory": False, "eager": True, "save_dir": "",
        "title": "camelyon", "eps": 0.000001, "seed": 2021, "track_efficiency": False, "track_epoch": 0,
        "is_image": False, "enc_type": "resnet50", "pretrained": False, "n_chan_in": 1024, "shuffle": True,
        "shuffle_style": "batch", "n_token": 1, "M": 100, "M1": 100, "I": 500, "I1": 500, "S": 400, **_AGGREGATION,
        "tasks": {"task0": {"id": 0, "name": "metastases", "act_fn": "sigmoid", "metric": "auc"}},
    }


def ips_mnist_config() -> dict[str, Any]:
    """The IPS Megapixel MNIST file: no S, no attention / sample_style / single, tasks with `multi_label`."""
    return {
        "n_epoch": 150, "B": 16, "B_seq": 16, "n_epoch_warmup": 10, "lr": 0.001, "wd": 0.1, "n_class": 10,
        "data_dir": "", "n_worker": 4, "use_patch_enc": True, "enc_type": "resnet18", "pretrained": False,
        "n_chan_in": 1, "n_res_blocks": 2, "N": 900, "M": 5, "I": 100, "patch_size": [50, 50],
        "patch_stride": [50, 50], "use_pos": True, "H": 8, "D": 128, "D_k": 16, "D_v": 16, "D_inner": 512,
        "attn_dropout": 0.1, "dropout": 0.1,
        "tasks": {
            "task1": {"name": "majority", "act_fn": "softmax", "multi_label": False},
            "task2": {"name": "max", "act_fn": "softmax", "multi_label": False},
            "task3": {"name": "top", "act_fn": "softmax", "multi_label": False},
            "task4": {"name": "multi", "act_fn": "sigmoid", "multi_label": True},
        },
    }


def write(path, config: dict[str, Any]):
    """Write a config as a flat YAML file, as the reference repositories keep them."""
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
