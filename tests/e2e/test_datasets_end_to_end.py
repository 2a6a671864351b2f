"""Every dataset kind, built from real photos, trains → evaluates → predicts with each method through the CLI."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import pytest

from dbps.cli import main
from tests import photo_fixtures as photos
from tests import reference_configs as ref

TINY = [
    "model.encoder=small_cnn", "model.dim=16", "model.heads=2", "model.dim_key=8", "model.dim_value=8",
    "model.dim_ffn=32", "model.pretrained=false", "M=2", "I=4", "train.epochs=1", "train.warmup_epochs=0", "B=4",
    "data.num_workers=0", "log.progress=false", "log.tensorboard=false",
]
METHODS = {
    "ips": ["selection.method=ips", "S=null"],
    "dbps": ["selection.method=dbps", "S=3"],
    "dbps+": ["selection.method=dbps+", "S=null", "sample_style=half", "ratio=0.3"],
}


def make(kind: str, root: Path) -> tuple[list[str], Path]:
    """The `--config`/`--dataset` arguments and overrides for a dataset kind built in `root`."""
    if kind == "folder":  # native sizes (60–200 px): images of one batch differ in size
        return ["--config", "quickstart", "data.name=folder", f"data.root={photos.make_photo_folder(root)}",
                "data.generate=null", "tasks=[]", "patches.size=32", "data.augment.translate=8"], root
    if kind == "list":
        csv_path = photos.make_csv_list(root)
        return ["--config", "quickstart", "data.name=list", f"data.root={root}", f"data.train_file={csv_path.name}",
                "data.generate=null", "tasks=[]", "patches.size=[40, 50]"], root
    if kind == "eyes":  # a DDR release under its reference name
        return ["--config", "quickstart", "--dataset", "eyes", f"data.root={photos.make_ddr_layout(root)}",
                "data.generate=null", "tasks=[]", "patches.size=32"], root
    if kind == "traffic":
        return ["--config", "quickstart", "--dataset", "traffic", f"data.root={photos.make_traffic_signs(root)}",
                "data.generate=null", "tasks=[]", "data.resize=[96, 128]", "patches.size=32",
                "data.augment.translate=10"], root
    assert kind == "mnist"  # the reference generator's files
    return ["--config", "quickstart", "--dataset", "mnist", f"data.root={photos.make_reference_mnist(root)}",
            "data.generate=null", "tasks=[majority, multi]", "data.val_fraction=0.25"], root


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("kind", ["folder", "list", "eyes", "traffic", "mnist"])
def test_each_kind_trains_evaluates_and_predicts(tmp_path, capsys, kind: str, method: str) -> None:
    args, _ = make(kind, tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", *args, "--out", str(run), *TINY, *METHODS[method]]) == 0, capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test"] and all(0 <= v <= 1 for task in summary["test"].values() for v in task.values()
                                   if v == v)
    assert main(["eval", str(run)]) == 0
    assert json.loads((run / "eval-test.json").read_text())["tasks"] == summary["test"]
    assert main(["predict", str(run), "--count", "2"]) == 0
    rows = list(csv.DictReader((run / "predictions-test" / "predictions.csv").open()))
    assert len(rows) == 2 and all(row["heatmap"] for row in rows)
    if kind != "mnist":  # single-label photo tasks get a confusion matrix over their classes
        assert (run / "confusion-test-label.csv").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(ref.HEAD_VARIANTS))
def test_reference_head_config_runs_with_dataset_and_config_as_users_bring_them(tmp_path, capsys, caplog,
                                                                                variant) -> None:
    caplog.set_level(logging.INFO)
    root = photos.make_photo_folder(tmp_path / "cqu")
    config = ref.head_config("cqu_bpdd", variant) | {"n_class": 3, "height": 64, "width": 96,
                                                     "patch_size": [32, 32], "patch_stride": [32, 32]}
    path = ref.write(tmp_path / f"cqu_bpdd_{variant}.yml", config)
    run = tmp_path / "run"
    argv = ["train", "--dataset", "cqu_bpdd", "--config", str(path), f"data_dir={root}", "--out", str(run), *TINY,
            "B_seq=2"]
    assert main(argv) == 0, capsys.readouterr().err
    err = caplog.text
    method = {"db+": "dbps+", "db": "dbps+", "ips": "ips"}[variant]
    assert f"note: runs {method}: " in err and "note: N: the config says 30" in err
    saved = (run / "config.yaml").read_text()
    assert "name: cqu_bpdd" in saved and "- 64" in saved
    assert json.loads((run / "summary.json").read_text())["test"]["sign"]["accuracy"] >= 0
