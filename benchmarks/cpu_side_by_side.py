"""Two checkouts of dbps, and the speed options one at a time, benchmarked back to back on a CPU.

Each repeat runs every variant once, in turn (A B C … A B C …), so that a slow spell of a shared machine hits
them all alike; each `dbps bench` call measures every method in a fresh process. Before each call the script
waits (up to --wait-idle seconds) until other processes use under 15 % of the CPU, and records how busy the
machine was. It writes every run to --out and prints the median and spread of ms/step per variant and method.

    python benchmarks/cpu_side_by_side.py --baseline ../dbps-old --repeats 5
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
OFF = ["train.amp_cpu=false", "train.channels_last=false", "train.fold_batchnorm=false"]
VARIANTS = {  # label → (checkout, overrides)
    "baseline": ("baseline", []),
    "levers off": ("new", OFF),
    "+bf16": ("new", ["train.channels_last=false", "train.fold_batchnorm=false"]),
    "+bf16 +channels-last": ("new", ["train.fold_batchnorm=false"]),
    "+bf16 +channels-last +fold (default)": ("new", []),
    "default +compile": ("new", ["train.compile=true"]),
    "float32 +channels-last +fold": ("new", ["train.amp_cpu=false"]),
}


def busy_share(seconds: float = 2.0) -> float:
    """Share of CPU time not idle over `seconds` (Linux /proc/stat)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_idle(limit: float) -> float:
    """Wait until the machine is nearly idle or `limit` seconds have passed; return the last busy share."""
    start = time.monotonic()
    while True:
        share = busy_share()
        if share < 0.15 or time.monotonic() - start > limit:
            return share


def bench(tree: Path, overrides: list[str], args: argparse.Namespace, out: Path) -> list[dict[str, str]]:
    """One `dbps bench` call importing dbps from `tree` (run there, so no other checkout can shadow it)."""
    command = [sys.executable, "-m", "dbps", "bench", "--config", args.config, "--sizes", str(args.size),
               "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--methods", args.methods, "--out", str(out), *args.setting.split(), "train.device=cpu",
               *overrides]
    env = os.environ | {"PYTHONPATH": str(tree)}
    subprocess.run(command, env=env, cwd=tree, check=True, capture_output=True, text=True)
    with out.open() as handle:
        return list(csv.DictReader(handle))


def check_import(tree: Path) -> None:
    """Fail early unless a process started in `tree` imports dbps from it (not from an installed checkout)."""
    env = os.environ | {"PYTHONPATH": str(tree)}
    code = "import dbps; print(dbps.__file__)"
    found = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, check=True, capture_output=True, text=True)
    if not Path(found.stdout.strip()).is_relative_to(tree):
        raise SystemExit(f"dbps imported from {found.stdout.strip()}, not from {tree}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, required=True, help="checkout of the commit to compare against")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated labels (default: all)")
    parser.add_argument("--config", default="mnist_dbps", help="config or preset of the model (default mnist_dbps)")
    parser.add_argument("--setting", default="M=16 I=32 S=16", help="overrides for every variant (default: M, I, S)")
    parser.add_argument("--methods", default="ips,dbps")
    parser.add_argument("--size", type=int, default=600)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--wait-idle", type=float, default=300, help="seconds to wait for an idle machine per call")
    parser.add_argument("--out", type=Path, default=HERE / "benchmarks/results/cpu-side-by-side.csv")
    args = parser.parse_args()
    trees = {"baseline": args.baseline.resolve(), "new": HERE}
    labels = [label.strip() for label in args.variants.split(",")]
    for tree in {trees[VARIANTS[label][0]] for label in labels}:
        check_import(tree)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for label in labels:
                tree, overrides = VARIANTS[label]
                busy = wait_idle(args.wait_idle)
                for row in bench(trees[tree], overrides, args, Path(tmp) / f"{repeat}-{len(rows)}.csv"):
                    rows.append({"variant": label, "repeat": repeat, "busy_before": round(busy, 3)} | row)
                    print(f"{repeat} {label:38s} {row['method']:>5} {float(row['ms_per_step']):8.1f} ms/step "
                          f"(busy before {busy:.0%})", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        # an older checkout's bench may write fewer columns: every column any row has, blank where missing
        writer = csv.DictWriter(handle, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
        writer.writeheader()
        writer.writerows(rows)
    summarise(rows, labels)


def summarise(rows: list[dict[str, object]], labels: list[str]) -> None:
    """Median, min and max ms/step per variant and method, and the speed-up of the median over the baseline."""
    methods = list(dict.fromkeys(str(r["method"]) for r in rows))
    medians: dict[tuple[str, str], float] = {}
    for label in labels:
        for method in methods:
            times = [float(r["ms_per_step"]) for r in rows if r["variant"] == label and r["method"] == method]
            medians[label, method] = statistics.median(times)
            base = medians.get(("baseline", method))
            speedup = f"{base / medians[label, method]:.2f}×" if base else "–"
            print(f"{label:38s} {method:>5} median {medians[label, method]:7.1f} ms  "
                  f"[{min(times):.1f}–{max(times):.1f}] n={len(times)}  speed-up {speedup}")


if __name__ == "__main__":
    main()
