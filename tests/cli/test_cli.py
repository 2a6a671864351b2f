"""The `dbps` command end to end, and its one-line errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch
import yaml
from PIL import Image

from dbps.cli import COMMANDS, build_parser, main

TINY = [
    "model.encoder=small_cnn", "model.dim=16", "model.heads=2", "model.dim_key=8", "model.dim_value=8",
    "model.dim_ffn=32", "M=2", "S=3", "I=8", "train.epochs=2", "train.warmup_epochs=1", "B=4", "B_seq=2",
    "data.num_workers=0", "log.progress=false", "data.val_fraction=0.25",
]


def dbps(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dbps", *args], capture_output=True, text=True, cwd=cwd, check=False)


def test_help_lists_every_subcommand(capsys) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


@pytest.mark.slow
def test_make_data_train_eval_through_the_command_line(tmp_path, capsys) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    made = dbps("make-data", "megapixel-mnist", "--out", str(data), "--n-train", "16", "--n-test", "8", "--size", "200",
                "--noise", "3")
    assert made.returncode == 0, made.stderr
    trained = dbps("train", "--config", "quickstart", "--out", str(run), f"data.root={data}", "data.generate=null",
                   "tasks=[majority, multi]", *TINY)
    assert trained.returncode == 0, trained.stderr
    assert "finished" in trained.stdout and str(run) in trained.stdout
    assert {"config.yaml", "metrics.csv", "best.pt", "last.pt", "summary.json"} <= {p.name for p in run.iterdir()}
    assert f"look at: learning-curve.png, heatmaps/ (4 test images), confusion-test-*.png in {run}" in trained.stdout
    assert Image.open(run / "learning-curve.png").size == (1100, 450)
    assert sorted(p.name for p in (run / "heatmaps").iterdir()) == [f"test-000{i}.png" for i in range(4)]

    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["selection"]["num_salient"] == 2 and config["train"]["micro_batch_size"] == 2
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    for row in rows:
        assert float(row["train_loss"]) > 0 and 0 <= float(row["val_majority_accuracy"]) <= 1
        assert float(row["seconds"]) > 0 and float(row["peak_memory_mb"]) > 0
        assert 0 <= float(row["val_multi_multilabel_accuracy"]) <= 1
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["test"]) == {"majority", "multi"} and summary["best_epoch"] in (1, 2)
    assert summary["train_images_per_second"] > 0 and summary["peak_memory_mb"] > 0
    best = torch.load(run / "best.pt", weights_only=True)
    assert {"model", "optimizer", "epoch", "step", "config", "metrics"} <= set(best)
    assert not any(key.startswith("module.") for key in best["model"])

    evaluated = dbps("eval", str(run))
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads((run / "eval-test.json").read_text())
    assert result["tasks"] == summary["test"] and result["images"] == 8

    predicted = dbps("predict", str(run), "--count", "3", "log.progress=false")
    assert predicted.returncode == 0, predicted.stderr
    pictures = sorted(p.name for p in (run / "predictions-test").glob("*.png"))
    assert pictures == ["test-0000.png", "test-0001.png", "test-0002.png"]
    rows = list(csv.DictReader((run / "predictions-test" / "predictions.csv").open()))
    assert len(rows) == 3 and {"majority_predicted", "majority_target", "multi_predicted"} <= set(rows[0])

    capsys.readouterr()
    assert main(["train", "--config", "quickstart", "--out", str(run), f"data.root={data}", *TINY]) == 2  # in process
    assert "finished run" in capsys.readouterr().err
    assert json.loads((run / "summary.json").read_text()) == summary


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--config", "quickstart", "MM=3"], "unknown key 'MM'"),
        (["train", "--config", "quickstart", "selection.num_salient=many"], "selection.num_salient"),
        (["train", "--config", "no-such-config.yaml"], "no-such-config.yaml"),
        (["eval", "no/such/run"], "no/such/run"),
        (["predict", "no/such/run", "--count", "2"], "no/such/run"),
    ],
)
def test_bad_input_ends_in_a_named_one_line_error(argv: list[str], expected: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert all(line.startswith("dbps: error: ") for line in err.strip().splitlines())


def test_make_data_refuses_to_overwrite(tmp_path, capsys) -> None:
    (tmp_path / "meta.json").write_text("{}")
    assert main(["make-data", "megapixel-mnist", "--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "meta.json").read_text() == "{}"
