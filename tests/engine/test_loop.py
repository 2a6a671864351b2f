"""The training loop's protocol options: no validation split, and the test split evaluated after every epoch."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from dbps.config import load_config
from dbps.data import make_megapixel_mnist
from dbps.engine.build import Run
from dbps.engine.checkpoint import load_checkpoint
from dbps.engine.loop import fit

SMALL = [
    "model.encoder=small_cnn", "model.dim=16", "model.heads=2", "model.dim_key=8", "model.dim_value=8",
    "model.dim_ffn=32", "M=2", "S=3", "I=8", "train.epochs=2", "train.warmup_epochs=1", "B=4",
    "data.num_workers=0", "log.progress=false", "log.heatmaps=0", "log.tensorboard=false", "data.generate=null",
    "tasks=[majority, multi]",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    make_megapixel_mnist(root, n_train=12, n_test=6, size=112, n_noise=2, progress=False)
    return root


def train(data, run_dir, *overrides: str) -> dict:
    config, _ = load_config("quickstart", [f"data.root={data}", *SMALL, *overrides])
    return fit(Run.from_config(config, progress=False), run_dir)


def test_without_validation_every_image_trains_and_best_is_the_last_epoch(data, tmp_path) -> None:
    config, _ = load_config("quickstart", [f"data.root={data}", *SMALL, "data.val_fraction=0"])
    run = Run.from_config(config, progress=False)
    assert len(run.data.train) == 12 and len(run.data.val) == 0
    assert any("no validation split" in note for note in run.notes)
    summary = fit(run, tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert not any(key.startswith("val_") for key in rows[0])
    assert summary["best_epoch"] == 2 and summary["best_val_score"] is None
    best, last = load_checkpoint(tmp_path / "run" / "best.pt"), load_checkpoint(tmp_path / "run" / "last.pt")
    assert all(torch.equal(best["model"][key], last["model"][key]) for key in last["model"])


def test_test_every_epoch_logs_test_metrics_and_leaves_the_choice_to_validation(data, tmp_path) -> None:
    summary = train(data, tmp_path / "run", "log.test_every_epoch=true", "data.val_fraction=0.25")
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert len(rows) == 2
    for row in rows:
        assert 0 <= float(row["test_majority_accuracy"]) <= 1 and float(row["test_loss"]) > 0
        assert 0 <= float(row["val_majority_accuracy"]) <= 1
    # the last row's test metrics are those of the last epoch's weights; summary.json tests best.pt
    best_epoch = summary["best_epoch"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["best_epoch"] == best_epoch
    tested = rows[best_epoch - 1]
    assert float(tested["test_majority_accuracy"]) == pytest.approx(summary["test"]["majority"]["accuracy"])
