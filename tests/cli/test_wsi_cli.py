"""`dbps tile` and `dbps extract-features` end to end on real slides: outputs, skip-done, resume, error logs."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from dbps.cli import main
from dbps.engine.extract import build_feature_encoder, extract_features
from dbps.wsi import SlidePatches, list_slides, read_coords

pytest_plugins = ["tests.wsi_data"]

TILE = ["--thumbnail-size", "512", "--magnification", "10", "--no-progress"]


@pytest.fixture(scope="module")
def tiled(he_pyramid, he_region, openslide_files, tmp_path_factory):
    """Two real slides and a corrupt one in a folder, tiled once."""
    root = tmp_path_factory.mktemp("cli")
    slides = root / "slides"
    slides.mkdir()
    shutil.copy(he_pyramid, slides / "pyramid.tiff")
    shutil.copy(he_region, slides / "region.svs")
    shutil.copy(openslide_files / "unreadable.svs", slides / "corrupt.svs")
    assert main(["tile", str(slides), "--out", str(root / "tiles"), *TILE]) == 1  # one slide failed
    return slides, root / "tiles"


def test_tile_writes_coordinates_and_previews_and_logs_the_corrupt_slide(tiled, capsys) -> None:
    slides, out = tiled
    assert sorted(p.name for p in (out / "patches").iterdir()) == ["pyramid.h5", "region.h5"]
    errors = (out / "errors.log").read_text().splitlines()
    assert len(errors) == 1 and errors[0].startswith(f"{slides / 'corrupt.svs'}: ") and "unreadable" in errors[0]
    pyramid, region = read_coords(out / "patches" / "pyramid.h5"), read_coords(out / "patches" / "region.h5")
    assert pyramid.patch_size_level0 == region.patch_size_level0 == 512 and len(pyramid.coords) > 5
    assert np.abs(pyramid.coords.shape[0] - region.coords.shape[0]) <= 2  # the same tissue, cropped by ≤ 3 px
    preview = Image.open(out / "thumbnails" / "pyramid.png")
    assert max(preview.size) == 512 and preview.mode == "RGB"


def test_tile_skips_what_is_done_redoes_with_force_and_refuses_other_settings(tiled, capsys) -> None:
    slides, out = tiled
    done = out / "patches" / "pyramid.h5"
    stamp = done.stat().st_mtime_ns
    assert main(["tile", str(slides / "pyramid.tiff"), str(slides / "region.svs"), "--out", str(out), *TILE]) == 0
    assert "tiled 0 slides (0 patches), skipped 2 already done" in capsys.readouterr().out
    assert done.stat().st_mtime_ns == stamp and not (out / "errors.log").exists()
    assert main(["tile", str(slides / "pyramid.tiff"), "--out", str(out), "--patch-size", "128", *TILE]) == 1
    assert "exists with other settings: patch_size 256 (not 128)" in (out / "errors.log").read_text()
    assert main(["tile", str(slides / "pyramid.tiff"), "--out", str(out), "--force", *TILE]) == 0
    assert done.stat().st_mtime_ns != stamp


def test_slides_are_listed_from_files_and_folders_with_unique_names(tiled, tmp_path) -> None:
    slides, _ = tiled
    names = [p.name for p in list_slides([slides, slides / "region.svs"])]
    assert names == ["corrupt.svs", "pyramid.tiff", "region.svs"]  # given twice, listed once
    (tmp_path / "region.tiff").touch()
    with pytest.raises(ValueError, match="two slides share the name 'region'"):
        list_slides([slides, tmp_path])
    (tmp_path / "notes.txt").touch()
    (tmp_path / "region.tiff").unlink()
    with pytest.raises(ValueError, match="no slides found in"):
        list_slides([tmp_path])


def test_tile_errors_on_bad_input_are_one_line(tmp_path, capsys) -> None:
    assert main(["tile", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == f"dbps: error: slide or folder not found: {tmp_path / 'absent'}"


def _features(path):
    with h5py.File(path) as handle:
        return handle["features"][()], handle["coords"][()], handle["features"].attrs["encoder"]


def test_extract_features_writes_trident_bags_and_resumes(tiled, tmp_path, capsys) -> None:
    slides, tiles = tiled
    args = ["extract-features", str(slides / "pyramid.tiff"), str(slides / "region.svs"), "--coords", str(tiles),
            "--encoder", "small_cnn", "--dim", "16", "--out", str(tmp_path), "--device", "cpu", "--batch-size", "8",
            "--no-progress"]
    assert main(args) == 0
    folder = tmp_path / "features_small_cnn_dim16"
    features, coords, encoder = _features(folder / "pyramid.h5")
    expected = read_coords(tiles / "patches" / "pyramid.h5").coords
    assert features.shape == (len(expected), 16) and features.dtype == np.float32 and encoder == "small_cnn_dim16"
    assert np.array_equal(coords, expected) and np.isfinite(features).all() and features.std() > 0
    capsys.readouterr()
    stamp = (folder / "pyramid.h5").stat().st_mtime_ns
    assert main(args) == 0 and "encoded 0 slides (0 patches), skipped 2" in capsys.readouterr().out
    (folder / "region.h5").unlink()
    assert main(args) == 0 and "encoded 1 slides" in capsys.readouterr().out
    assert (folder / "region.h5").is_file() and (folder / "pyramid.h5").stat().st_mtime_ns == stamp


def test_extracted_features_equal_the_encoder_on_the_patches(tiled, tmp_path) -> None:
    slides, tiles = tiled
    encoder = build_feature_encoder("small_cnn", dim=16)
    summary = extract_features([slides / "pyramid.tiff", slides / "corrupt.svs"], tiles, encoder, tmp_path,
                               tag="cnn", batch_size=5, progress=False)
    assert [p.name for p in summary.done] == ["pyramid.tiff"] and summary.failed[0][0].name == "corrupt.svs"
    assert "no coordinates for slide 'corrupt'" in (tmp_path / "features_cnn" / "errors.log").read_text()
    features, _, _ = _features(tmp_path / "features_cnn" / "pyramid.h5")
    found = read_coords(tiles / "patches" / "pyramid.h5")
    imagenet = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    with SlidePatches(slides / "pyramid.tiff", found.coords, 512, 256, **imagenet) as source, torch.no_grad():
        reference = encoder(source.fetch(torch.arange(source.num_patches).unsqueeze(0))[0])
    assert torch.allclose(torch.from_numpy(features), reference, atol=1e-4)


def test_pretrained_weights_never_fall_back_to_random(monkeypatch, tmp_path) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match=r"not available offline.*--weights PATH.*network access"):
        build_feature_encoder("resnet18", pretrained=True, stages=1)
    with pytest.raises(ValueError, match="'small_cnn' has no pretrained weights"):
        build_feature_encoder("small_cnn", pretrained=True)
