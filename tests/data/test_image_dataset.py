"""Class folders, CSV lists and DDR lists: labels and class order against a brute-force walk, items, and errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dbps.data.folder import ImageFolderDataset, folder_splits, scan_split
from dbps.data.image_dataset import ImageDataset, SplitFiles
from dbps.data.listfile import DDR_GRADES, csv_splits, ddr_splits

pytest.importorskip("skimage")
from tests.photo_fixtures import make_csv_list, make_ddr_layout, make_photo_folder


@pytest.fixture(scope="module")
def photo_root(tmp_path_factory) -> Path:
    return make_photo_folder(tmp_path_factory.mktemp("photos"))


@pytest.fixture()
def scratch(photo_root, tmp_path) -> Path:
    """A copy of the photo folder that a test may break."""
    return Path(shutil.copytree(photo_root, tmp_path / "copy"))


def brute_force(split_dir: Path, classes: list[str]) -> list[tuple[Path, int]]:
    extensions = {".jpg", ".png", ".tif", ".webp"}
    files = [p for p in split_dir.rglob("*") if p.suffix in extensions and not p.name.startswith(".")]
    return sorted((p, classes.index(p.parent.name)) for p in files)


def test_folder_splits_match_a_brute_force_walk(photo_root) -> None:
    splits = folder_splits(photo_root)
    assert list(splits) == ["train", "val", "test"]
    classes = sorted(p.name for p in (photo_root / "train").iterdir())
    for split, files in splits.items():
        assert files.classes == classes == ["fundus", "scene", "texture"]
        assert list(zip(files.paths, files.labels, strict=True)) == brute_force(photo_root / split, classes)
    assert len(splits["train"].paths) == 12 and not any(p.name.startswith(".") for p in splits["train"].paths)


def test_items_follow_the_contract(photo_root) -> None:
    classes = ["fundus", "scene", "texture"]
    dataset = ImageFolderDataset(photo_root / "test", classes, resize=(48, 64), task_names=["a", "b"])
    assert dataset.classes == ["fundus", "scene", "texture"] and dataset.labels() == [0, 0, 1, 1, 2, 2]
    for i in range(len(dataset)):
        image, targets = dataset[i]
        assert image.dtype == torch.uint8 and image.shape == (3, 48, 64)
        assert set(targets) == {"a", "b"} and targets["a"].dtype == torch.long
        assert int(targets["a"]) == int(targets["b"]) == dataset.labels()[i]
    native = ImageFolderDataset(photo_root / "test", channels=1)
    shapes = {tuple(native[i][0].shape) for i in range(len(native))}
    assert len(shapes) > 1 and all(shape[0] == 1 and 60 <= min(shape[1:]) <= max(shape[1:]) <= 200 for shape in shapes)


def test_sub_folders_count_and_hidden_folders_do_not(scratch) -> None:
    image = next((scratch / "train" / "scene").glob("*.jpg"))
    for folder in ("more", ".thumbnails"):
        (scratch / "train" / "scene" / folder).mkdir()
        shutil.copy(image, scratch / "train" / "scene" / folder / "copy.jpg")
    paths = folder_splits(scratch)["train"].paths
    assert len(paths) == 13 and scratch / "train" / "scene" / "more" / "copy.jpg" in paths


def test_valid_is_accepted_but_not_beside_val(scratch) -> None:
    (scratch / "val").rename(scratch / "valid")
    assert len(folder_splits(scratch)["val"].paths) == 6
    shutil.copytree(scratch / "valid", scratch / "val")
    with pytest.raises(ValueError, match="keep one validation folder"):
        folder_splits(scratch)


def test_test_class_unknown_to_train_is_named(scratch) -> None:
    (scratch / "test" / "texture").rename(scratch / "test" / "textures")
    with pytest.raises(ValueError, match=r"\['textures'\] are not among the training classes"):
        folder_splits(scratch)


def test_a_class_missing_from_test_is_fine(scratch) -> None:
    shutil.rmtree(scratch / "test" / "scene")
    assert folder_splits(scratch)["test"].labels == [0, 0, 2, 2]


def test_empty_class_and_empty_split_are_named(scratch, tmp_path) -> None:
    (scratch / "train" / "empty").mkdir()
    (scratch / "train" / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(ValueError, match="train/empty: no image files"):
        folder_splits(scratch)
    (tmp_path / "bare" / "train").mkdir(parents=True)
    with pytest.raises(ValueError, match="train: no class folders"):
        scan_split(tmp_path / "bare" / "train")
    with pytest.raises(FileNotFoundError, match="bare/test: no such folder"):
        folder_splits(tmp_path / "bare")


def test_dataset_rejects_bad_arguments(photo_root) -> None:
    files = SplitFiles([photo_root / "x.jpg"], [3], ["a", "b"])
    with pytest.raises(ValueError, match="label 3 is outside the 2 classes"):
        ImageDataset(files)
    with pytest.raises(ValueError, match="resize"):
        ImageDataset(SplitFiles([], [], ["a"]), resize=(0, 5))


def test_csv_list_with_header_names_and_split_column(tmp_path) -> None:
    csv_path = make_csv_list(tmp_path)
    splits = csv_splits(csv_path)
    assert list(splits) == ["train", "val", "test"]
    rows = [line.split(",") for line in csv_path.read_text().splitlines()[1:]]
    classes = sorted({row[1] for row in rows})
    for split, files in splits.items():
        expected = [(tmp_path / r[0], classes.index(r[1])) for r in rows if {"valid": "val"}.get(r[2], r[2]) == split]
        assert files.classes == classes and list(zip(files.paths, files.labels, strict=True)) == expected
    image, targets = ImageDataset(splits["test"], resize=(32, 40))[0]
    assert image.shape == (3, 32, 40) and int(targets["label"]) == splits["test"].labels[0]


def test_csv_int_labels_without_header_or_split_and_an_image_root(tmp_path) -> None:
    make_csv_list(tmp_path)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "test.csv").write_text("images/test_fundus_0.png,2\nimages/test_scene_0.png,0\n")
    splits = csv_splits(lists / "test.csv", image_root=tmp_path, default_split="test")
    assert list(splits) == ["test"] and splits["test"].labels == [2, 0] and splits["test"].classes == ["0", "1", "2"]
    with pytest.raises(ValueError, match="label 2 is outside the 2 classes"):
        csv_splits(lists / "test.csv", image_root=tmp_path, classes=["a", "b"])


def test_csv_errors_name_the_file_and_row(tmp_path) -> None:
    make_csv_list(tmp_path)
    bad = tmp_path / "bad.csv"
    bad.write_text("images/test_fundus_0.png,fundus,holdout\n")
    with pytest.raises(ValueError, match="row 1 has split 'holdout'"):
        csv_splits(bad)
    bad.write_text("images/test_fundus_0.png,fundus\n")
    with pytest.raises(ValueError, match="row 1 has split 'dev'"):
        csv_splits(bad, default_split="dev")
    bad.write_text("images/test_fundus_0.png\n")
    with pytest.raises(ValueError, match="row 1"):
        csv_splits(bad)
    bad.write_text("".join(f"images/gone_{i}.png,fundus\n" for i in range(5)) + "images/test_fundus_0.png,fundus\n")
    with pytest.raises(FileNotFoundError, match=r"5 listed image\(s\) missing: .*gone_0.png.* and 2 more"):
        csv_splits(bad)
    with pytest.raises(ValueError, match=r"\['cat'\] are not among the classes"):
        bad.write_text("images/test_fundus_0.png,cat\n")
        csv_splits(bad, classes=["fundus", "scene"])


def test_ddr_lists_drop_ungradable_by_default(tmp_path, caplog) -> None:
    root = make_ddr_layout(tmp_path)
    with caplog.at_level("INFO"):
        splits = ddr_splits(root)
    assert "DDR train: left out 2 ungradable (grade 5) images" in caplog.text
    assert list(splits) == ["train", "val", "test"]
    assert splits["train"].classes == DDR_GRADES[:5]
    assert splits["train"].labels == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4] and splits["test"].labels == [0, 1, 2, 3, 4]
    assert splits["val"].paths[0] == root / "DR_grading" / "valid" / "valid-000.jpg"
    kept = ddr_splits(root / "DR_grading", keep_ungradable=True)
    assert kept["train"].classes == DDR_GRADES and kept["train"].labels[-2:] == [5, 5]


def test_ddr_errors_name_what_is_missing(tmp_path) -> None:
    root = make_ddr_layout(tmp_path)
    (root / "DR_grading" / "test" / "test-002.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=r"test.txt: 1 listed image\(s\) missing: .*test-002.jpg"):
        ddr_splits(root)
    (root / "DR_grading" / "train.txt").write_text("a.jpg 7\n")
    with pytest.raises(ValueError, match=r"train.txt: line 1 'a.jpg 7'"):
        ddr_splits(root)
    (root / "DR_grading" / "train.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"DR_grading/train\.txt"):
        ddr_splits(root)
