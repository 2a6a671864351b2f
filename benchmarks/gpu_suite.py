"""Every GPU figure in one run: GPU tests, `dbps bench`, short Megapixel MNIST training, CSVs and doc tables."""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import gpu_report as report
from accuracy_side_by_side import SCALES
from gpu_docs import write_outputs
from gpu_stages import (
    ROOT,
    TIMEOUT_RC,
    Stage,
    git_commit,
    nvidia_smi,
    parse_probe,
    pytest_summary,
    read_csv,
    read_json,
    run_command,
    run_stage,
    write_csv,
)

PRESETS = {"mnist_ips": "ips", "mnist_dbps": "dbps", "mnist_dbps_plus": "dbps+"}
BENCH_CONFIG = "mnist_dbps"  # the presets' model: ResNet-18 to layer2, D = 128, DA aggregator, 4 tasks, M = I = S = 100
TINY_MODEL = ("model.encoder=small_cnn", "model.encoder_stages=null", "model.dim=16", "model.heads=2",
              "model.dim_key=8", "model.dim_value=8", "model.dim_ffn=32", "patches.size=30", "M=4", "I=25",
              "train.device=cpu")


@dataclass(frozen=True)
class Plan:
    """What one suite run measures, and each stage's time budget in seconds."""

    sizes: tuple[int, ...]
    patch: int
    bench_batch: int
    bench_steps: int
    bench_warmup: int
    bench_overrides: tuple[str, ...]
    data_size: int
    n_train: int
    n_test: int
    n_noise: int
    epochs: int
    warmup_epochs: int
    train_batch: int
    train_overrides: tuple[str, ...]
    budgets: dict[str, float]
    preset_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    accuracy_scale: str = "gpu"  # a scale of benchmarks/accuracy_side_by_side.py
    accuracy_overrides: tuple[str, ...] = ("train.device=cuda", "data.num_workers=3")
    accuracy_threads: int = 3  # threads of each accuracy run (they run at once)
    bench_isolate: bool = True  # on a CPU, a fresh process per measurement (`dbps bench --no-isolate` when False)
    at_once: bool = False  # every stage after the data at the same time (only for a plan that times nothing)


# One H100: the IPS code's 79.5 ms per 16-image step gives 282 steps × 79.5 ms = 22 s per epoch on 4,500 training
# images (500 go to validation), 12 epochs + 12 validations + test ≈ 300 s per preset at the reference's speed;
# bf16 should be faster. Bench: 16 measurements of 25 steps and 20 selection passes, ≈ 100 s with 4 process
# starts; the generator is single-process: 6,000 images in 30–45 s. The budgets add up to 24.3 minutes.
GPU = Plan(
    sizes=(1500, 3000, 4500, 6000), patch=50, bench_batch=16, bench_steps=20, bench_warmup=5,
    bench_overrides=("train.device=cuda",), data_size=1500, n_train=5000, n_test=1000, n_noise=50, epochs=12,
    warmup_epochs=2, train_batch=16, train_overrides=("train.device=cuda", "data.num_workers=4"),
    budgets={"environment": 30, "gpu tests": 70, "bench": 200, "make data": 90, "train": 320, "eval": 35,
             "accuracy": 630},
)
# A GPU lent for 15 minutes of machine time, start-up included, runs commands of at most 10 minutes: the same
# sizes and presets, fewer steps, images and epochs; the budgets add up to 8.5 minutes.
SHORT = Plan(
    sizes=(1500, 3000, 4500, 6000), patch=50, bench_batch=16, bench_steps=10, bench_warmup=3,
    bench_overrides=("train.device=cuda",), data_size=1500, n_train=2000, n_test=500, n_noise=50, epochs=4,
    warmup_epochs=1, train_batch=16, train_overrides=("train.device=cuda", "data.num_workers=8"),
    budgets={"environment": 30, "gpu tests": 60, "bench": 140, "make data": 40, "train": 60, "eval": 20,
             "accuracy": 630},
)
# A CPU check that every stage runs and writes its rows. Nearly all of its time is process start-up (importing
# torch, scikit-learn, matplotlib), not computing: the bench measures in one process, each training draws one
# heatmap, the accuracy runs take a thread each and train on the training stages' images (its 'dry' scale). It
# times nothing, so once the data are made every other stage runs at the same time (the budgets are only guards).
DRY_RUN = Plan(
    sizes=(90,), patch=30, bench_batch=2, bench_steps=1, bench_warmup=0, bench_overrides=(*TINY_MODEL, "S=4"),
    data_size=150, n_train=32, n_test=16, n_noise=2, epochs=1, warmup_epochs=0, train_batch=8,
    train_overrides=(*TINY_MODEL, "train.batch_size=8", "data.num_workers=0", "log.heatmaps=1"),
    budgets={"environment": 60, "gpu tests": 150, "bench": 150, "make data": 60, "train": 150, "eval": 150,
             "accuracy": 180},
    preset_overrides={"mnist_dbps": ("S=4",)}, accuracy_scale="dry",
    accuracy_overrides=(*TINY_MODEL, "data.num_workers=0"), accuracy_threads=1, bench_isolate=False, at_once=True,
)
GROUPS = ("tests", "bench", "train", "accuracy")
REFERENCE_CHECKOUT = ROOT / "external" / "ips"  # `git clone https://github.com/benbergner/ips external/ips`


class Suite:
    """One run of the suite: stages in order, each under its budget, then the CSVs and the doc tables."""

    def __init__(self, plan: Plan, out: Path, work: Path, *, dry_run: bool, groups: set[str], tag: str | None,
                 digits: str | None, presets: tuple[str, ...] = tuple(PRESETS)) -> None:
        self.plan, self.out, self.work, self.dry_run, self.groups = plan, out, work, dry_run, groups
        self.presets = presets
        self.tag_override, self.digits = tag, digits
        self.python = sys.executable
        self.results = out / "benchmarks" / "results"
        self.logs = work / "logs"
        self.stages: list[Stage] = []
        self.env: dict[str, object] = {}
        self.reference = REFERENCE_CHECKOUT

    @property
    def tag(self) -> str:
        if self.tag_override:
            return self.tag_override
        return "dryrun" if self.dry_run else report.gpu_tag(str(self.env.get("gpu") or "unknown"))

    def path(self, kind: str, suffix: str = ".csv") -> Path:
        """benchmarks/results/gpu-<kind>-<gpu tag><suffix>."""
        return self.results / f"gpu-{kind}-{self.tag}{suffix}"

    def dbps(self, *args: str) -> list[str]:
        return [self.python, "-m", "dbps", *args]

    def begin(self, name: str, budget: float | None = None) -> Stage:
        stage = Stage(name, budget if budget is not None else self.plan.budgets[name.split(" mnist_")[0]])
        print(f"\n==> {name} (budget {stage.budget_s:.0f} s)", flush=True)
        self.stages.append(stage)
        return stage

    @staticmethod
    def end(stage: Stage) -> None:
        note = f" ({stage.note})" if stage.note else ""
        print(f"<== {stage.name}: {stage.status} in {stage.seconds:.1f} s{note}", flush=True)

    @staticmethod
    def stage_order() -> list[str]:
        """Every stage's name, in the order the suite runs them."""
        runs = [f"{kind} {preset}" for preset in PRESETS for kind in ("train", "eval")]
        return ["environment", "gpu tests", "bench", "make data", *runs, "accuracy"]

    def log(self, name: str) -> Path:
        return self.logs / (name.replace(" ", "-") + ".log")

    def environment(self) -> bool:
        """Stage 1: what runs here. False (stop) when a needed package or, outside a dry run, the GPU is missing."""
        stage = self.begin("environment")
        run_stage(stage, [self.python, str(Path(__file__).with_name("gpu_stages.py"))], self.log(stage.name))
        self.env = parse_probe(self.log(stage.name).read_text(errors="replace"))
        self.env |= nvidia_smi() | {"commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M %Z")}
        missing, optional = self.env.get("missing") or [], self.env.get("missing_optional") or []
        print(f"    GPU: {self.env.get('gpu') or 'none visible to PyTorch'}"
              f" ({self.env.get('gpu_memory_gb', '–')} GB, driver {self.env.get('driver', '–')}),"
              f" PyTorch {self.env.get('torch', '–')} for CUDA {self.env.get('cuda', '–')},"
              f" Python {self.env.get('python', '–')} at {self.env.get('executable', '–')},"
              f" {self.env.get('cpus', '?')} cores, commit {self.env['commit']},"
              f" dbps from {self.env.get('dbps')}")
        for what in optional:
            print(f"    missing (optional): {what}")
        problem = ""
        if missing or not self.env:
            problem = (
                f"missing Python packages: {' '.join(missing) or 'the probe failed'}. Without a network, install "
                "them from wheels brought along: pip install --no-index --find-links DIR PACKAGES"
            )
        elif not self.dry_run and not self.env.get("cuda_available"):
            problem = "PyTorch sees no CUDA GPU here; `bash benchmarks/gpu.sh --dry-run` runs the suite on a CPU"
        stage.note = f"{self.env.get('gpu') or 'no GPU'}, PyTorch {self.env.get('torch', '–')}"
        if problem:
            stage.status, stage.note = "failed", problem
        self.end(stage)
        return not problem

    def tests(self) -> None:
        """Stage 2: the GPU tests; failures are reported and the suite goes on."""
        stage = self.begin("gpu tests")
        if any(str(w).startswith("pytest") for w in self.env.get("missing_optional") or []):
            stage.status, stage.note = "skipped", "pytest is not installed"
        else:
            cmd = [self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/gpu", "-m", "gpu"]
            run_stage(stage, cmd, self.log(stage.name))
            counts = pytest_summary(self.log(stage.name).read_text(errors="replace"))
            stage.note = "; ".join(part for part in (counts, stage.note) if part)
        self.end(stage)

    def bench(self) -> None:
        """Stage 3: `dbps bench`, one process per image size so that a slow size cannot cost the others' rows."""
        stage, plan = self.begin("bench"), self.plan
        deadline, rows, codes = time.perf_counter() + stage.budget_s, [], []
        for size in plan.sizes:
            part = self.work / "bench" / f"bench-{size}.csv"
            part.unlink(missing_ok=True)
            left = deadline - time.perf_counter()
            rc = -1
            if left > 1:
                cmd = self.dbps("bench", "--config", BENCH_CONFIG, "--sizes", str(size), "--out", str(part),
                                "--batch", str(plan.bench_batch), "--steps", str(plan.bench_steps),
                                "--warmup", str(plan.bench_warmup), *([] if plan.bench_isolate else ["--no-isolate"]),
                                *plan.bench_overrides)
                rc, _ = run_command(cmd, left, self.log(stage.name))
            codes.append(rc)
            found = read_csv(part)
            status = "skipped" if rc == -1 else "timeout" if rc == TIMEOUT_RC else "failed"
            rows += found or [{"method": m, "size": size, "num_patches": (size // plan.patch) ** 2, "status": status}
                              for m in report.METHOD_ORDER]
        stage.seconds = stage.budget_s - max(0.0, deadline - time.perf_counter())
        stage.status = ("ok" if all(c == 0 for c in codes) else "timeout" if TIMEOUT_RC in codes or -1 in codes
                        else "failed")
        counts = {s: sum(r.get("status") == s for r in rows) for s in dict.fromkeys(r.get("status") for r in rows)}
        stage.note = ", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(rows)} measurements"
        write_csv(rows, self.path("bench"))
        plot_bench(rows, self.path("bench", ".png"))
        self.end(stage)

    def make_data(self) -> Path | None:
        """Stage 4: Megapixel MNIST at the training size, once (kept in the work folder and reused when it matches)."""
        stage, plan = self.begin("make data"), self.plan
        folder = self.work / f"megapixel-mnist-{plan.data_size}"
        meta = read_json(folder / "meta.json")
        spec = meta.get("spec", {})
        found = (meta.get("n_train"), meta.get("n_test"), spec.get("size"), spec.get("n_noise"))
        if self.digits is None and found == (plan.n_train, plan.n_test, plan.data_size, plan.n_noise):
            stage.status, stage.note = "reused", f"{folder} ({meta.get('digits')} digits)"
        else:
            shutil.rmtree(folder, ignore_errors=True)
            cmd = self.dbps("make-data", "megapixel-mnist", "--out", str(folder), "--n-train", str(plan.n_train),
                            "--n-test", str(plan.n_test), "--size", str(plan.data_size), "--noise", str(plan.n_noise),
                            *(["--digits", self.digits] if self.digits else []))
            run_stage(stage, cmd, self.log(stage.name))
            stage.note = (stage.note + f" {read_json(folder / 'meta.json').get('digits', '')} digits").strip()
        self.end(stage)
        return folder if (folder / "meta.json").is_file() else None

    def train(self, preset: str, data: Path | None) -> None:
        """Stages 5–6 for one preset: train for the planned epochs, then `dbps eval` its best checkpoint."""
        plan, run_dir = self.plan, self.work / "runs" / preset
        stage = self.begin(f"train {preset}")
        shutil.rmtree(run_dir, ignore_errors=True)
        if data is None:
            stage.status, stage.note = "skipped", "no data"
        else:
            cmd = self.dbps("train", "--config", preset, "--out", str(run_dir), f"train.epochs={plan.epochs}",
                            f"train.warmup_epochs={plan.warmup_epochs}", f"data.root={data}", "data.generate=null",
                            "log.progress=false", "log.tensorboard=false", *plan.train_overrides,
                            *plan.preset_overrides.get(preset, ()))
            run_stage(stage, cmd, self.log(stage.name))
            done = len(read_csv(run_dir / "metrics.csv"))
            stage.note = (f"{done}/{plan.epochs} epochs; " + stage.note).strip("; ")
        self.end(stage)
        stage = self.begin(f"eval {preset}")
        if (run_dir / "best.pt").is_file():
            run_stage(stage, self.dbps("eval", str(run_dir), "log.progress=false"), self.log(stage.name))
        else:
            stage.status, stage.note = "skipped", "no checkpoint"
        self.end(stage)

    def accuracy(self, reference: Path) -> None:
        """Stage 7: the IPS reference code beside dbps ips, dbps, dbps+ on its generator's files (one seed, every
        run at once on the GPU), stopped at the budget with the epochs done; results under gpu-accuracy-<tag>/."""
        stage = self.begin("accuracy")
        out = self.work / "accuracy"
        found = (reference / "main.py").is_file()
        methods = ["reference", "ips", "dbps", "dbps+"] if found else ["ips", "dbps", "dbps+"]
        shared = not found and self.share_data(out / "data")
        minutes = max(0.5, (stage.budget_s - 60) / 60)  # a minute for the data and the report
        cmd = [self.python, str(Path(__file__).with_name("accuracy_side_by_side.py")), "--out", str(out),
               "--scale", self.plan.accuracy_scale, "--seeds", "0", "--methods", ",".join(methods),
               "--jobs", str(len(methods)), "--threads", str(self.plan.accuracy_threads), "--minutes", f"{minutes:.1f}",
               *(["--reference", str(reference)] if found else []),
               *self.plan.accuracy_overrides]
        run_stage(stage, cmd, self.log(stage.name))
        folder = self.results / f"gpu-accuracy-{self.tag}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("summary.md", "epochs.csv", "curves.png"):
            if (out / name).is_file():
                shutil.copy(out / name, folder / name)
        if not found:
            stage.note = (f"without the IPS reference code (no checkout at {reference}); " + stage.note).strip("; ")
        if shared:
            stage.note = ("the training stages' data; " + stage.note).strip("; ")
        self.end(stage)

    def share_data(self, target: Path) -> bool:
        """Lend the accuracy runs the training stages' images when they are what its scale would generate (dbps's
        generator, the same sizes and digits): one generation fewer. True when `target` now links to them."""
        plan, scale = self.plan, SCALES[self.plan.accuracy_scale]
        source = self.work / f"megapixel-mnist-{plan.data_size}"
        same = (scale.size, scale.n_train, scale.n_test, scale.n_noise) == (plan.data_size, plan.n_train, plan.n_test,
                                                                             plan.n_noise)
        if not same or self.digits is not None or target.exists() or not (source / "meta.json").is_file():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source, target_is_directory=True)
        return True

    def training_rows(self) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
        """One summary row per preset and every epoch's row, from the run folders."""
        rows, epochs = [], []
        status = {s.name: s.status for s in self.stages}
        digits = read_json(self.work / f"megapixel-mnist-{self.plan.data_size}" / "meta.json").get("digits", "")
        for preset in self.presets:
            method = PRESETS[preset]
            run_dir = self.work / "runs" / preset
            metrics = read_csv(run_dir / "metrics.csv")
            epochs += [{"preset": preset, "method": method, **m} for m in metrics]
            outcome = f"train {status.get(f'train {preset}')}, eval {status.get(f'eval {preset}')}"
            rows.append({"preset": preset, "method": method, "status": outcome, "epochs": self.plan.epochs,
                         **summarise_run(run_dir, metrics, self.plan.train_batch), "digits": digits,
                         "gpu": self.env.get("gpu") or "cpu", "torch": self.env.get("torch"),
                         "commit": self.env.get("commit"), "date": self.env.get("date")})
        return rows, epochs

    def run_in_order(self) -> None:
        """Each stage alone, in the order of `stage_order`: what the GPU figures need."""
        if "tests" in self.groups:
            self.tests()
        if "bench" in self.groups:
            self.bench()
        if "train" in self.groups:
            data = self.make_data()
            for preset in self.presets:
                self.train(preset, data)
        if "accuracy" in self.groups:
            self.accuracy(self.reference)

    def run_at_once(self) -> None:
        """The data first, then the tests, the bench, each preset's training and evaluation and the accuracy runs
        at the same time; the stages are then listed in `stage_order`."""
        data = self.make_data() if "train" in self.groups else None
        lanes = [self.tests] if "tests" in self.groups else []
        lanes += [self.bench] if "bench" in self.groups else []
        lanes += [partial(self.train, preset, data) for preset in self.presets] if "train" in self.groups else []
        lanes += [partial(self.accuracy, self.reference)] if "accuracy" in self.groups else []
        with ThreadPoolExecutor(max(1, len(lanes))) as pool:
            for future in [pool.submit(lane) for lane in lanes]:
                future.result()
        order = self.stage_order()
        self.stages.sort(key=lambda stage: order.index(stage.name))

    def run(self) -> int:
        start = time.perf_counter()
        shutil.rmtree(self.logs, ignore_errors=True)
        print(f"GPU suite{' (DRY RUN on a CPU at a tiny size)' if self.dry_run else ''}: results under {self.results},"
              f" work files and logs under {self.work}", flush=True)
        if not self.environment():
            print(f"\nstopped: {self.stages[-1].note}", file=sys.stderr)
            return 2
        if self.plan.at_once:
            self.run_at_once()
        else:
            self.run_in_order()
        if "train" in self.groups:
            rows, epochs = self.training_rows()
            write_csv(rows, self.path("train"))
            if epochs:
                write_csv(epochs, self.path("train", "-epochs.csv"))
        write_outputs(self, time.perf_counter() - start)
        return 0 if all(s.status in {"ok", "reused", "skipped"} for s in self.stages) else 1


def summarise_run(run_dir: Path, metrics: list[dict[str, str]], batch: int) -> dict[str, object]:
    """Speed, memory and test accuracy (%) of one run folder; epoch 1 (autotuning, warm caches) is left out of speed."""
    summary, evaluation = read_json(run_dir / "summary.json"), read_json(run_dir / "eval-test.json")
    timed = metrics[1:] or metrics
    seconds = sum(float(m.get("seconds") or 0) for m in timed)
    images = [float(m.get("images_per_s") or 0) * float(m.get("seconds") or 0) for m in timed]
    steps = sum(math.ceil(round(n) / batch) for n in images)
    tasks = evaluation.get("tasks") or summary.get("test") or {}
    peaks = [float(m["peak_memory_mb"]) for m in metrics if m.get("peak_memory_mb")]
    scores = [float(m.get("val_score") or "nan") for m in metrics]
    return {
        "epochs_done": len(metrics),
        "best_epoch": summary.get("best_epoch") or (scores.index(max(scores)) + 1 if scores else ""),
        "ms_per_step": round(1e3 * seconds / steps, 2) if steps else "",
        "images_per_s": round(sum(images) / seconds, 2) if seconds else "",
        "peak_memory_mb": summary.get("peak_memory_mb") or (max(peaks) if peaks else ""),
        "train_seconds": summary.get("train_seconds") or sum(float(m.get("seconds") or 0) for m in metrics),
        **{task: round(100 * next(iter(values.values())), 2) for task, values in tasks.items() if values},
        "evaluated_by": "dbps eval" if evaluation else "dbps train" if summary else "",
    }


def plot_bench(rows: list[dict[str, str]], path: Path) -> None:
    """Peak memory and time per step against image size, one line per method; x marks out-of-memory."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method in report.METHOD_ORDER:
        ok = sorted((int(r["size"]), float(r["peak_memory_mb"]) / 1024, float(r["ms_per_step"]))
                    for r in rows if r.get("method") == method and r.get("status") == "ok")
        oom = [int(r["size"]) for r in rows if r.get("method") == method and r.get("status") == "oom"]
        for ax, column in zip(axes, (1, 2), strict=True):
            line = ax.plot([p[0] for p in ok], [p[column] for p in ok], marker="o", label=method)
            ax.scatter(oom, [0] * len(oom), marker="x", color=line[0].get_color())
    for ax, label in zip(axes, ("peak memory (GB)", "time per step (ms)"), strict=True):
        ax.set(xlabel="image side (pixels)", ylabel=label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"dbps bench, {rows[0].get('machine') or ''} (x: out of memory)" if rows else "dbps bench")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/gpu.sh", description=__doc__)
    parser.add_argument("--dry-run", action="store_true", help="the same stages on a CPU at a tiny size, in a minute")
    parser.add_argument("--short", action="store_true", help="fewer steps, images and epochs: about 8.5 minutes "
                        "instead of 25, for a machine lent for a few minutes")
    parser.add_argument("--out", type=Path, help="where benchmarks/results/ and docs/ are written (default: this "
                        "checkout; with --dry-run a new temporary folder)")
    parser.add_argument("--work", type=Path, help="data, run folders and logs (default: <tmp>/dbps-gpu-suite)")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated subset of {', '.join(GROUPS)}")
    parser.add_argument("--presets", default=",".join(PRESETS), help="comma-separated presets to train")
    parser.add_argument("--tag", help="file-name tag of the results (default: from the GPU name, e.g. h100)")
    parser.add_argument("--digits", help="full MNIST (.npz or IDX folder) for the generated images")
    parser.add_argument("--reference", type=Path, default=REFERENCE_CHECKOUT,
                        help="a checkout of github.com/benbergner/ips for the accuracy stage (default: %(default)s)")
    args = parser.parse_args(argv)
    args.groups = {g.strip() for g in args.only.split(",") if g.strip()}
    if args.groups - set(GROUPS):
        parser.error(f"--only: unknown {sorted(args.groups - set(GROUPS))}; known: {', '.join(GROUPS)}")
    args.presets = tuple(p.strip() for p in args.presets.split(",") if p.strip())
    if not args.presets or set(args.presets) - set(PRESETS):
        parser.error(f"--presets: choose from {', '.join(PRESETS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = (args.out or (Path(tempfile.mkdtemp(prefix="dbps-gpu-dry-run-")) if args.dry_run else ROOT)).resolve()
    if args.dry_run and out == ROOT:
        print("--dry-run must not write over this checkout's results and docs: choose another --out", file=sys.stderr)
        return 2
    work = (args.work or (out / "work" if args.dry_run else Path(tempfile.gettempdir()) / "dbps-gpu-suite")).resolve()
    plan = DRY_RUN if args.dry_run else SHORT if args.short else GPU
    suite = Suite(plan, out, work, dry_run=args.dry_run, groups=args.groups, tag=args.tag,
                  digits=args.digits, presets=args.presets)
    suite.reference = args.reference.resolve()
    return suite.run()


if __name__ == "__main__":
    sys.exit(main())
