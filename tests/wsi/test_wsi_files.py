"""Coordinate and feature files in CLAM and TRIDENT layouts, with their attributes present and missing."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dbps.wsi import (
    FeatureBag,
    TileSettings,
    list_coord_files,
    list_feature_bags,
    open_slide,
    read_coords,
    tile_slide,
    write_coords,
    write_features,
)

pytest_plugins = ["tests.wsi_data"]

COORDS = np.array([[0, 0], [512, 0], [1024, 512]], dtype=np.int64)


def _h5(path: Path, attrs: dict, coords: np.ndarray = COORDS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle.create_dataset("coords", data=coords).attrs.update(attrs)
    return path


def test_tiled_coordinates_round_trip_with_trident_and_clam_attributes(he_pyramid, tmp_path) -> None:
    with open_slide(he_pyramid) as slide:
        at_10x = tile_slide(slide, TileSettings(magnification=10, thumbnail_size=512), "cmu", tmp_path)
        at_7_5x = tile_slide(slide, TileSettings(magnification=7.5, thumbnail_size=512), "cmu", tmp_path)
    write_coords(tmp_path / "patches" / "cmu.h5", at_10x.coords, at_10x.attrs)
    with h5py.File(tmp_path / "patches" / "cmu.h5") as handle:
        attrs = dict(handle["coords"].attrs)
        assert handle["coords"].dtype == np.int64
    trident = {"patch_size": 256, "patch_size_level0": 512, "level0_magnification": 20.0, "overlap": 0,
               "target_magnification": 10.0, "name": "cmu", "level0_width": 2220, "level0_height": 2964}
    assert {key: attrs[key] for key in trident} == trident and attrs["savetodir"] == str(tmp_path)
    # CLAM reads `patch_size` pixels at `patch_level`: level 1 of this pyramid is exactly 10×
    assert attrs["patch_level"] == 1 and list(attrs["downsample"]) == [2.0, 2.0]
    assert list(attrs["level_dim"]) == list(attrs["downsampled_level_dim"]) == [1110, 1482]
    assert "patch_level" not in at_7_5x.attrs  # no level at 7.5×: CLAM's attributes would describe other patches
    found = read_coords(tmp_path / "patches" / "cmu.h5")
    assert np.array_equal(found.coords, at_10x.coords) and (found.patch_size, found.patch_size_level0) == (256, 512)
    assert (found.target_magnification, found.level0_magnification, found.name) == (10.0, 20.0, "cmu")


def test_trident_files_without_attributes_take_them_from_the_folder_and_the_slide(he_pyramid, tmp_path) -> None:
    bare = _h5(tmp_path / "job" / "10x_256px_32px_overlap" / "patches" / "cmu_patches.h5", {})
    with open_slide(he_pyramid) as slide:  # a 20× slide
        found = read_coords(bare, slide)
    assert (found.patch_size, found.patch_size_level0, found.overlap, found.name) == (256, 512, 32, "cmu")
    assert found.target_magnification == 10.0 and np.array_equal(found.coords, COORDS)
    with pytest.raises(ValueError) as missing:  # without the slide, its magnification is unknown
        read_coords(bare)
    assert str(bare) in str(missing.value) and "level0_magnification (no slide)" in str(missing.value)
    no_level0 = _h5(tmp_path / "t.h5", {"patch_size": 256, "level0_magnification": 40, "target_magnification": 20})
    assert read_coords(no_level0).patch_size_level0 == 512


def test_clam_files_infer_the_level0_size_from_downsample_or_patch_level(he_pyramid, tmp_path) -> None:
    clam = {"patch_size": 256, "patch_level": 1, "downsample": (2.0, 2.0), "name": "cmu", "save_path": "x"}
    assert read_coords(_h5(tmp_path / "patches" / "full.h5", clam)).patch_size_level0 == 512
    level_only = _h5(tmp_path / "patches" / "level.h5", {"patch_size": 256, "patch_level": 1})
    with open_slide(he_pyramid) as slide:
        assert read_coords(level_only, slide).patch_size_level0 == 512
    with pytest.raises(ValueError, match="downsample \\(patch_level needs the slide\\)"):
        read_coords(level_only)
    level0 = _h5(tmp_path / "patches" / "level0.h5", {"patch_size": 512, "patch_level": 0})
    assert read_coords(level0).patch_size_level0 == 512


def test_unreadable_coordinate_files_are_named(tmp_path) -> None:
    nothing = _h5(tmp_path / "a.h5", {})
    with pytest.raises(ValueError) as error:
        read_coords(nothing)
    message = str(error.value)
    for name in ("patch_size", "patch_size_level0", "downsample", "level0_magnification", "target_magnification"):
        assert name in message
    with h5py.File(tmp_path / "b.h5", "w") as handle:
        handle["features"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"b\.h5: no 'coords' dataset"):
        read_coords(tmp_path / "b.h5")
    (tmp_path / "c.h5").write_text("text")
    with pytest.raises(ValueError, match=r"c\.h5: not a readable h5 file"):
        read_coords(tmp_path / "c.h5")
    with pytest.raises(FileNotFoundError, match=r"d\.h5"):
        read_coords(tmp_path / "d.h5")


def test_coordinate_folders_in_clam_and_trident_layouts(tmp_path) -> None:
    _h5(tmp_path / "clam" / "patches" / "s1.h5", {})
    _h5(tmp_path / "clam" / "patches" / "s2.h5", {})
    assert list(list_coord_files(tmp_path / "clam")) == ["s1", "s2"]
    _h5(tmp_path / "job" / "20x_256px_0px_overlap" / "patches" / "s1_patches.h5", {})
    assert list_coord_files(tmp_path / "job") == {"s1": tmp_path / "job/20x_256px_0px_overlap/patches/s1_patches.h5"}
    _h5(tmp_path / "job" / "10x_256px_0px_overlap" / "patches" / "s1_patches.h5", {})
    with pytest.raises(ValueError, match="10x_256px_0px_overlap, 20x_256px_0px_overlap"):
        list_coord_files(tmp_path / "job")
    assert list(list_coord_files(tmp_path / "job" / "10x_256px_0px_overlap")) == ["s1"]


def test_feature_bags_of_clam_and_trident_read_back(tmp_path) -> None:
    features = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    geometry = {"patch_size": 256}
    write_features(tmp_path / "features_uni" / "s1.h5", features, COORDS, encoder="uni", coords_attrs=geometry)
    (tmp_path / "h5_files").mkdir()
    with h5py.File(tmp_path / "h5_files" / "s2.h5", "w") as handle:
        handle["features"], handle["coords"] = features, COORDS  # CLAM: no attributes at all
    (tmp_path / "pt_files").mkdir()
    torch.save(torch.from_numpy(features), tmp_path / "pt_files" / "s2.pt")
    torch.save(torch.from_numpy(features), tmp_path / "pt_files" / "s3.pt")
    bags = list_feature_bags(tmp_path)
    assert {name: path.suffix for name, path in bags.items()} == {"s1": ".h5", "s2": ".h5", "s3": ".pt"}
    trident, clam, pt = (FeatureBag(bags[name]) for name in ("s1", "s2", "s3"))
    assert (trident.num_patches, trident.dim, trident.encoder, clam.encoder) == (3, 8, "uni", None)
    for bag in (trident, clam, pt):
        assert torch.equal(bag.features(), torch.from_numpy(features))
        assert torch.equal(bag.features(np.array([2, 0, 2])), torch.from_numpy(features[[2, 0, 2]]))
    assert np.array_equal(trident.coords(), COORDS) and pt.coords() is None
    with h5py.File(bags["s1"]) as handle:
        assert handle["coords"].attrs["patch_size"] == 256 and handle["features"].dtype == np.float32
    (tmp_path / "features_conch").mkdir()
    with pytest.raises(ValueError, match="features_conch, features_uni"):
        list_feature_bags(tmp_path)


def test_feature_width_is_read_without_the_features(tmp_path) -> None:
    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as handle:  # 40 GB of float32 if it were read; unwritten chunks take no disk
        handle.create_dataset("features", shape=(10_000_000, 1024), dtype=np.float32, chunks=(64, 1024))
    bag = FeatureBag(path)
    assert (bag.num_patches, bag.dim) == (10_000_000, 1024) and path.stat().st_size < 10_000_000
    assert bag.features(np.array([9_999_999, 3])).shape == (2, 1024)


def test_writing_features_is_all_or_nothing(tmp_path) -> None:
    batches = (np.ones((2, 4), dtype=np.float32) for _ in range(1))  # 2 rows for 3 coordinates
    with pytest.raises(ValueError, match="2 feature rows for 3 coordinates"):
        write_features(tmp_path / "s.h5", batches, COORDS, encoder="x", dim=4)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="features must be N × D"):
        torch.save(torch.zeros(3), tmp_path / "v.pt")
        FeatureBag(tmp_path / "v.pt")
