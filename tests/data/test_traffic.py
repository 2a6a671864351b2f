"""Swedish Traffic Signs: the reference label rules on hand-written annotation lines, the seed split, and errors."""

from __future__ import annotations

import pytest
import torch

from dbps.data.image_dataset import ImageDataset
from dbps.data.traffic import (
    TRAFFIC_CLASSES,
    Sign,
    parse_annotation_line,
    parse_sign,
    traffic_label,
    traffic_set,
    traffic_splits,
)

pytest.importorskip("skimage")
from tests.photo_fixtures import TRAFFIC_LABELS, TRAFFIC_SETS, make_traffic_signs


@pytest.mark.parametrize(("name", "signs"), [line for lines in TRAFFIC_SETS.values() for line in lines])
def test_label_rules_on_hand_written_lines(name, signs) -> None:
    file, parsed = parse_annotation_line(f"{name}:{signs}", "annotations.txt line 1")
    assert file == name and traffic_label(parsed) == TRAFFIC_LABELS[name]


def test_sign_fields_and_trailing_junk() -> None:
    sign = parse_sign(" VISIBLE, 1002.78l, 420.14, 962.96, 381.23, PROHIBITORY, 70_SIGN", "here")
    assert sign == Sign("VISIBLE", pytest.approx((1002.78 - 962.96) * (420.14 - 381.23)), "PROHIBITORY", "70_SIGN")
    assert parse_sign("MISC_SIGNS", "here") is None
    assert parse_sign("WEIRD, 1, 1, 0, 0, OTHER, PEDESTRIAN_CROSSING", "here").name == "PEDESTRIAN_CROSSING"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("VISIBLE, 1, 2, PROHIBITORY", "is not `VISIBILITY"),
        ("HIDDEN, 1, 1, 0, 0, PROHIBITORY, 50_SIGN", "visibility 'HIDDEN'"),
        ("VISIBLE, x, 1, 0, 0, PROHIBITORY, 50_SIGN", "'x' is not a number"),
    ],
)
def test_malformed_signs_are_named(text, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_annotation_line(f"a.jpg:{text}", "Set1/annotations.txt line 4")
    with pytest.raises(ValueError, match="line 4: 'no colon here'"):
        parse_annotation_line("no colon here", "Set1/annotations.txt line 4")


def test_ties_keep_the_first_sign() -> None:
    first, second = (Sign("VISIBLE", 10.0, "PROHIBITORY", name) for name in ("70_SIGN", "50_SIGN"))
    assert traffic_label([first, second]) == 2 and traffic_label([second, first]) == 1


def test_seed_parity_picks_the_sets_as_ips() -> None:
    assert (traffic_set(0, True), traffic_set(0, False)) == ("Set1", "Set2")
    assert (traffic_set(1, True), traffic_set(1, False)) == ("Set2", "Set1")
    assert traffic_set(2, True) == "Set1"


def test_splits_keep_the_reference_images_in_file_order(tmp_path) -> None:
    root = make_traffic_signs(tmp_path)
    for seed, train_set in ((0, "Set1"), (1, "Set2")):
        splits = traffic_splits(root, seed)
        test_set = {"Set1": "Set2", "Set2": "Set1"}[train_set]
        for split, set_name in (("train", train_set), ("test", test_set)):
            names = [name for name, _ in TRAFFIC_SETS[set_name] if TRAFFIC_LABELS[name] is not None]
            kept = [(name, TRAFFIC_LABELS[name]) for name in names]
            files = splits[split]
            assert files.classes == TRAFFIC_CLASSES
            assert [(p.name, label) for p, label in zip(files.paths, files.labels, strict=True)] == kept
            assert all(p.parent == root / set_name for p in files.paths)
    image, targets = ImageDataset(traffic_splits(root)["test"], resize=(120, 160), task_names=["sign"])[1]
    assert image.shape == (3, 120, 160) and targets["sign"] == torch.tensor(1)


def test_missing_files_are_named_with_what_is_expected(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"Set1/annotations\.txt: not found; expected the Swedish Traffic"):
        traffic_splits(tmp_path)
    root = make_traffic_signs(tmp_path)
    (root / "Set2" / "fifty.jpg").unlink()
    (root / "Set2" / "side_road.jpg").unlink()  # dropped by the rules: not needed
    with pytest.raises(FileNotFoundError, match=r"Set2/annotations.txt: 1 listed image\(s\) missing: .*fifty.jpg$"):
        traffic_splits(root)
