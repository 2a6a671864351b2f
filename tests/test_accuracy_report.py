"""The accuracy side by side's report: the table over every finished run, `--plot` parsed and checked."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import accuracy_side_by_side as side  # noqa: E402


def finished_run(out: Path, variant: str, method: str, seed: int, majority: list[float]) -> None:
    folder = out / "runs" / variant / f"{method}-seed{seed}"
    folder.mkdir(parents=True)
    epochs = [{"epoch": e + 1, "majority": m, "max": m, "top": m, "multi": m / 10} for e, m in enumerate(majority)]
    (folder / "epochs.json").write_text(json.dumps({"epochs": epochs, "seconds": 60.0}))


def test_plot_pairs_are_parsed_and_an_unknown_method_is_named() -> None:
    assert side.plot_pairs("base/reference,skip-blank+pos-gate/ips") == [
        ("base", "reference"), ("skip-blank+pos-gate", "ips")]
    with pytest.raises(argparse.ArgumentTypeError, match=r"skip-blank/ipx: expected VARIANT/METHOD"):
        side.plot_pairs("base/ips,skip-blank/ipx")


def test_the_table_keeps_every_run_and_a_missing_plot_run_is_named_before_anything_is_written(tmp_path: Path) -> None:
    finished_run(tmp_path, "base", "reference", 0, [0.1, 0.3])
    finished_run(tmp_path, "base", "reference", 1, [0.1, 0.5])
    finished_run(tmp_path, "skip-blank", "ips", 0, [0.2, 0.6])
    side.write_reports(tmp_path, None, [("skip-blank", "ips"), ("base", "reference")])
    table = (tmp_path / "summary.md").read_text()
    assert "| base | reference | 0,1 | 2 | 40.0 ± 14.1 |" in table  # last epoch: mean and std of 30 % and 50 %
    assert "| skip-blank | ips | 0 | 2 | 60.0 |" in table
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = {name: (tmp_path / name).stat().st_mtime_ns for name in ("epochs.csv", "summary.md", "curves.png")}
    with pytest.raises(SystemExit, match=r"--plot: no finished runs of skip-blank/dbps"):
        side.write_reports(tmp_path, None, [("skip-blank", "dbps")])
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in written} == written  # nothing rewritten
