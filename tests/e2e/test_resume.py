"""Runs that survive: a killed or stopped run resumes to exactly the result of an uninterrupted one; faults."""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dbps.cli import main
from dbps.data import make_megapixel_mnist
from tests.conftest import fill

ARGS = [
    "--config", "quickstart", "data.generate=null", "tasks=[majority, multi]", "model.encoder=small_cnn",
    "model.dim=16", "model.heads=2", "model.dim_key=8", "model.dim_value=8", "model.dim_ffn=32", "M=3", "S=3", "I=8",
    "train.epochs=3", "train.warmup_epochs=1", "B=4", "B_seq=2", "data.num_workers=0", "log.progress=false",
    "log.tensorboard=false", "data.val_fraction=0.2", "train.checkpoint_every=2", "patches.drop_ratio=0.2",
    "patches.shuffle=true", "selection.explore_epochs=1", "model.dropout=0.1",
]
VOLATILE = {"seconds", "images_per_s", "peak_memory_mb"}  # wall-clock columns of metrics.csv


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mm")
    return make_megapixel_mnist(root, n_train=40, n_test=8, size=150, n_noise=3, seed=1, progress=False)


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory) -> Path:
    """The run trained in one go, in this process: a run in a fresh process gives the same (see the full disk's
    test, whose first part trains here and whose resumes run in fresh processes)."""
    run = tmp_path_factory.mktemp("ref") / "run"
    assert main(["train", *ARGS, f"data.root={data}", "--out", str(run)]) == 0
    return run


def resume(run: Path, caplog) -> int:
    """`dbps train --resume run` in this process (the killed or stopped run was another), its log in caplog."""
    with caplog.at_level(logging.INFO):
        return main(["train", "--resume", str(run)])


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dbps", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for_checkpoint(run: Path, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (run / "last.pt").exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no checkpoint written in time"
        time.sleep(0.02)


def assert_same_result(run: Path, reference: Path) -> None:
    """Test metrics, best.pt's weights and every epoch's metrics (but wall-clock columns) are identical."""
    summary, expected = (json.loads((p / "summary.json").read_text()) for p in (run, reference))
    assert summary["test"] == expected["test"] and summary["best_epoch"] == expected["best_epoch"]
    best, expected_best = (torch.load(p / "best.pt", weights_only=True)["model"] for p in (run, reference))
    assert best.keys() == expected_best.keys()
    assert all(torch.equal(best[key], expected_best[key]) for key in best)
    rows, expected_rows = (
        [{k: v for k, v in row.items() if k not in VOLATILE} for row in csv.DictReader((p / "metrics.csv").open())]
        for p in (run, reference)
    )
    assert rows == expected_rows and [row["epoch"] for row in rows] == ["1", "2", "3"]


@pytest.mark.slow
def test_a_killed_run_resumes_to_exactly_the_uninterrupted_result(data, uninterrupted, tmp_path, caplog,
                                                                   capsys) -> None:
    run = tmp_path / "run"
    process = start("train", *ARGS, f"data.root={data}", "--out", str(run))
    wait_for_checkpoint(run, process)
    time.sleep(random.uniform(0.0, 0.6))  # anywhere after the first checkpoint
    process.kill()  # SIGKILL: no chance to clean up
    process.communicate()
    assert not (run / "summary.json").exists(), "the run finished before it was killed: make it longer"
    state = torch.load(run / "last.pt", weights_only=True)["state"]
    assert resume(run, caplog) == 0
    assert "resuming run folder" in caplog.text
    assert_same_result(run, uninterrupted)
    assert state["step"] >= 2
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    assert "finished run; nothing to resume" in capsys.readouterr().err


@pytest.mark.slow
def test_sigterm_finishes_the_step_writes_last_pt_and_says_how_to_resume(data, uninterrupted, tmp_path,
                                                                         caplog) -> None:
    run = tmp_path / "run"
    process = start("train", *ARGS, f"data.root={data}", "--out", str(run), "train.checkpoint_every=0")
    while not (run / "config.yaml").exists():
        assert process.poll() is None, process.communicate()[1]
        time.sleep(0.02)
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert f"dbps train --resume {run}" in err and "Traceback" not in err
    assert torch.load(run / "last.pt", weights_only=True)["state"]["step"] >= 1
    assert resume(run, caplog) == 0
    assert_same_result(run, uninterrupted)


def test_a_new_run_never_lands_on_an_interrupted_or_foreign_folder(data, tmp_path, capsys) -> None:
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    (interrupted / "config.yaml").write_text("selection: {method: ips}\n")
    assert main(["train", *ARGS, f"data.root={data}", "--out", str(interrupted)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (interrupted / "config.yaml").read_text() == "selection: {method: ips}\n"
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    assert main(["train", *ARGS, f"data.root={data}", "--out", str(foreign)]) == 2
    assert "not empty" in capsys.readouterr().err and [p.name for p in foreign.iterdir()] == ["holiday.jpg"]


def test_resume_refuses_changes_that_would_make_another_run(data, tmp_path, capsys) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("selection: {method: ips}\n")
    (run / "last.pt").write_bytes(b"")
    assert main(["train", "--resume", str(run), "M=7"]) == 2
    assert "cannot change selection.num_salient when resuming" in capsys.readouterr().err


def _poison_step(monkeypatch, bad_steps: set[int]) -> None:
    """Make the gradient of the given optimiser steps (1-based) non-finite, as a NaN loss would."""
    from dbps.engine import loop

    original, calls = loop.Trainer._step, {"n": 0}

    def step(self, batch, lr, explore):
        calls["n"] += 1
        if calls["n"] in bad_steps:
            real_backward = loop.forward_backward

            def poisoned(*args, **kwargs):
                out = real_backward(*args, **kwargs)
                next(self.run.model.parameters()).grad.fill_(float("nan"))
                return out

            monkeypatch.setattr(loop, "forward_backward", poisoned)
            try:
                return original(self, batch, lr, explore)
            finally:
                monkeypatch.setattr(loop, "forward_backward", real_backward)
        return original(self, batch, lr, explore)

    monkeypatch.setattr(loop.Trainer, "_step", step)


def test_a_non_finite_step_is_skipped_and_counted(data, tmp_path, monkeypatch) -> None:
    _poison_step(monkeypatch, {4})
    run = tmp_path / "run"
    assert main(["train", *ARGS, f"data.root={data}", "--out", str(run), "train.epochs=1"]) == 0
    assert json.loads((run / "summary.json").read_text())["skipped_steps"] == 1
    row = next(csv.DictReader((run / "metrics.csv").open()))
    assert row["skipped_steps"] == "1" and float(row["train_loss"]) == float(row["train_loss"])  # not NaN
    assert all(torch.isfinite(v).all() for v in torch.load(run / "best.pt", weights_only=True)["model"].values()
               if v.is_floating_point())


def test_too_many_non_finite_steps_in_a_row_stop_with_a_checkpoint(data, tmp_path, monkeypatch, caplog) -> None:
    _poison_step(monkeypatch, {3, 4, 5})
    run = tmp_path / "run"
    assert main(["train", *ARGS, f"data.root={data}", "--out", str(run), "train.max_bad_steps=3"]) == 1
    assert "3 steps in a row had a non-finite loss or gradient" in caplog.text and "--resume" in caplog.text
    state = torch.load(run / "last.pt", weights_only=True)["state"]
    assert (state["step"], state["skipped_steps"], state["bad_streak"]) == (5, 3, 3)
    assert not (run / "summary.json").exists()


def assert_checkpoints_intact(run: Path) -> None:
    """No temporary file is left, and every checkpoint on disk loads."""
    from dbps.engine.checkpoint import load_checkpoint
    from dbps.engine.run_folder import LOCK_FILE

    assert [p.name for p in run.iterdir() if p.name.startswith(".") and p.name != LOCK_FILE] == []
    assert (run / "last.pt").is_file()
    for checkpoint in run.glob("*.pt"):
        assert load_checkpoint(checkpoint)["model"]


def finish(process: subprocess.Popen) -> tuple[int, str]:
    """Its exit code and its stderr, once it has ended."""
    _, err = process.communicate(timeout=900)
    return process.returncode, err


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("dbps: error:")]


class FullDisk:
    """A file whose writes fail as on a full disk once `budget` bytes are written (errno ENOSPC, no file name)."""

    def __init__(self, handle, budget: int) -> None:
        self.handle, self.budget = handle, budget

    def write(self, data) -> int:
        self.budget -= len(data)
        if self.budget < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def __getattr__(self, name: str):
        return getattr(self.handle, name)

    def __enter__(self) -> FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def _disk_fills_at(monkeypatch, name: str, nth: int) -> None:
    """The disk is full from the `nth` time `name` is written on (its temporary file gets 4 kB, then ENOSPC)."""
    real_open, count = Path.open, {"n": 0}

    def open_(self: Path, mode: str = "r", *args, **kwargs):
        handle = real_open(self, mode, *args, **kwargs)
        if "w" in mode and self.name.startswith(f".{name}."):
            count["n"] += 1
            if count["n"] >= nth:
                return FullDisk(handle, 4096)
        return handle

    monkeypatch.setattr(Path, "open", open_)


@pytest.mark.slow
def test_a_full_disk_ends_in_one_line_then_two_resumes_at_once_give_one_run(data, uninterrupted, tmp_path,
                                                                            monkeypatch, capsys) -> None:
    run = tmp_path / "run"
    _disk_fills_at(monkeypatch, "last.pt", nth=3)  # steps 2 and 4 are saved, step 6 is not
    assert main(["train", *ARGS, f"data.root={data}", "--out", str(run)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert line == (f"dbps: error: {run}/last.pt: No space left on device; the checkpoints in {run} are the last "
                    f"complete ones (last.pt: epoch 0, step 4): free some space, then `dbps train --resume {run}`")
    assert_checkpoints_intact(run)
    monkeypatch.undo()
    first, second = start("train", "--resume", str(run)), start("train", "--resume", str(run))
    outcomes = {process.pid: finish(process) for process in (first, second)}
    assert sorted(code for code, _ in outcomes.values()) == [0, 2], outcomes
    (winner,) = [pid for pid, (code, _) in outcomes.items() if code == 0]
    (loser,) = [err for code, err in outcomes.values() if code == 2]
    (refusal,) = error_lines(loser)
    assert f"{run}: in use by process {winner} (dbps train --resume)" in refusal or "finished run" in refusal
    assert_same_result(run, uninterrupted)


@pytest.mark.slow
def test_two_new_runs_into_one_folder_at_once_give_one_run(data, uninterrupted, tmp_path) -> None:
    run = tmp_path / "run"
    processes = [start("train", *ARGS, f"data.root={data}", "--out", str(run)) for _ in range(2)]
    outcomes = {process.pid: finish(process) for process in processes}
    assert sorted(code for code, _ in outcomes.values()) == [0, 2], outcomes
    (winner,) = [pid for pid, (code, _) in outcomes.items() if code == 0]
    (refusal,) = error_lines(next(err for code, err in outcomes.values() if code == 2))
    assert f"{run}: in use by process {winner} (dbps train)" in refusal or "finished run" in refusal
    assert_same_result(run, uninterrupted)


@pytest.mark.slow
def test_a_disk_that_fills_up_during_training_then_a_resume_once_space_is_free(data, uninterrupted, small_disk,
                                                                               caplog):
    run = small_disk / "run"
    process = start("train", *ARGS, f"data.root={data}", "--out", str(run))
    wait_for_checkpoint(run, process)
    filler = fill(small_disk)
    code, err = finish(process)
    assert code == 2, err
    (line,) = error_lines(err)
    assert f"dbps: error: {run}/" in line and ": No space left on device; the checkpoints in " in line, line
    assert f"`dbps train --resume {run}`" in line
    assert_checkpoints_intact(run)
    filler.unlink()
    assert resume(run, caplog) == 0
    assert_same_result(run, uninterrupted)
