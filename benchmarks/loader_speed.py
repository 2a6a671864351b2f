"""Loader throughput on photo-like JPEGs: decode + resize in DataLoader workers + the 200-px patch grid, in images/s.

The JPEGs are 2×2 mosaics of crops of the photos in scikit-image's wheel (a dev dependency), written at quality 90.
With --augment it also times the training augmentation (colour jitter + translation) per image.

    python benchmarks/loader_speed.py --images 64 --workers 2 --native 1200x1000 --size 1200x1000 --augment
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

from dbps.bench import cpu_name
from dbps.data import Collate, ImageDataset, PatchSpec, SplitFiles, TrainAugment, build_loader
from dbps.patches import batch_source

PHOTOS = ("retina.jpg", "hubble_deep_field.jpg", "motorcycle_left.png", "coffee.png", "astronaut.png", "rocket.jpg")
PHOTOS += ("chelsea.png", "ihc.png", "grass.png", "gravel.png", "brick.png")


def skimage_photos() -> list[Image.Image]:
    import skimage

    folder = Path(skimage.__file__).parent / "data"
    return [Image.open(folder / name).convert("RGB") for name in PHOTOS]


def make_jpegs(folder: Path, count: int, height: int, width: int, seed: int = 0) -> list[Path]:
    """`count` JPEGs of height × width, each a 2×2 mosaic of random crops of real photos."""
    rng = np.random.default_rng(seed)
    photos = skimage_photos()
    tile_w, tile_h = width // 2, height // 2
    paths = []
    for i in range(count):
        mosaic = Image.new("RGB", (2 * tile_w, 2 * tile_h))
        for corner in range(4):
            photo = photos[rng.integers(len(photos))]
            scale = rng.uniform(0.6, 1.0)
            w, h = int(photo.width * scale), int(photo.height * scale)
            left, top = rng.integers(0, photo.width - w + 1), rng.integers(0, photo.height - h + 1)
            tile = photo.crop((left, top, left + w, top + h)).resize((tile_w, tile_h), Image.Resampling.BICUBIC)
            mosaic.paste(tile, ((corner % 2) * tile_w, (corner // 2) * tile_h))
        paths.append(folder / f"{i:04d}.jpg")
        mosaic.resize((width, height)).save(paths[-1], quality=90)
    return paths


def loader_rate(paths: list[Path], size: tuple[int, int], workers: int, batch: int, patch: int, epochs: int) -> float:
    """Images per second over `epochs` passes after one warm-up pass (workers already started).

    Each batch is decoded and resized in the workers, then every patch of its grid is fetched as normalised float32,
    as the selection pass reads them.
    """
    files = SplitFiles(paths, [0] * len(paths), ["photo"])
    spec = PatchSpec((patch, patch), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    loader = build_loader(ImageDataset(files, resize=size), batch, collate=Collate(spec), num_workers=workers)

    def read_all() -> None:
        for images in loader:
            source = batch_source(images, torch.float32)
            source.fetch(torch.arange(source.num_patches).expand(source.batch_size, -1))

    read_all()  # warm-up: start the workers, fill the page cache
    start = time.perf_counter()
    for _ in range(epochs):
        read_all()
    return epochs * len(paths) / (time.perf_counter() - start)


def augment_ms(paths: list[Path], size: tuple[int, int], device: str, repeats: int = 3) -> float:
    """Milliseconds per image of `TrainAugment` on a batch of 8 decoded images."""
    files = SplitFiles(paths[:8], [0] * min(8, len(paths)), ["photo"])
    dataset = ImageDataset(files, resize=size)
    images = torch.stack([dataset[i][0] for i in range(len(dataset))]).to(device)
    augment, generator = TrainAugment(), torch.Generator(device).manual_seed(0)
    augment(images, generator)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        augment(images, generator)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000 / (repeats * len(images))


def pair(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--native", type=pair, default=(1200, 1000), help="HxW of the JPEGs on disk")
    parser.add_argument("--size", type=pair, default=(1200, 1000), help="HxW they are resized to")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--patch", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--augment", action="store_true", help="also time the training augmentation per image")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        paths = make_jpegs(Path(folder), args.images, *args.native)
        rate = loader_rate(paths, args.size, args.workers, args.batch, args.patch, args.epochs)
        machine = f"{cpu_name()}, {torch.get_num_threads()} threads"
        versions = f"torch {torch.__version__}, Pillow {PIL.__version__}"
        native, size = "×".join(map(str, args.native)), "×".join(map(str, args.size))
        print(
            f"loader: {rate:.1f} images/s — {args.images} JPEGs {native} → {size}, {args.patch}-px patch grid, "
            f"{args.workers} workers, batch {args.batch} ({machine}; {versions})"
        )
        if args.augment:
            for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
                print(f"augment: {augment_ms(paths, args.size, device):.1f} ms/image on {device} — {size}×3 uint8")


if __name__ == "__main__":
    main()
