"""k-fold cross-validation: patient-grouped stratified splits without leakage, and `dbps cv` end to end on feature
bags of the real H&E slide, with a kill and a resume that ends in the uninterrupted result."""

from __future__ import annotations

import csv
import logging
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dbps.cli import main
from dbps.engine.cv_report import bootstrap_ci
from dbps.tasks import Activation
from dbps.wsi.folds import check_patient_leakage, make_splits, read_patients
from dbps.wsi.tables import read_labels, read_splits

pytest_plugins = ["tests.wsi_data", "tests.pathology_data"]


def _labels(path: Path) -> Path:
    """12 patients, 1–3 slides each, some patients with slides of both classes (as in CAMELYON)."""
    rows = ["case_id,slide_id,label"]
    for patient in range(12):
        for copy in range(1 + patient % 3):
            label = "tumor" if (patient + copy * (patient % 4 == 0)) % 2 else "normal"
            rows.append(f"p{patient},p{patient}_s{copy},{label}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_folds_keep_patients_together_stratify_and_test_every_slide_once(tmp_path) -> None:
    labels_csv = _labels(tmp_path / "labels.csv")
    files = make_splits(labels_csv, tmp_path / "splits", folds=4, seed=3)
    labels, _ = read_labels(labels_csv)
    patients = read_patients(labels_csv)
    tested = Counter()
    for path in files:
        split = read_splits(path, labels)
        check_patient_leakage(split, patients)
        for name in ("train", "val", "test"):
            others = {patients[s] for other in ("train", "val", "test") if other != name for s in split[other]}
            assert not {patients[s] for s in split[name]} & others  # no patient in two sets
        assert set(split["train"]) | set(split["val"]) | set(split["test"]) == set(labels)
        assert {labels[s] for s in split["test"]} == {0, 1}  # stratified: both classes in every test fold
        tested.update(split["test"])
    assert set(tested.values()) == {1} and set(tested) == set(labels)
    header = (tmp_path / "splits" / "splits_0.csv").read_text().splitlines()[0]
    assert header == ",train,val,test"  # CLAM's layout
    again = make_splits(labels_csv, tmp_path / "again", folds=4, seed=3)
    assert [p.read_text() for p in again] == [p.read_text() for p in files]
    other = make_splits(labels_csv, tmp_path / "other", folds=4, seed=4)
    assert [p.read_text() for p in other] != [p.read_text() for p in files]


def test_leakage_and_impossible_folds_are_refused(tmp_path) -> None:
    labels_csv = _labels(tmp_path / "labels.csv")
    patients = read_patients(labels_csv)
    with pytest.raises(ValueError, match="patient 'p2' has slides in both train and test"):
        check_patient_leakage({"train": ["p2_s0", "p1_s0"], "test": ["p2_s1"]}, patients)
    with pytest.raises(ValueError, match="12 patients cannot fill 20 folds"):
        make_splits(labels_csv, tmp_path / "s", folds=20)


def test_bootstrap_interval_holds_the_point_estimate_and_narrows_with_more_slides() -> None:
    rng = np.random.default_rng(0)

    def width(n: int) -> tuple[float, float, float]:
        targets = rng.integers(0, 2, n)
        logits = (targets * 1.5 + rng.normal(size=n))[:, None]
        low, high = bootstrap_ci(targets, logits, Activation.SIGMOID, "auc", repeats=200, seed=1)
        return low, high, high - low

    low, high, small = width(40)
    assert 0.5 < low < high <= 1.0
    assert width(400)[2] < small  # about 1/√n


def test_dbps_splits_writes_clam_files_and_never_overwrites(feature_cohort, tmp_path, capsys) -> None:
    out = tmp_path / "splits"
    assert main(["splits", str(feature_cohort / "labels.csv"), "--folds", "3", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("splits_?.csv")) == ["splits_0.csv", "splits_1.csv", "splits_2.csv"]
    assert "no patient in two sets" in capsys.readouterr().out
    assert main(["splits", str(feature_cohort / "labels.csv"), "--folds", "3", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


CV = ["--config", "quickstart", "--dataset", "features", "model.encoder=projector", "model.aggregator=TransMIL",
      "model.dim=8", "model.heads=2", "selection.method=dbps", "M=2", "I=4", "S=2", "train.epochs=1",
      "train.warmup_epochs=0", "B=2", "data.num_workers=0", "log.progress=false", "log.tensorboard=false",
      "data.generate=null", "tasks=[]", "log.heatmaps=0", "train.checkpoint_every=1"]


def _rows(path: Path) -> dict[str, dict[str, str]]:
    return {row["run"]: row for row in csv.DictReader(path.open())}


@pytest.mark.slow
def test_cv_end_to_end_then_killed_and_resumed_to_the_same_summary(feature_cohort, tmp_path, caplog) -> None:
    splits = tmp_path / "splits"
    assert main(["splits", str(feature_cohort / "labels.csv"), "--folds", "3", "--out", str(splits)]) == 0
    data = [f"data.root={feature_cohort / 'bags'}", f"data.labels={feature_cohort / 'labels.csv'}"]
    reference = tmp_path / "reference"
    assert main(["cv", *CV, *data, "--splits", str(splits), "--seeds", "0,1", "--bootstrap", "50", "--out",
                 str(reference)]) == 0

    rows = _rows(reference / "summary.csv")
    folds = [f"seed{s}/fold{k}" for s in (0, 1) for k in range(3)]
    assert list(rows)[:6] == folds and {"mean", "std", "seed0/pooled", "seed1/ci95_high"} <= set(rows)
    for key in ("label/auc", "label/balanced_accuracy", "label/macro_f1", "label/accuracy"):
        values = [float(rows[f][key]) for f in folds]
        assert float(rows["mean"][key]) == pytest.approx(np.mean(values), abs=1e-6)
        assert float(rows["std"][key]) == pytest.approx(np.std(values, ddof=1), abs=1e-6)
    for seed in (0, 1):
        for key in ("label/auc", "label/balanced_accuracy", "label/macro_f1"):
            low, point, high = (float(rows[f"seed{seed}/{r}"][key]) for r in ("ci95_low", "pooled", "ci95_high"))
            assert low <= point <= high
        oof = list(csv.DictReader((reference / f"oof-predictions-seed{seed}.csv").open()))
        assert sorted(r["name"] for r in oof) == sorted(read_labels(feature_cohort / "labels.csv")[0])  # each once
    assert (reference / "roc-seed0-label.png").stat().st_size > 0 and (reference / "pr-seed1-label.png").is_file()

    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "dbps", "cv", *CV, *data, "--splits", str(splits), "--seeds", "0", "--out",
               str(killed)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not (killed / "seed0" / "fold1" / "last.pt").exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "fold 1 wrote no checkpoint in time"
        time.sleep(0.02)
    process.kill()
    process.communicate()
    assert (killed / "seed0" / "fold0" / "summary.json").is_file()
    assert not (killed / "seed0" / "fold2").exists() and not (killed / "summary.csv").exists()
    with caplog.at_level(logging.INFO):  # the resume in this process: only the killed run needed its own
        assert main(["cv", "--resume", str(killed), "--bootstrap", "50"]) == 0
    assert "seed 0, fold 0" in caplog.text and "is done" in caplog.text
    assert "resuming seed 0, fold 1" in caplog.text or (killed / "seed0" / "fold1" / "summary.json").is_file()
    again = _rows(killed / "summary.csv")
    seed0 = [name for name in rows if name.startswith("seed0/")]
    assert [again[name] for name in seed0] == [rows[name] for name in seed0]  # to the last digit: resumed exactly
