"""Slide tables: labels in CLAM, DBPS and TransMIL layouts; CLAM and TransMIL splits, checked for leakage."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbps.wsi import read_labels, read_splits


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_clam_labels_mapped_by_sorted_labels_or_a_label_dictionary(tmp_path) -> None:
    path = _csv(tmp_path / "labels.csv", "case_id,slide_id,label\nc1,s1,tumor\nc1,s2,normal\nc2,s3,tumor\n")
    assert read_labels(path) == ({"s1": 1, "s2": 0, "s3": 1}, ["normal", "tumor"])
    labels, classes = read_labels(path, {"tumor": 0, "normal": 1})
    assert labels == {"s1": 0, "s2": 1, "s3": 0} and classes == ["tumor", "normal"]
    merged = read_labels(path, {"tumor": 1, "normal": 0, "other": 1})[1]
    assert merged == ["normal", "tumor/other"]
    with pytest.raises(ValueError, match="labels 'tumor' are not in the label dictionary"):
        read_labels(path, {"normal": 0})


def test_dbps_and_transmil_label_tables(tmp_path) -> None:
    dbps = _csv(tmp_path / "label.csv", "slide_name,label\nb,10\na,2\nc,2\n")
    assert read_labels(dbps) == ({"b": 1, "a": 0, "c": 0}, ["2", "10"])  # integer labels sort as numbers
    fold = _csv(tmp_path / "fold0.csv", ",train,train_label,val,val_label,test,test_label\n0,a,1,b,0,c,1\n1,d,0,,,,\n")
    assert read_labels(fold) == ({"a": 1, "d": 0, "b": 0, "c": 1}, ["0", "1"])


def test_bad_label_tables_are_named(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"expected columns slide_id,label .* found slide,y"):
        read_labels(_csv(tmp_path / "a.csv", "slide,y\ns1,0\n"))
    with pytest.raises(ValueError, match="slide 's1' has two labels, '0' and '1'"):
        read_labels(_csv(tmp_path / "b.csv", "slide_id,label\ns1,0\ns1,1\n"))
    with pytest.raises(ValueError, match="slide 's1' has an empty label"):
        read_labels(_csv(tmp_path / "c.csv", "slide_id,label\ns1,\n"))
    with pytest.raises(FileNotFoundError, match=r"d\.csv"):
        read_labels(tmp_path / "d.csv")


def test_clam_splits_are_ragged_with_an_index_column(tmp_path) -> None:
    path = _csv(tmp_path / "splits_0.csv", ",train,val,test\n0,s1,s3,s4\n1,s2,,s5\n2,s6,,\n")
    assert read_splits(path) == {"train": ["s1", "s2", "s6"], "val": ["s3"], "test": ["s4", "s5"]}
    labels = {name: 0 for name in ("s1", "s2", "s3", "s4", "s5", "s6")}
    assert read_splits(path, labels)["train"] == ["s1", "s2", "s6"]


def test_transmil_folds_read_as_splits(tmp_path) -> None:
    path = _csv(tmp_path / "fold1.csv", "train,train_label,val,val_label,test,test_label\na,1,b,0,c,1\nd,0,,,,\n")
    assert read_splits(path) == {"train": ["a", "d"], "val": ["b"], "test": ["c"]}


def test_leakage_and_unlabelled_slides_are_named(tmp_path) -> None:
    leaky = _csv(tmp_path / "splits_1.csv", "train,val,test\ns1,s2,s1\n")
    with pytest.raises(ValueError, match=r"splits_1\.csv: slide 's1' is in both train and test"):
        read_splits(leaky)
    twice = _csv(tmp_path / "splits_2.csv", "train,val,test\ns1,,\ns1,,\n")
    with pytest.raises(ValueError, match="slide 's1' is twice in train"):
        read_splits(twice)
    fine = _csv(tmp_path / "splits_3.csv", "train,val,test\ns1,s2,s3\n")
    with pytest.raises(ValueError, match="2 slides have no label: 's2', 's3'"):
        read_splits(fine, {"s1": 0})
    with pytest.raises(ValueError, match="expected columns train,val,test"):
        read_splits(_csv(tmp_path / "x.csv", "a,b\n1,2\n"))
