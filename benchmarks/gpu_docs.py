"""The GPU suite's record: its JSON, the generated sections of docs/benchmarks.md and docs/results.md, the summary."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import gpu_report as report
from gpu_stages import ROOT, read_csv

if TYPE_CHECKING:
    from gpu_suite import Suite

RESULTS_INTRO = """# Results

Figures measured by the project's own scripts, each with the machine and commit that produced it. The GPU sections
are written by `bash benchmarks/gpu.sh` (see [benchmarks.md](benchmarks.md#gpu-suite)); re-running it replaces them.
"""
ACCURACY_INTRO = "# Accuracy side by side\n"
NOT_YET = "No GPU {what} measured yet: run `bash benchmarks/gpu.sh` on a CUDA machine."
DRY_BANNER = "**DRY RUN on a CPU at a tiny size: these figures only show that the suite runs end to end.**\n\n"


def merged_stages(previous: list[dict], current: list[dict], order: list[str]) -> list[dict]:
    """The stages of this run, and those of an earlier run that this one (a `--only` subset) did not repeat."""
    names = {s["name"] for s in current}
    kept = [s | {"note": (s.get("note", "") + " (earlier run)").strip()} for s in previous if s["name"] not in names]
    rank = {name: i for i, name in enumerate(order)}
    return sorted(kept + current, key=lambda s: rank.get(s["name"], len(order)))


def bench_section(suite: Suite, rows: list[dict[str, str]], png: Path) -> str:
    plan, env = suite.plan, suite.env
    sizes = ",".join(map(str, plan.sizes))
    command = (f"dbps bench --config mnist_dbps --sizes {sizes} --batch {plan.bench_batch} --steps {plan.bench_steps} "
               f"--warmup {plan.bench_warmup} {' '.join(plan.bench_overrides)}").strip()
    if not rows:
        return DRY_BANNER * suite.dry_run + NOT_YET.format(what="bench")
    return (
        f"{DRY_BANNER * suite.dry_run}Measured by `bash benchmarks/gpu.sh` on {report.environment_line(env)}.\n\n"
        f"`{command}`: the Megapixel MNIST presets' model (ResNet-18 to layer2, D = 128, DA aggregator, 4 tasks), "
        "M = I = 100, S = 100 for `dbps`, drop 0.3 and half sampling for `dbps+`, `full` = every patch with "
        "gradients; bf16 autocast; synthetic uint8 images on the GPU; time per whole optimiser step from CUDA events "
        "after warm-up steps; memory = CUDA peak allocated (GB = 2³⁰ bytes). OOM = out of memory. The reference "
        "column holds the reference implementations' figures at 1500² (fp32, same B, M, I, one H100).\n\n"
        f"{report.bench_table(rows)}\n\n"
        f"![GPU benchmark](../benchmarks/results/{png.name})\n\n"
        f"All columns: [benchmarks/results/{png.with_suffix('.csv').name}](../benchmarks/results/"
        f"{png.with_suffix('.csv').name})."
    )


def training_section(suite: Suite, rows: list[dict[str, str]]) -> str:
    plan = suite.plan
    if not rows:
        return DRY_BANNER * suite.dry_run + NOT_YET.format(what="training")
    digits = rows[0].get("digits") or "–"
    train_csv, epochs_csv = suite.path("train").name, suite.path("train", "-epochs.csv").name
    return (
        f"{DRY_BANNER * suite.dry_run}Measured by `bash benchmarks/gpu.sh` on "
        f"{report.environment_line(suite.env)}.\n\n"
        f"Megapixel MNIST {plan.data_size}² ({plan.n_train:,} training images, 10 % of them held out for "
        f"validation, {plan.n_test:,} test images; digits: {digits}), presets `mnist_ips`, `mnist_dbps`, "
        f"`mnist_dbps_plus` with `train.epochs={plan.epochs} train.warmup_epochs={plan.warmup_epochs}` (the papers "
        f"train 150 epochs, so accuracies are a short run's), B = {plan.train_batch}, bf16 autocast.\n\n"
        f"{report.training_table(rows, with_reference=plan.data_size == report.REFERENCE_SIZE)}\n\n"
        "ms/step and images/s: training epochs 2 onwards, data loading included (the references time the optimiser "
        "step alone: the bench above is the like-for-like figure). Peak GB: CUDA peak allocated over training. "
        "Accuracy: the checkpoint with the best validation score, evaluated on the test split by `dbps eval`; "
        "multi is exact-match accuracy. In brackets: the IPS code's (ips) and the DBPS code's (dbps+, its DBformer+ "
        "setting, majority task only) ms/step and GB on an H100 at fp32, and the test accuracies published for the "
        f"IPS code after 150 epochs.\n\nPer run: [{train_csv}](../benchmarks/results/{train_csv}); per epoch: "
        f"[{epochs_csv}](../benchmarks/results/{epochs_csv})."
    )


def accuracy_section(suite: Suite) -> str:
    folder = suite.results / f"gpu-accuracy-{suite.tag}"
    summary = folder / "summary.md"
    if not summary.is_file():
        return DRY_BANNER * suite.dry_run + NOT_YET.format(what="side-by-side accuracy")
    stage = next((s for s in suite.stages if s.name == "accuracy"), None)
    note = f" ({stage.status}: {stage.note})" if stage and stage.note else ""
    return (
        f"{DRY_BANNER * suite.dry_run}Measured by `bash benchmarks/gpu.sh --only accuracy` on "
        f"{report.environment_line(suite.env)}{note}.\n\n"
        "The IPS reference code and dbps `ips`, `dbps`, `dbps+` at the papers' Megapixel MNIST setting (the reference "
        "generator's 5,000 training and 1,000 test images of 1500², N = 900 patches of 50², M = I = 100, S = 100 for "
        "`dbps`, B = 16, lr 10⁻³ with a per-step warm-up and cosine, every training image used, test accuracy after "
        "every epoch), one seed, all four at once on the GPU for as many epochs as the stage's budget allows (the "
        "papers train 150). Final epoch:\n\n"
        f"{summary.read_text().strip()}\n\n"
        f"![learning curves](../benchmarks/results/{folder.name}/curves.png)\n\n"
        f"Per epoch: [benchmarks/results/{folder.name}/epochs.csv](../benchmarks/results/{folder.name}/epochs.csv)."
    )


def run_section(suite: Suite, stages: list[dict], elapsed: float) -> str:
    return (
        f"{DRY_BANNER * suite.dry_run}The last run of `bash benchmarks/gpu.sh` on "
        f"{report.environment_line(suite.env)}: {elapsed / 60:.1f} minutes in all. Each stage runs under its own time "
        "budget (stopped when over it; the others go on); the budgets add up to less than 25 minutes on one H100.\n\n"
        f"{report.stage_table(stages)}"
    )


def update_doc(path: Path, sections: dict[str, str], template: str = "") -> None:
    """Replace (or append) the generated sections of one markdown file."""
    text = path.read_text() if path.is_file() else template
    for name, body in sections.items():
        text = report.replace_section(text, name, body)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_outputs(suite: Suite, elapsed: float) -> None:
    """The suite JSON, both docs' generated sections, and the summary printed with the reference figures."""
    record_path = suite.path("suite", ".json")
    previous = json.loads(record_path.read_text()) if record_path.is_file() else {}
    stages = merged_stages(previous.get("stages", []), [asdict(s) for s in suite.stages], suite.stage_order())
    record = {"tag": suite.tag, "dry_run": suite.dry_run, "elapsed_s": round(elapsed, 1), "env": suite.env,
              "plan": asdict(suite.plan), "stages": stages}
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    docs = suite.out / "docs"
    if suite.out != ROOT:
        for name in ("benchmarks.md", "results.md", "accuracy.md"):
            if not (docs / name).exists() and (ROOT / "docs" / name).exists():
                docs.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / "docs" / name, docs / name)
    bench_rows, train_rows = read_csv(suite.path("bench")), read_csv(suite.path("train"))
    update_doc(docs / "benchmarks.md", {"bench": bench_section(suite, bench_rows, suite.path("bench", ".png"))})
    update_doc(docs / "results.md", {"training": training_section(suite, train_rows),
                                     "run": run_section(suite, stages, elapsed)}, RESULTS_INTRO)
    if "accuracy" in suite.groups:
        update_doc(docs / "accuracy.md", {"accuracy-gpu": accuracy_section(suite)}, ACCURACY_INTRO)
    written = [p for p in (suite.path("bench"), suite.path("bench", ".png"), suite.path("train"),
                           suite.path("train", "-epochs.csv"), record_path) if p.is_file()]
    print(f"\n{'=' * 30} GPU suite summary ({suite.tag}{', dry run' if suite.dry_run else ''}) {'=' * 30}")
    print(report.environment_line(suite.env))
    print(f"\nStages ({elapsed / 60:.1f} min in all):\n{report.stage_table(stages)}")
    if bench_rows:
        print(f"\nBench (ms and GB per {suite.plan.bench_batch}-image step; reference beside ours):\n"
              f"{report.bench_table(bench_rows)}")
    if train_rows:
        table = report.training_table(train_rows, with_reference=suite.plan.data_size == report.REFERENCE_SIZE)
        print(f"\nTraining, {suite.plan.epochs} epochs (in brackets: reference / published):\n{table}")
    print(f"\n{report.REFERENCE_LEGEND}")
    if "accuracy" in suite.groups and (suite.results / f"gpu-accuracy-{suite.tag}" / "summary.md").is_file():
        print(f"\nAccuracy side by side (final epoch):\n"
              f"{(suite.results / f'gpu-accuracy-{suite.tag}' / 'summary.md').read_text().strip()}")
    print("\nWritten: " + ", ".join(str(p) for p in [*written, docs / "benchmarks.md", docs / "results.md"]))
    print(f"Logs, data and run folders: {suite.work}")
    if not suite.dry_run and suite.out == ROOT:
        print("To keep these figures: git add benchmarks/results docs/benchmarks.md docs/results.md docs/accuracy.md "
              "&& git commit")
