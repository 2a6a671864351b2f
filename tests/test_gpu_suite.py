"""The GPU suite: its markdown writers and time guard, and its CPU dry run end to end (every stage, CSV and table)."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_docs  # noqa: E402
import gpu_report  # noqa: E402
import gpu_stages  # noqa: E402
import gpu_suite  # noqa: E402


def test_markdown_table_escapes_pipes_and_marks_missing_cells() -> None:
    table = gpu_report.markdown_table(["a", "b"], [[1, None], ["x|y", ""]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | – |", "| x\\|y | – |"]
    with pytest.raises(ValueError, match="2 cells"):
        gpu_report.markdown_table(["a", "b"], [[1]])


@pytest.mark.parametrize(
    ("name", "tag"),
    [("NVIDIA H100 80GB HBM3", "h100"), ("NVIDIA H200", "h200"), ("NVIDIA A100-SXM4-40GB", "a100"),
     ("NVIDIA GeForce RTX 4090", "rtx4090"), ("NVIDIA L40S", "l40s"), ("", "unknown")],
)
def test_gpu_tag_is_a_short_file_name(name: str, tag: str) -> None:
    assert gpu_report.gpu_tag(name) == tag


def test_replace_section_replaces_only_between_its_markers_and_appends_when_missing() -> None:
    begin, end = gpu_report.markers("bench")
    text = f"# Doc\n\nintro\n\n{begin}\nold table\n{end}\n\n## After\nkept\n"
    once = gpu_report.replace_section(text, "bench", "new table")
    assert "old table" not in once and "new table" in once
    assert once.startswith("# Doc\n\nintro\n\n") and once.endswith("\n\n## After\nkept\n")
    assert gpu_report.replace_section(once, "bench", "new table") == once  # re-running changes nothing
    appended = gpu_report.replace_section(once, "training", "rows")
    assert appended.startswith(once.rstrip("\n")) and appended.count("gpu-suite:training:begin") == 1
    assert "new table" in appended and appended.rstrip().endswith(gpu_report.markers("training")[1])


def bench_row(method: str, size: int, status: str = "ok", ms: float = 40.0) -> dict[str, str]:
    values = {"ms_per_step": ms, "images_per_s": 400.0, "peak_memory_mb": 1024.0, "selection_ms": 10.0,
              "selection_tflops": 150.0, "fraction_of_bf16_peak": 0.15}
    row = {"method": method, "size": str(size), "num_patches": str((size // 50) ** 2), "status": status}
    return row | ({k: str(v) for k, v in values.items()} if status == "ok" else dict.fromkeys(values, ""))


def test_bench_table_puts_the_reference_beside_ours_at_1500_and_keeps_oom_rows() -> None:
    rows = [bench_row("dbps+", 1500), bench_row("full", 3000, "oom"), bench_row("ips", 1500, ms=35.25),
            bench_row("ips", 3000), bench_row("full", 1500)]
    lines = gpu_report.bench_table(rows).splitlines()[2:]
    assert [line.split(" | ")[2] for line in lines] == ["full", "ips", "dbps+", "full", "ips"]  # size, then method
    ips_1500, dbps_plus_1500, oom, ips_3000 = lines[1], lines[2], lines[3], lines[4]
    assert "| 35.2 |" in ips_1500 and "79.5 ms / 1.89 GB (IPS code" in ips_1500 and "| 1.00 |" in ips_1500
    assert "81.6 ms / 1.89 GB" in dbps_plus_1500 and "89.8 ms / 3.40 GB" in dbps_plus_1500
    assert "| OOM |" in oom and "79.5" not in ips_3000 and ips_3000.endswith("| – |")
    assert "| 15.0 |" in ips_1500  # fraction of the bf16 peak, in %


def test_training_table_brackets_reference_and_published_figures() -> None:
    row = {"preset": "mnist_ips", "method": "ips", "epochs_done": "12", "epochs": "12", "best_epoch": "11",
           "ms_per_step": "30.0", "images_per_s": "533", "peak_memory_mb": "2048", "majority": "97.25", "max": "",
           "top": "88", "multi": "60", "train_seconds": "360", "status": "train ok, eval ok"}
    line = gpu_report.training_table([row]).splitlines()[2]
    assert "| 12/12 | 11 | 30.0 (79.5) |" in line and "| 2.00 (1.89) |" in line
    assert "| 97.2 (99.1) | – (93.7) | 88.0 (92.7) | 60.0 (81.9) | 6.0 |" in line
    plain = gpu_report.training_table([row | {"method": "dbps"}], with_reference=False).splitlines()[2]
    assert "(" not in plain and "| 30.0 |" in plain


def test_stage_table_totals_budget_and_time() -> None:
    stages = [
        {"name": "bench", "budget_s": 200, "seconds": 90.5, "status": "ok", "note": ""},
        {"name": "train mnist_ips", "budget_s": 320, "seconds": 320.0, "status": "timeout", "note": "9/12"},
    ]
    last = gpu_report.stage_table(stages).splitlines()[-1]
    assert last == "| **total** | 520 | 410.5 | 6.8 of 8.7 min | – |"


def test_earlier_stages_are_kept_when_only_some_are_rerun() -> None:
    order = gpu_suite.Suite.stage_order()
    previous = [{"name": n, "status": "ok", "note": ""} for n in order]
    current = [{"name": "environment", "status": "ok", "note": ""}, {"name": "bench", "status": "timeout", "note": ""}]
    merged = gpu_docs.merged_stages(previous, current, order)
    assert [s["name"] for s in merged] == order
    assert merged[2]["status"] == "timeout" and merged[3]["note"] == "(earlier run)"


def test_run_summary_leaves_the_first_epoch_out_of_speed(tmp_path: Path) -> None:
    with (tmp_path / "metrics.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["epoch", "val_score", "seconds", "images_per_s", "peak_memory_mb"])
        writer.writeheader()
        epochs = ((1, 0.2, 10, 100, 900), (2, 0.5, 4, 400, 950), (3, 0.4, 4, 400, 940))
        for epoch, score, seconds, speed, peak in epochs:
            writer.writerow({"epoch": epoch, "val_score": score, "seconds": seconds, "images_per_s": speed,
                             "peak_memory_mb": peak})
    tasks = {"majority": {"accuracy": 0.9}, "multi": {"multilabel_accuracy": 0.5}}
    (tmp_path / "eval-test.json").write_text(json.dumps({"tasks": tasks}))
    row = gpu_suite.summarise_run(tmp_path, gpu_stages.read_csv(tmp_path / "metrics.csv"), batch=16)
    assert row["ms_per_step"] == 40.0  # 8 s over 2 × 100 steps of 16 images
    assert row["images_per_s"] == 400.0 and row["best_epoch"] == 2 and row["peak_memory_mb"] == 950.0
    assert row["majority"] == 90.0 and row["multi"] == 50.0 and row["evaluated_by"] == "dbps eval"


def test_a_stage_over_its_budget_is_stopped_with_its_children(tmp_path: Path) -> None:
    script = "import subprocess, time; print(subprocess.Popen(['sleep', '60']).pid, flush=True); time.sleep(60)"
    stage = gpu_stages.Stage("slow", budget_s=1.5)
    start = time.perf_counter()
    gpu_stages.run_stage(stage, [sys.executable, "-c", script], tmp_path / "slow.log")
    assert stage.status == "timeout" and stage.rc == gpu_stages.TIMEOUT_RC and time.perf_counter() - start < 8
    child = int((tmp_path / "slow.log").read_text().splitlines()[1])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child), "the stage's child process outlived the time guard"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "\nState:\tZ" in status.read_text())  # a zombie has ended


def test_pytest_summary_reads_the_last_counts() -> None:
    assert gpu_stages.pytest_summary("....\n3 passed, 1 failed, 2 skipped in 4.2s\n") == "3 passed, 1 failed, 2 skipped"


def test_probe_names_what_is_missing(monkeypatch) -> None:
    real = gpu_stages.importlib.util.find_spec
    monkeypatch.setattr(gpu_stages.importlib.util, "find_spec",
                        lambda name, *a: None if name in {"timm", "mlxtend"} else real(name, *a))
    info = gpu_stages.probe()
    assert info["missing"] == ["timm"] and info["torch"]
    assert [w.split()[0] for w in info["missing_optional"]] == ["mlxtend"]  # type: ignore[union-attr]


def test_dry_run_refuses_to_write_over_the_checkout() -> None:
    assert gpu_suite.main(["--dry-run", "--out", str(ROOT)]) == 2


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


@pytest.mark.slow
def test_dry_run_runs_every_stage_end_to_end(tmp_path: Path) -> None:
    committed = {p: _digest(ROOT / p) for p in ("docs/benchmarks.md", "docs/results.md", "docs/accuracy.md")}
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"} | {"PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry-run", "--out", str(tmp_path),
                           "--reference", str(tmp_path / "no-ips-checkout")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = tmp_path / "benchmarks" / "results"
    record = json.loads((results / "gpu-suite-dryrun.json").read_text())
    assert record["dry_run"] and [s["name"] for s in record["stages"]] == gpu_suite.Suite.stage_order()
    assert all(s["status"] == "ok" and s["seconds"] > 0 for s in record["stages"]), record["stages"]
    for stage in gpu_suite.Suite.stage_order():
        assert f"==> {stage} (budget" in proc.stdout and f"<== {stage}: ok in" in proc.stdout
    bench = gpu_stages.read_csv(results / "gpu-bench-dryrun.csv")
    assert sorted((r["method"], r["status"]) for r in bench) == sorted((m, "ok") for m in gpu_report.METHOD_ORDER)
    assert all(float(r["ms_per_step"]) > 0 for r in bench) and (results / "gpu-bench-dryrun.png").stat().st_size > 1000
    runs = gpu_stages.read_csv(results / "gpu-train-dryrun.csv")
    assert [(r["preset"], r["method"], r["epochs_done"]) for r in runs] == [
        ("mnist_ips", "ips", "1"), ("mnist_dbps", "dbps", "1"), ("mnist_dbps_plus", "dbps+", "1")]
    for run in runs:
        assert run["evaluated_by"] == "dbps eval" and float(run["ms_per_step"]) > 0
        assert all(0 <= float(run[task]) <= 100 for task in gpu_report.TASK_ORDER)
    assert len(gpu_stages.read_csv(results / "gpu-train-dryrun-epochs.csv")) == 3
    accuracy = gpu_stages.read_csv(results / "gpu-accuracy-dryrun" / "epochs.csv")
    assert sorted(r["method"] for r in accuracy) == ["dbps", "dbps+", "ips"]  # no reference checkout in a test
    assert all(0 <= float(r["majority"]) <= 1 for r in accuracy)
    assert (results / "gpu-accuracy-dryrun" / "curves.png").stat().st_size > 1000
    docs = {name: (tmp_path / "docs" / name).read_text() for name in ("benchmarks.md", "results.md", "accuracy.md")}
    for name, sections, header in (("benchmarks.md", ["bench"], "| image | N | method | ms/step |"),
                                   ("results.md", ["training", "run"], "| preset | method | epochs |"),
                                   ("accuracy.md", ["accuracy-gpu"], "| variant | method | seeds |")):
        text = docs[name]
        for section in sections:
            begin, end = gpu_report.markers(section)
            assert text.count(begin) == 1 and text.count(end) == 1 and text.index(begin) < text.index(end)
        assert header in text and "DRY RUN" in text
    assert "| **total** |" in docs["results.md"] and "## GPU suite" in docs["benchmarks.md"]
    assert gpu_report.REFERENCE_LEGEND in proc.stdout
    assert {p: _digest(ROOT / p) for p in committed} == committed  # the committed docs are left alone
