"""`dbps bench` on a CPU with small sizes: a CSV and a plot in seconds, out-of-memory recorded as a result."""

from __future__ import annotations

import csv

import pytest
import torch

from dbps import bench
from dbps.cli import main
from dbps.config import load_config

SMALL = [
    "model.encoder=small_cnn", "model.dim=16", "model.heads=2", "model.dim_key=8", "model.dim_value=8",
    "model.dim_ffn=32", "M=3", "I=8", "S=4", "tasks=[majority]", "train.device=cpu",
]


def test_bench_command_writes_csv_and_plot(tmp_path) -> None:
    out = tmp_path / "b.csv"
    argv = ["bench", "--config", "quickstart", "--sizes", "150", "--batch", "2", "--steps", "1", "--warmup", "1"]
    assert main([*argv, "--out", str(out), *SMALL]) == 0
    rows = list(csv.DictReader(out.open()))
    assert [(r["method"], r["size"]) for r in rows] == [(m, "150") for m in bench.METHODS]
    for row in rows:
        assert row["status"] == "ok" and float(row["ms_per_step"]) > 0 and float(row["images_per_s"]) > 0
        assert row["peak_memory_mb"] != ""
    full = [r for r in rows if r["method"] == "full"]
    # the full baseline takes every patch with gradients: a 4 × 4 grid of 56² patches at stride 28 on 150²
    assert [int(r["num_salient"]) for r in full] == [16]
    memory = {r["method"]: float(r["peak_memory_mb"]) for r in rows}
    assert memory["full"] > memory["ips"] > 0  # each measured in a fresh process
    assert all(float(r["selection_tflops"]) > 0 for r in rows if r["method"] != "full")
    assert (tmp_path / "b.png").stat().st_size > 1000


def test_out_of_memory_is_recorded_not_raised(monkeypatch) -> None:
    config, _ = load_config("quickstart", SMALL)

    def exhausted(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(bench, "train_step", exhausted)
    (result,) = bench.run_benchmark(
        config, methods=["full"], sizes=[100], batch=1, steps=1, warmup=1, progress=False, isolate=False
    )
    assert result.status == "oom" and result.ms_per_step is None


def test_method_selectors_share_m_and_i() -> None:
    config, _ = load_config("quickstart", SMALL)
    selectors = {m: bench.method_selector(m, config, 900) for m in bench.METHODS}
    assert selectors["full"].num_salient == 900
    assert {selectors[m].num_salient for m in ("ips", "dbps", "dbps+")} == {3}
    assert selectors["dbps"].num_context == 4 and selectors["dbps+"].drop_ratio == 0.3
    two_stage, _ = load_config("quickstart", [*SMALL, "selection.buffer_update=two_stage"])
    assert bench.method_selector("dbps", two_stage, 900).buffer_update == "two_stage"
    blank, _ = load_config("quickstart", [*SMALL, "selection.skip_blank=true", "selection.mask_blank=true",
                                          "selection.score_scale=0.5"])
    for method in ("ips", "dbps", "dbps+"):
        selector = bench.method_selector(method, blank, 900)
        assert (selector.skip_blank, selector.mask_blank, selector.score_scale) == (True, True, 0.5), method
    with pytest.raises(ValueError, match="unknown benchmark method"):
        bench.method_selector("fast", config, 900)


def test_bench_runs_on_a_reference_photo_config_and_shows_what_lrs_saves(tmp_path) -> None:
    from tests import reference_configs as ref

    config_file = ref.write(tmp_path / "cqu_bpdd_db+.yml", ref.head_config("cqu_bpdd", "db+"))
    tiny = ["enc_type=small_cnn", "D=16", "H=2", "D_k=8", "D_v=8", "D_inner=32", "train.device=cpu", "pretrained=false",
            "patch_size=[32, 32]", "patch_stride=[32, 32]"]
    rows = {}
    for lrs in (False, True):
        config, _ = load_config(config_file, [*tiny, f"lrs={lrs}"])
        (result,) = bench.run_benchmark(config, methods=["ips"], sizes=[128], batch=2, steps=1, warmup=1,
                                        progress=False, isolate=False)
        assert result.status == "ok" and result.num_patches == 16
        rows[lrs] = result
    flops = {lrs: r.selection_tflops * r.selection_ms for lrs, r in rows.items()}
    assert flops[True] < 0.5 * flops[False]  # the no-gradient pass embeds quarter-size patches


def test_bench_runs_on_the_feature_bag_camelyon_config(tmp_path) -> None:
    from tests import reference_configs as ref

    config, _ = load_config(ref.write(tmp_path / "camelyon.yml", ref.camelyon_config()),
                            ["D=16", "H=2", "D_k=8", "D_v=8", "D_inner=32", "train.device=cpu", "M=8", "I=32", "S=16"])
    results = bench.run_benchmark(config, methods=["full", "dbps"], sizes=[64], batch=2, steps=1, warmup=1,
                                  progress=False, isolate=False)
    assert [(r.method, r.status, r.num_patches) for r in results] == [("full", "ok", 64), ("dbps", "ok", 64)]
    assert results[1].num_salient == 8 and results[1].selection_tflops > 0
