"""`extract-features --encoder uni_v1 --weights FILE` on the real H&E slide; training checks the bags' encoder."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from dbps.cli import main
from dbps.models.pathology import PATHOLOGY_ENCODERS, create_pathology_encoder, pathology_recipe
from dbps.wsi import SlidePatches, read_coords
from dbps.wsi.features_io import write_features

pytest_plugins = ["tests.wsi_data", "tests.pathology_data"]


@pytest.fixture
def tiny_uni(monkeypatch, tmp_path):
    """`uni_v1` at a tiny depth and width (same recipe otherwise), and a weights file of it."""
    tiny = pathology_recipe("uni_v1").tiny()
    monkeypatch.setitem(PATHOLOGY_ENCODERS._entries, "uni_v1", lambda: tiny)
    encoder = create_pathology_encoder("uni_v1", random_weights=True).eval()
    weights = tmp_path / "pytorch_model.bin"
    torch.save(encoder.backbone.vit.state_dict(), weights)
    return encoder, weights


def test_extract_features_with_a_named_encoder_writes_bags_that_name_it(he_tiles, tiny_uni, tmp_path, capsys) -> None:
    encoder, weights = tiny_uni
    out = tmp_path / "out"
    argv = ["extract-features", str(he_tiles / "slides"), "--coords", str(he_tiles / "tiles"), "--encoder", "uni_v1",
            "--weights", str(weights), "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    bag = out / "features_uni_v1" / "cmu.h5"
    with h5py.File(bag) as handle:
        features, coords = np.asarray(handle["features"]), np.asarray(handle["coords"])
        attrs = dict(handle["features"].attrs)
    assert attrs["encoder"] == "uni_v1" and attrs["embed_dim"] == 32 and attrs["name"] == "cmu"
    assert features.shape == (len(coords), 32)
    found = read_coords(he_tiles / "tiles" / "patches" / "cmu.h5", he_tiles / "slides" / "cmu.tiff")
    with SlidePatches(he_tiles / "slides" / "cmu.tiff", found.coords, found.patch_size_level0, found.patch_size,
                      mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)) as source, torch.no_grad():
        expected = encoder(source.fetch(torch.arange(4)[None])[0])  # UNI: ImageNet normalisation, resized to 224
    np.testing.assert_allclose(features[:4], expected.numpy(), rtol=1e-4, atol=1e-4)

    torch.save({"head.weight": torch.zeros(2, 2)}, tmp_path / "other.bin")
    argv[argv.index(str(weights))] = str(tmp_path / "other.bin")
    argv[argv.index(str(out))] = str(tmp_path / "out2")
    capsys.readouterr()
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "other.bin" in error and "missing" in error and "MahmoodLab/UNI" in error
    assert not (tmp_path / "out2" / "features_uni_v1" / "cmu.h5").exists()


def _bags(root, encoder: str, width: int, count: int = 6) -> None:
    rng = np.random.default_rng(1)
    rows = ["slide_id,label"]
    for i in range(count):
        name = f"{'test' if i >= count - 2 else 'train'}_{i}"
        write_features(root / f"features_{encoder}" / f"{name}.h5", rng.normal(size=(8, width)).astype(np.float32),
                       np.zeros((8, 2), dtype=np.int64), encoder=encoder)
        rows.append(f"{name},{i % 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


TRAIN = ["train", "--config", "quickstart", "--dataset", "features", "model.encoder=projector", "model.dim=8",
         "model.heads=2", "model.dim_key=4", "model.dim_value=4", "model.dim_ffn=16", "M=2", "I=4", "S=2",
         "train.epochs=1", "train.warmup_epochs=0", "B=2", "data.num_workers=0", "log.progress=false",
         "log.tensorboard=false", "data.generate=null", "tasks=[]", "log.heatmaps=0",
         "data.val_fraction=0.25"]


def test_training_on_feature_bags_checks_their_encoder_and_width(tiny_uni, tmp_path, capsys) -> None:
    _bags(tmp_path, "uni_v1", 32)
    data = [f"data.root={tmp_path}", f"data.labels={tmp_path / 'labels.csv'}"]
    assert main([*TRAIN, *data, "data.feature_encoder=uni_v1", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    assert main([*TRAIN, *data, "data.feature_encoder=virchow2", "--out", str(tmp_path / "run2")]) == 2
    error = capsys.readouterr().err
    assert "features of encoder 'uni_v1', not 'virchow2'" in error and not (tmp_path / "run2").exists()
    write_features(tmp_path / "features_uni_v1" / "train_0.h5", np.zeros((8, 16), dtype=np.float32),
                   np.zeros((8, 2), dtype=np.int64), encoder="uni_v1")
    assert main([*TRAIN, *data, "--out", str(tmp_path / "run3")]) == 2
    error = capsys.readouterr().err
    assert "features of width 32, but" in error and "train_0.h5 has 16: bags of two encoders?" in error


@pytest.mark.slow
def test_a_named_encoder_trains_from_pixels_with_stain_normalisation_and_jitter(he_pyramid, tiny_uni, tmp_path):
    from dbps.config import load_config
    from dbps.engine.build import patch_spec

    _, weights = tiny_uni
    (tmp_path / "slides").mkdir()
    rows = ["slide_id,label"]
    for i, name in enumerate(["train_0", "train_1", "train_2", "train_3", "test_0", "test_1"]):
        (tmp_path / "slides" / f"{name}.tiff").symlink_to(he_pyramid)
        rows.append(f"{name},{i % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert main(["tile", str(tmp_path / "slides"), "--out", str(tmp_path / "tiles"), "--magnification", "5",
                 "--patch-size", "112", "--thumbnail-size", "128", "--no-progress"]) == 0
    data = [f"data.root={tmp_path / 'slides'}", f"data.coords={tmp_path / 'tiles'}",
            f"data.labels={tmp_path / 'labels.csv'}"]
    model = ["model.encoder=uni_v1", f"model.weights={weights}", "model.dim=8", "model.heads=2", "model.dim_key=4",
             "model.dim_value=4", "model.dim_ffn=16", "model.aggregator=TransMIL"]
    argv = ["train", "--config", "quickstart", "--dataset", "slides", *data, *model, "selection.method=ips", "S=null",
            "M=2", "I=4", "train.epochs=1", "train.warmup_epochs=0", "B=2", "data.num_workers=0", "log.progress=false",
            "log.tensorboard=false", "data.generate=null", "tasks=[]", "log.heatmaps=0", "data.val_fraction=0.25",
            "data.stain_norm=macenko", "data.augment.hed_jitter=light", "data.augment.stain_per=slide",
            "--out", str(tmp_path / "run")]
    assert main(argv) == 0 and (tmp_path / "run" / "summary.json").is_file()
    config, _ = load_config("quickstart", ["data.name=slides", "model.encoder=hoptimus0"])
    assert patch_spec(config).mean == pathology_recipe("hoptimus0").mean  # the encoder's, not ImageNet's


def test_extract_features_with_stain_normalisation_files_them_apart(he_tiles, tmp_path) -> None:
    out = tmp_path / "out"
    argv = ["extract-features", str(he_tiles / "slides"), "--coords", str(he_tiles / "tiles"), "--encoder",
            "small_cnn", "--out", str(out), "--no-progress", "--device", "cpu", "--stain-norm", "macenko"]
    assert main(argv) == 0
    with h5py.File(out / "features_small_cnn_macenko" / "cmu.h5") as handle:
        attrs = dict(handle["features"].attrs)
    assert attrs["encoder"] == "small_cnn" and attrs["stain_norm"] == "macenko" and attrs["stain_fit"] == "slide"
    assert main([*argv[:-2], "--stain-reference", str(tmp_path / "nope.png"), "--stain-norm", "reinhard"]) == 2
