"""Is training memory flat in the number of patches? Peak RSS of `dbps train` on synthetic slides of growing size.

For each slide size it writes (or reuses) a tissue-like synthetic 40× pyramid tile by tile, builds a cohort of
copies of it (symbolic links: `train_*` copies for training, a small slide for validation and test, a CLAM
labels and splits CSV), tiles it at level 0 into 256² patches with the library's tiling (`tile_slides`), and runs
`dbps train` for one epoch in a subprocess (one optimiser step per training copy, B = 1, every tissue patch).
Memory is read twice: the library's own `peak_memory_mb` (the process's VmHWM from the start of the epoch, in
metrics.csv) and, from outside, the kernel's maximum resident set of the whole process (its `ru_maxrss`, as
`/usr/bin/time -v` reports it), with the resident set sampled every second.

Usage:
    python benchmarks/slide_memory.py --data /data/slide-memory --slides 48128x38400 153600x122880 \
        --out benchmarks/results/cpu-slide-memory.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from dbps.bench import cpu_model
from dbps.wsi import TileSettings, count_coords, list_slides, tile_slides, write_synthetic_slide

SMALL_SIDE = 8192  # the validation and test slides: a few hundred patches, so evaluation costs little
METHODS = {  # method → its selection overrides
    "ips": ["selection.method=ips", "selection.num_context=null"],
    "dbps": ["selection.method=dbps", "selection.num_context=100"],
}


@dataclass(frozen=True)
class Measurement:
    """One `dbps train` run over a cohort: its settings and what it cost."""

    slide: str
    tissue_patches: int
    method: str
    steps: int
    seconds_per_step: float
    peak_rss_mb: float  # the library's VmHWM over the epoch
    max_rss_mb: float  # the kernel's ru_maxrss of the whole process


def parse_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' → (width, height)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}")
    return int(match[1]), int(match[2])


def synthetic_slide(folder: Path, width: int, height: int, tissue_fraction: float) -> Path:
    """The synthetic slide of this size, written once and reused."""
    path = folder / f"synthetic-{width}x{height}-tissue{tissue_fraction:g}.tiff"
    if not path.is_file():
        start = time.perf_counter()
        write_synthetic_slide(path, width, height, tissue_fraction=tissue_fraction, progress=True)
        print(f"wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
    return path


def _link(target: Path, link: Path) -> None:
    if not link.is_symlink():
        link.symlink_to(target.resolve())


def cohort(folder: Path, slide: Path, small: Path, copies: int) -> Path:
    """`copies` training links to `slide`, a validation and two test links to `small`, labels and splits CSVs."""
    slides = folder / "slides"
    slides.mkdir(parents=True, exist_ok=True)
    train = [f"train_{i}" for i in range(copies)]
    for name in train:
        _link(slide, slides / f"{name}.tiff")
    for name in ("val_0", "test_0", "test_1"):
        _link(small, slides / f"{name}.tiff")
    names = [*train, "val_0", "test_0", "test_1"]
    labels = ["case_id,slide_id,label", *(f"case_{i},{name},{'tumor' if i % 2 else 'normal'}"
                                          for i, name in enumerate(names))]
    (folder / "labels.csv").write_text("\n".join(labels) + "\n")
    columns = [train, ["val_0"], ["test_0", "test_1"]]
    rows = [",".join(c[i] if i < len(c) else "" for c in columns) for i in range(max(map(len, columns)))]
    (folder / "splits_0.csv").write_text("\n".join(["train,val,test", *rows]) + "\n")
    tiled = tile_slides(list_slides([slides]), folder / "tiles", TileSettings(patch_size=256, magnification=40.0))
    if tiled.failed:
        raise RuntimeError(f"tiling failed: see {folder / 'tiles' / 'errors.log'}")
    return folder


def train_command(folder: Path, method: str, chunk: int, run_dir: Path) -> list[str]:
    """`dbps train` for one epoch of B = 1 over the cohort's training slides: M = 100, every patch, small CNN."""
    return [
        sys.executable, "-m", "dbps", "train", "--config", "quickstart", "--dataset", "slides",
        f"data.root={folder / 'slides'}", f"data.coords={folder / 'tiles'}", f"data.labels={folder / 'labels.csv'}",
        f"data.splits={folder / 'splits_0.csv'}", "data.num_workers=0", "data.generate=null", "tasks=[]",
        "model.encoder=small_cnn", "model.dim=64", *METHODS[method], "selection.num_salient=100",
        f"selection.chunk_size={chunk}", "selection.explore_epochs=0", "patches.drop_ratio=0",
        "train.batch_size=1", "train.micro_batch_size=1", "train.epochs=1", "train.warmup_epochs=0",
        "train.device=cpu", "log.progress=false", "log.tensorboard=false", "--out", str(run_dir),
    ]


def _rss_mb(pid: int) -> float | None:
    """Resident set of a running process, from /proc (None once it has gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found[1]) / 1024 if found else None


def measure(folder: Path, method: str, chunk: int, steps: int) -> tuple[float, float, float]:
    """Run `dbps train`: (seconds per step, the library's peak MB, the kernel's maximum RSS of the process in MB).

    The kernel's figure is the child's `ru_maxrss` (what `/usr/bin/time -v` reports); the resident set is also
    sampled every second into `<run>-rss.csv`, so a slow climb over the step would show.
    """
    run_dir = folder / f"run-{method}-{time.strftime('%Y%m%d-%H%M%S')}"
    command = train_command(folder, method, chunk, run_dir)
    print("dbps", " ".join(command[3:]), flush=True)
    log = folder / f"{run_dir.name}.log"
    with log.open("w") as output, (folder / f"{run_dir.name}-rss.csv").open("w") as trace:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        trace.write("seconds,rss_mb\n")
        start = time.perf_counter()
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if (rss := _rss_mb(process.pid)) is not None:
                trace.write(f"{time.perf_counter() - start:.1f},{rss:.1f}\n")
                trace.flush()
            time.sleep(1.0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"dbps train failed ({process.returncode}): see {log}")
    with (run_dir / "metrics.csv").open() as handle:
        row = next(csv.DictReader(handle))
    return float(row["seconds"]) / steps, float(row["peak_memory_mb"]), usage.ru_maxrss / 1024


def write_csv(path: Path, rows: list[Measurement], chunk: int) -> None:
    """The measurements with their context (machine, torch, settings) and the ratio to the smallest slide."""
    base = {row.method: row.peak_rss_mb for row in rows if row.tissue_patches == min(r.tissue_patches for r in rows)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide", "tissue_patches", "method", "M", "I", "S", "steps", "seconds_per_step",
                         "peak_rss_mb", "max_rss_mb_process", "peak_ratio", "cpu", "cores", "torch"])
        for row in rows:
            writer.writerow([
                row.slide, row.tissue_patches, row.method, 100, chunk, 100 if row.method == "dbps" else 0, row.steps,
                f"{row.seconds_per_step:.1f}", f"{row.peak_rss_mb:.1f}", f"{row.max_rss_mb:.1f}",
                f"{row.peak_rss_mb / base[row.method]:.3f}", cpu_model(), os.cpu_count(), torch.__version__,
            ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="folder for the slides, cohorts and runs (GBs)")
    parser.add_argument("--slides", type=parse_size, nargs="+", required=True, help="slide sizes, WIDTHxHEIGHT")
    parser.add_argument("--tissue", type=float, default=0.85, help="tissue fraction of the slides (default 0.85)")
    parser.add_argument("--methods", default="ips", help="comma-separated: ips, dbps (default ips)")
    parser.add_argument("--chunk", type=int, default=256, help="I, patches embedded at once (default 256)")
    parser.add_argument("--steps", type=int, default=2, help="training copies of each slide = steps (default 2)")
    parser.add_argument("--out", type=Path, help="CSV of the results")
    args = parser.parse_args()

    (args.data / "slides").mkdir(parents=True, exist_ok=True)
    small = synthetic_slide(args.data / "slides", SMALL_SIDE, SMALL_SIDE, args.tissue)
    rows = []
    for width, height in args.slides:
        slide = synthetic_slide(args.data / "slides", width, height, args.tissue)
        folder = cohort(args.data / f"cohort-{width}x{height}", slide, small, args.steps)
        patches = count_coords(folder / "tiles" / "patches" / "train_0.h5")
        for method in args.methods.split(","):
            seconds, peak, outside = measure(folder, method, args.chunk, args.steps)
            rows.append(Measurement(f"{width}x{height}", patches, method, args.steps, seconds, peak, outside))
            print(f"{width}x{height}: {patches:,} tissue patches, {method}: {seconds:.0f} s/step, "
                  f"peak RSS {peak:.0f} MB (outside: {outside:.0f} MB)", flush=True)
            if args.out:
                write_csv(args.out, rows, args.chunk)


if __name__ == "__main__":
    main()
