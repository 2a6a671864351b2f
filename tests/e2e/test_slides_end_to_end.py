"""Whole slides end to end on a real H&E pyramid: tile → train from pixels → heatmaps; tile → features → train."""

from __future__ import annotations

import csv
import json
import shutil

import h5py
import numpy as np
import pytest
from PIL import Image

from dbps.cli import main
from tests import reference_configs as ref

pytest_plugins = ["tests.wsi_data"]

TINY = [
    "model.dim=16", "model.heads=2", "model.dim_key=8", "model.dim_value=8", "model.dim_ffn=32", "M=2", "I=8",
    "train.epochs=1", "train.warmup_epochs=0", "B=2", "B_seq=1", "data.num_workers=0", "log.progress=false",
    "log.tensorboard=false", "data.generate=null", "tasks=[]",
]
SLIDES = {"normal_001": "normal", "normal_002": "normal", "tumor_001": "tumor", "tumor_002": "tumor",
          "test_001": "tumor", "test_002": "normal"}


@pytest.fixture(scope="module")
def cohort(he_pyramid, tmp_path_factory):
    """Six copies of the real H&E pyramid (CAMELYON16 names), a CLAM labels CSV, tiled at 10× into 128-px patches."""
    root = tmp_path_factory.mktemp("cohort")
    (root / "slides").mkdir()
    for name in SLIDES:
        shutil.copy(he_pyramid, root / "slides" / f"{name}.tiff")
    rows = ["case_id,slide_id,label", *(f"case_{i},{name},{label}" for i, (name, label) in enumerate(SLIDES.items()))]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    tiled = main(["tile", str(root / "slides"), "--out", str(root / "tiles"), "--magnification", "10",
                  "--patch-size", "128", "--thumbnail-size", "256", "--no-progress"])
    assert tiled == 0
    return root


@pytest.mark.slow
def test_train_from_pixels_then_predict_heatmaps(cohort, tmp_path) -> None:
    run = tmp_path / "run"
    argv = ["train", "--config", "quickstart", "--dataset", "slides", f"data.root={cohort / 'slides'}",
            f"data.coords={cohort / 'tiles'}", f"data.labels={cohort / 'labels.csv'}", "model.encoder=small_cnn",
            "selection.method=ips", "S=null", "patches.drop_ratio=0.3", *TINY, "--out", str(run)]
    assert main(argv) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["test"]["label"]) >= {"accuracy", "balanced_accuracy", "auc"}
    rows = list(csv.DictReader((run / "predictions-test.csv").open()))
    assert [row["name"] for row in rows] == ["test_001", "test_002"]
    assert {"label_target", "label_predicted", "label_p_normal", "label_p_tumor"} <= set(rows[0])
    assert abs(float(rows[0]["label_p_normal"]) + float(rows[0]["label_p_tumor"]) - 1) < 1e-4
    assert main(["predict", str(run), "--count", "1"]) == 0
    out = run / "predictions-test"
    picture = Image.open(out / "test_001-heatmap.png")
    assert picture.mode == "RGB" and max(picture.size) > 100
    scores = list(csv.DictReader((out / "test_001-scores.csv").open()))
    with h5py.File(cohort / "tiles" / "patches" / "test_001.h5") as handle:
        coords = handle["coords"][()]
    assert [(int(r["x"]), int(r["y"])) for r in scores] == [tuple(xy) for xy in coords.tolist()]
    assert sum(r["role"] == "salient" for r in scores) == 2  # M
    geojson = json.loads((out / "test_001-salient.geojson").read_text())
    assert geojson["type"] == "FeatureCollection" and len(geojson["features"]) == 2
    ring = geojson["features"][0]["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and ring[1][0] - ring[0][0] == 256  # 128 px at 10× from a 20× slide


@pytest.mark.slow
def test_extract_features_then_train_dbformer_plus_on_them(cohort, tmp_path) -> None:
    features = tmp_path / "features"
    assert main(["extract-features", str(cohort / "slides"), "--coords", str(cohort / "tiles"), "--encoder",
                 "small_cnn", "--dim", "24", "--out", str(features), "--no-progress"]) == 0
    (trident,) = features.glob("features_*")
    assert len(list(trident.glob("*.h5"))) == len(SLIDES)
    run = tmp_path / "run"
    argv = ["train", "--config", "quickstart", "--dataset", "features", f"data.root={features}",
            f"data.labels={cohort / 'labels.csv'}", "model.encoder=projector", "selection.method=dbps+", "S=null",
            "model.aggregator=ABX", "sample_style=half", "ratio=0.3", *TINY, "--out", str(run)]
    assert main(argv) == 0
    auc = json.loads((run / "summary.json").read_text())["test"]["label"]["auc"]
    assert auc in (0.0, 0.5, 1.0)  # one tumour and one normal test slide: the AUC is defined
    assert main(["predict", str(run), "--count", "2"]) == 0
    assert (run / "predictions-test" / "test_002-salient.geojson").is_file()  # TRIDENT features carry coordinates


def _ips_file(path, bags: dict[str, tuple[np.ndarray, int]]) -> None:
    with h5py.File(path, "w") as handle:
        for name, (features, label) in bags.items():
            group = handle.create_group(name)
            group["img"] = features
            group["pos"] = np.zeros((len(features), 2), dtype=np.int64)
            group.attrs["label"] = label


@pytest.mark.slow
def test_the_cvpr_camelyon_config_runs_as_it_is_on_ips_feature_files(tmp_path) -> None:
    rng = np.random.default_rng(0)
    data = tmp_path / "dsets"
    data.mkdir()
    for split, count in (("train", 10), ("test", 4)):
        bags = {f"{split}_{i}": (rng.normal(size=(int(rng.integers(30, 60)), 1024)).astype(np.float32), i % 2)
                for i in range(count)}
        _ips_file(data / f"feat_{split}.hdf5", bags)
    config = ref.write(tmp_path / "camelyon_config.yml", ref.camelyon_config())
    run = tmp_path / "run"
    argv = ["train", "--dataset", "camelyon", "--config", str(config), f"data_dir={data}", "M=4", "I=16", "S=8",
            "D=16", "H=2", "D_k=8", "D_v=8", "D_inner=32", "n_epoch=1", "n_epoch_warmup=0", "B=2", "n_worker=0",
            "log.progress=false", "--out", str(run)]
    assert main(argv) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["test"]) == {"metastases"} and "auc" in summary["test"]["metastases"]
    saved = (run / "config.yaml").read_text()
    assert "encoder: projector" in saved and "method: dbps" in saved and "num_context: 8" in saved
