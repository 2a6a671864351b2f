"""Is reading slides the bottleneck? Patches/s of the slide reader against patches/s of encoders' no-grad pass.

Writes a synthetic 40× pyramidal slide (tile by tile), then measures on the same machine:
- the reader: `SlidePatches.fetch` of 256² level-0 tissue patches in chunks, the next chunk prefetched, with
  1, 2, … reading threads (uint8 → normalised float32 included);
- the encoders: `torch.inference_mode` forward passes of 256² patches in batches (bf16 autocast on a GPU).

Usage:
    python benchmarks/slide_reading.py --side 32768 --out benchmarks/results/cpu-slide-reading.csv
"""

from __future__ import annotations

import argparse
import csv
import platform
import tempfile
import time
from pathlib import Path

import torch

from dbps.models import create_encoder
from dbps.wsi import SlidePatches, TileSettings, open_slide, tile_slide, write_synthetic_slide

ENCODERS = {  # label → create_encoder arguments
    "small_cnn (dim 128)": {"name": "small_cnn", "dim": 128},
    "resnet18, 2 stages (dim 128)": {"name": "resnet18", "stages": 2, "dim": 128},
}


def reader_rate(slide: Path, coords: torch.Tensor, threads: int, chunk: int, count: int) -> float:
    """Patches/s of reading `count` 256² level-0 patches in chunks with one chunk prefetched."""
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    with SlidePatches(slide, coords[:count], 256, 256, mean=mean, std=std, num_workers=threads) as source:
        chunks = torch.arange(min(count, len(coords))).split(chunk)
        source.fetch(chunks[0].unsqueeze(0))  # warm the file cache and the pool
        start = time.perf_counter()
        source.prefetch(chunks[0].unsqueeze(0))
        for i, idx in enumerate(chunks):
            source.fetch(idx.unsqueeze(0))
            if i + 1 < len(chunks):
                source.prefetch(chunks[i + 1].unsqueeze(0))
        return sum(map(len, chunks)) / (time.perf_counter() - start)


def encoder_rate(arguments: dict, device: torch.device, batch: int, steps: int) -> float:
    """Patches/s of the encoder's no-grad forward pass on 256² RGB patches."""
    encoder = create_encoder(arguments["name"], in_chans=3, stages=arguments.get("stages"), dim=arguments["dim"])
    encoder = encoder.eval().to(device)
    if device.type == "cuda":
        encoder.to_channels_last()
    patches = torch.randn(batch, 3, 256, 256, device=device)
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
        encoder(patches)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            encoder(patches)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=32768, help="synthetic slide side in pixels (default 32768)")
    parser.add_argument("--slide", type=Path, help="reuse this slide instead of writing one")
    parser.add_argument("--threads", default="1,2", help="reader thread counts, comma-separated (default 1,2)")
    parser.add_argument("--patches", type=int, default=2048, help="patches read per measurement (default 2048)")
    parser.add_argument("--chunk", type=int, default=256, help="patches per fetch (default 256)")
    parser.add_argument("--batch", type=int, default=64, help="encoder batch (default 64)")
    parser.add_argument("--steps", type=int, default=5, help="encoder batches timed (default 5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, help="CSV of the results")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        slide = args.slide or write_synthetic_slide(Path(tmp) / "slide.tiff", args.side, args.side, progress=True)
        with open_slide(slide) as reader:
            settings = TileSettings(patch_size=256, magnification=reader.magnification, min_tissue=1.0)
            coords = torch.from_numpy(tile_slide(reader, settings, "slide").coords)
        coords = coords[torch.randperm(len(coords), generator=torch.Generator().manual_seed(0))]  # scattered reads
        rows = [("reader", f"{threads} threads", reader_rate(slide, coords, threads, args.chunk, args.patches))
                for threads in map(int, args.threads.split(","))]
    device = torch.device(args.device)
    rows += [("encoder", label, encoder_rate(arguments, device, args.batch, args.steps))
             for label, arguments in ENCODERS.items()]
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"{len(coords):,} full-tissue 256² patches; device {where}, torch {torch.__version__}")
    for kind, label, rate in rows:
        print(f"{kind:8s} {label:30s} {rate:10.1f} patches/s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["kind", "what", "patches_per_second", "device", "torch", "torch_threads"])
            context = (where, torch.__version__, torch.get_num_threads())
            writer.writerows((kind, label, f"{rate:.1f}", *context) for kind, label, rate in rows)


if __name__ == "__main__":
    main()
