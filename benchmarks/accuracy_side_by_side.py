"""Accuracy side by side: the IPS reference code and dbps `ips`, `dbps`, `dbps+` on the same Megapixel MNIST files.

The reference generator (run by benchmarks/reference_ips.py) writes the data once; every run trains on all its
training images with the same schedule, batch size, M, I, patch grid and encoder (ResNet-18 to layer2, D = 128,
4 tasks), and is evaluated on the test images after every epoch, as the reference does. dbps runs with no
validation split (`data.val_fraction=0`) and `log.test_every_epoch=true`, so both report the same thing: test
accuracy per epoch, the last epoch's being the result. Each (method, seed) is one process; finished runs are kept
and skipped when the script runs again, so it can be stopped and continued, and variants (one-change ablations)
can be added to the same folder.

    python benchmarks/accuracy_side_by_side.py --reference ../ips --out benchmarks/results/accuracy-cpu
    python benchmarks/accuracy_side_by_side.py --reference ../ips --out DIR --methods ips --variant no-zero-init \\
        model.zero_init_last=true                       # a one-change ablation of dbps, same data and seeds
    python benchmarks/accuracy_side_by_side.py --out DIR --report     # table and curves of what DIR holds

Writes into --out: data/ (the reference generator's files), runs/<variant>/<method>-seed<k>/ (each run's folder
and log), epochs.csv (every run's test metrics per epoch), summary.md (final-epoch mean ± std over seeds) and
curves.png (mean ± spread per epoch).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from reference_ips import parse_test_epochs, reference_config  # noqa: E402

TASKS = ("majority", "max", "top", "multi")
PRESETS = {"ips": "mnist_ips", "dbps": "mnist_dbps", "dbps+": "mnist_dbps_plus"}
METHODS = ("reference", *PRESETS)


@dataclass(frozen=True)
class Scale:
    """Data and schedule shared by every run."""

    size: int
    n_train: int
    n_test: int
    n_noise: int
    patch: int
    num_salient: int
    chunk: int
    context: int
    epochs: int
    warmup: int
    batch: int
    lr: float

    @property
    def num_patches(self) -> int:
        return (self.size // self.patch) ** 2


SCALES = {
    # 2-core CPU: 400² canvases (N = 64 patches of 50², two chunks of I = 32), the scribbles scaled with the area
    # (50 at 1500²), M = 16: as in the papers' setting, the buffer can hold every patch of a digit (about 12), but
    # not every patch with ink (about 17), and 3 chunks of candidates are ranked per image.
    "cpu": Scale(size=400, n_train=1500, n_test=300, n_noise=4, patch=50, num_salient=16, chunk=24, context=16,
                 epochs=8, warmup=1, batch=16, lr=1e-3),
    # The papers' Megapixel MNIST on one GPU: 1500², N = 900, M = I = 100, the reference generator's 5,000 / 1,000.
    "gpu": Scale(size=1500, n_train=5000, n_test=1000, n_noise=50, patch=50, num_salient=100, chunk=100,
                 context=100, epochs=12, warmup=2, batch=16, lr=1e-3),
    # A check that everything runs, in seconds (use with a small model given as overrides).
    "dry": Scale(size=150, n_train=32, n_test=16, n_noise=2, patch=30, num_salient=4, chunk=10, context=4,
                 epochs=1, warmup=0, batch=8, lr=1e-3),
}


def make_data(reference: Path | None, data: Path, scale: Scale, python: str) -> None:
    """The reference generator's files in `data` (dbps's own generator without a reference checkout), made once."""
    found = data / "parameters.json" if reference else data / "meta.json"
    wanted = {"n_train": scale.n_train, "n_test": scale.n_test, "width": scale.size, "height": scale.size,
              "n_noise": scale.n_noise}
    if found.is_file():
        params = json.loads(found.read_text())
        params |= {"width": params.get("spec", {}).get("size"), "height": params.get("spec", {}).get("size"),
                   "n_noise": params.get("spec", {}).get("n_noise")} if not reference else {}
        if all(params.get(key) == value for key, value in wanted.items()):
            return
        raise SystemExit(f"{data} holds another dataset ({params}); use another --out")
    if data.exists():
        raise SystemExit(f"{data} exists but holds no dataset of this kind; remove it or use another --out")
    if reference:
        command = [python, str(HERE / "reference_ips.py"), "make-data", str(reference), str(data), "--size",
                   str(scale.size), "--n-train", str(scale.n_train), "--n-test", str(scale.n_test), "--n-noise",
                   str(scale.n_noise)]
    else:
        command = [python, "-m", "dbps", "make-data", "megapixel-mnist", "--out", str(data), "--size",
                   str(scale.size), "--n-train", str(scale.n_train), "--n-test", str(scale.n_test), "--noise",
                   str(scale.n_noise)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=os.environ | {"PYTHONPATH": str(ROOT)})


def dbps_overrides(method: str, scale: Scale, data: Path, seed: int) -> list[str]:
    """The preset of `method` at `scale`, trained on every training image, tested after every epoch."""
    overrides = [
        f"data.root={data}", "data.val_fraction=0", "data.num_workers=1", f"patches.size={scale.patch}",
        f"selection.num_salient={scale.num_salient}", f"selection.chunk_size={scale.chunk}",
        f"train.epochs={scale.epochs}", f"train.warmup_epochs={scale.warmup}", f"train.batch_size={scale.batch}",
        f"train.lr={scale.lr}", f"train.seed={seed}", "log.test_every_epoch=true", "log.heatmaps=0",
        "log.progress=false", "log.tensorboard=false",
    ]
    if method == "dbps":
        overrides.append(f"selection.num_context={scale.context}")
    return overrides


@dataclass(frozen=True)
class Job:
    variant: str
    method: str
    seed: int
    folder: Path
    command: list[str]

    @property
    def done(self) -> Path:
        return self.folder / "epochs.json"


def plan(args: argparse.Namespace, scale: Scale, data: Path) -> list[Job]:
    jobs = []
    for method in args.methods:
        for seed in args.seeds:
            folder = args.out / "runs" / args.variant / f"{method}-seed{seed}"
            if method == "reference":
                config = folder / "mnist_config.yml"
                command = [args.python, str(HERE / "reference_ips.py"), "train", str(args.reference), str(config),
                           str(folder / "work")]
            else:
                command = [args.python, "-m", "dbps", "train", "--config", PRESETS[method], "--out",
                           str(folder / "run"), *dbps_overrides(method, scale, data, seed), *args.overrides]
            jobs.append(Job(args.variant, method, seed, folder, command))
    return jobs


def run_job(job: Job, scale: Scale, data: Path, threads: int, deadline: float, checkout: Path) -> None:
    """Run one training process (skipped when done) and write its test metrics per epoch to epochs.json.

    A run stopped by the deadline or by an error keeps the epochs it finished, marked incomplete.
    """
    if job.done.is_file():
        return
    job.folder.mkdir(parents=True, exist_ok=True)
    if job.method == "reference":
        (job.folder / "mnist_config.yml").write_text(reference_config(
            size=scale.size, patch=scale.patch, n_train=scale.n_train, epochs=scale.epochs, warmup=scale.warmup,
            batch=scale.batch, lr=scale.lr, num_salient=scale.num_salient, chunk=scale.chunk, seed=job.seed,
            data=data,
        ))
    if (job.folder / "run").exists():  # an interrupted dbps run starts again from nothing
        subprocess.run(["rm", "-rf", str(job.folder / "run")], check=True)
    env = os.environ | {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
                        "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1"}
    log = job.folder / "log.txt"
    start = time.perf_counter()
    with log.open("w") as handle:
        try:
            code = subprocess.run(job.command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=checkout,
                                  timeout=max(1.0, deadline - time.monotonic())).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    seconds = time.perf_counter() - start
    metrics = job.folder / "run" / "metrics.csv"
    rows = reference_rows(log) if job.method == "reference" else dbps_rows(metrics) if metrics.is_file() else []
    if code != 0:
        print(f"{job.variant} {job.method} seed {job.seed}: {code} after {len(rows)} epochs, see {log}", flush=True)
        if not rows:
            return
    record = {"seconds": round(seconds, 1), "threads": threads, "complete": code == 0, "epochs": rows}
    job.done.write_text(json.dumps(record, indent=1))
    last = rows[-1] if rows else {}
    print(f"{job.variant} {job.method} seed {job.seed}: {seconds:.0f} s, epoch {last.get('epoch')}: "
          + ", ".join(f"{task} {100 * last.get(task, math.nan):.1f}" for task in TASKS), flush=True)


def reference_rows(log: Path) -> list[dict[str, float]]:
    return [{"epoch": row["epoch"], **{task: row[task] for task in TASKS if task in row}}
            for row in parse_test_epochs(log.read_text())]


def dbps_rows(metrics: Path) -> list[dict[str, float]]:
    names = {"majority": "accuracy", "max": "accuracy", "top": "accuracy", "multi": "multilabel_accuracy"}
    with metrics.open(newline="") as handle:
        return [{"epoch": int(row["epoch"]), **{task: float(row[f"test_{task}_{metric}"])
                                                for task, metric in names.items() if f"test_{task}_{metric}" in row}}
                for row in csv.DictReader(handle)]  # a variant may train fewer tasks (e.g. `tasks=[majority]`)


def collect(out: Path) -> list[dict[str, object]]:
    """Every finished run under out/runs as flat rows (variant, method, seed, epoch, tasks…)."""
    rows = []
    for done in sorted(out.glob("runs/*/*/epochs.json")):
        variant, (method, seed) = done.parent.parent.name, done.parent.name.rsplit("-seed", 1)
        record = json.loads(done.read_text())
        for epoch in record["epochs"]:
            rows.append({"variant": variant, "method": method, "seed": int(seed), "seconds": record["seconds"],
                         "complete": record.get("complete", True), **epoch})
    return rows


def groups(rows: list[dict[str, object]]) -> dict[tuple[str, str], dict[int, list[dict[str, object]]]]:
    """{(variant, method): {seed: rows by epoch}}."""
    found: dict[tuple[str, str], dict[int, list[dict[str, object]]]] = {}
    for row in rows:
        found.setdefault((str(row["variant"]), str(row["method"])), {}).setdefault(int(row["seed"]), []).append(row)
    return found


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    mean = 100 * statistics.fmean(values)
    return f"{mean:.1f} ± {100 * statistics.stdev(values):.1f}" if len(values) > 1 else f"{mean:.1f}"


def summary_table(rows: list[dict[str, object]]) -> str:
    """Markdown: per variant and method, the last epoch's test accuracy, mean ± std over seeds."""
    lines = ["| variant | method | seeds | epochs | " + " | ".join(f"{t} %" for t in TASKS) + " | minutes per run |",
             "|---|---|---|---|" + "---|" * len(TASKS) + "---|"]
    for (variant, method), seeds in sorted(groups(rows).items(), key=lambda item: (item[0][0] != "base", item[0])):
        finals = [max(runs, key=lambda r: int(r["epoch"])) for runs in seeds.values()]
        epochs = sorted({int(final["epoch"]) for final in finals})
        minutes = statistics.fmean(float(final["seconds"]) for final in finals) / 60
        cells = [mean_std([float(final[t]) for final in finals if t in final]) for t in TASKS]
        seed_list = ",".join(map(str, sorted(seeds)))
        lines.append(f"| {variant} | {method} | {seed_list} | "
                     f"{'/'.join(map(str, epochs))} | " + " | ".join(cells) + f" | {minutes:.1f} |")
    return "\n".join(lines)


def plot_curves(rows: list[dict[str, object]], path: Path, only: list[tuple[str, str]] | None = None) -> None:
    """One panel per task: test accuracy per epoch, mean over seeds with the min–max band, per (variant, method)
    — every pair in `rows`, or those of `only` in its order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(4.2 * len(TASKS), 4), sharex=True)
    found = groups(rows)
    pairs = [(pair, found[pair]) for pair in only] if only else sorted(found.items())
    palette = plt.get_cmap("tab10" if len(pairs) <= 10 else "tab20").colors  # one colour per (variant, method)
    for i, ((variant, method), seeds) in enumerate(pairs):
        colour = palette[i % len(palette)]
        label = method if variant == "base" else f"{method} ({variant})"
        epochs = sorted({int(r["epoch"]) for runs in seeds.values() for r in runs})
        for ax, task in zip(axes, TASKS, strict=True):
            per_epoch = [[100 * float(r[task]) for runs in seeds.values() for r in runs
                          if int(r["epoch"]) == e and task in r] for e in epochs]
            if not all(per_epoch):
                continue
            mean = [statistics.fmean(v) for v in per_epoch]
            ax.plot(epochs, mean, marker="o", markersize=3, label=f"{label} (n={len(seeds)})", color=colour,
                    linestyle="--" if method == "reference" else "-")
            if len(seeds) > 1:
                ax.fill_between(epochs, [min(v) for v in per_epoch], [max(v) for v in per_epoch], alpha=0.15,
                                color=colour)
    for ax, task in zip(axes, TASKS, strict=True):
        ax.set(title=task, xlabel="epoch", ylabel="test %" if task != "multi" else "test exact match %")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05 * math.ceil(len(labels) / 4) + 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(out: Path, scale: Scale | None, plot: list[tuple[str, str]] | None = None) -> None:
    rows = collect(out)
    if not rows:
        print(f"{out}: no finished runs yet")
        return
    found = groups(rows)
    missing = [f"{variant}/{method}" for variant, method in plot or [] if (variant, method) not in found]
    if missing:  # before anything is written
        raise SystemExit(f"--plot: no finished runs of {', '.join(missing)}")
    with (out / "epochs.csv").open("w", newline="") as handle:
        fields = ["variant", "method", "seed", "epoch", *TASKS, "seconds", "complete"]
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    table = summary_table(rows)
    header = f"Setting: {json.dumps(asdict(scale))}\n\n" if scale else ""
    (out / "summary.md").write_text(header + table + "\n")
    plot_curves(rows, out / "curves.png", plot)
    print(table)


def plot_pairs(text: str) -> list[tuple[str, str]]:
    """'VARIANT/METHOD,…' → [(variant, method), …]."""
    items = text.split(",")
    pairs = [tuple(item.rsplit("/", 1)) for item in items]
    bad = [item for item, pair in zip(items, pairs, strict=True) if len(pair) != 2 or pair[1] not in METHODS]
    if bad:
        raise argparse.ArgumentTypeError(f"{', '.join(bad)}: expected VARIANT/METHOD with a method of {list(METHODS)}")
    return pairs


def machine() -> str:
    import torch

    from dbps.bench import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores, PyTorch {torch.__version__}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", type=Path, help="a checkout of github.com/benbergner/ips: its generator "
                        "makes the data (without it, `dbps make-data` does, and only dbps methods run)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    parser.add_argument("--epochs", type=int, help="override the scale's number of epochs")
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS))
    parser.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--variant", default="base", help="name of a dbps variant (its overrides follow)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="overrides of the dbps runs (the variant's change, or e.g. train.device=cuda)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 1)), help="threads per run")
    parser.add_argument("--minutes", type=float, help="stop every run after this many minutes, keeping the epochs "
                        "finished (marked incomplete)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the dbps checkout the dbps runs import "
                        "(default: this one); e.g. a worktree of another commit, for a before/after")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--report", action="store_true", help="only write the table and curves of --out")
    parser.add_argument("--plot", type=plot_pairs, help="the curves of these runs only, in this order: "
                        "VARIANT/METHOD,… (e.g. base/reference,skip-blank/ips); the table keeps every run")
    args = parser.parse_args()
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {list(METHODS)}")
    scale = SCALES[args.scale]
    if args.epochs:
        scale = Scale(**asdict(scale) | {"epochs": args.epochs})
    args.out, args.checkout = args.out.resolve(), args.checkout.resolve()
    if not args.report:
        if args.reference is None and "reference" in args.methods:
            parser.error("method 'reference' needs --reference (a checkout of github.com/benbergner/ips)")
        args.reference = args.reference.resolve() if args.reference else None
        data = args.out / "data"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "machine.txt").write_text(machine() + "\n")
        make_data(args.reference, data, scale, args.python)
        jobs = plan(args, scale, data)
        deadline = time.monotonic() + (args.minutes * 60 if args.minutes else math.inf)
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda job: run_job(job, scale, data, args.threads, deadline, args.checkout), jobs))
    write_reports(args.out, scale, args.plot)


if __name__ == "__main__":
    main()
