"""What the buffers can hold on Megapixel MNIST: patches with ink against the salient set M and the context S.

With `selection.skip_blank`, a blank patch scores 0 and every patch with ink ranks above it, so the counts of ink
patches per image decide the buffers' contents whatever the model has learnt: the static buffer holds
min(ink, M) of them, the dynamic buffer what is left, up to S; `dbps+` ('half' sampling after a random drop)
draws ceil(M/2) of its salient set inside the top M and the rest outside it, where only the ink patches beyond the
top M can be found. Counts come from the training images of a folder in either Megapixel MNIST layout.

    python benchmarks/buffer_contents.py DATA --patch 50 --salient 16 --context 16 --drop 0.3
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

from dbps.data.kinds.mnist import megapixel_mnist_split
from dbps.selection.blank import blank_patches


def ink_patches_per_image(root: Path, patch: int) -> np.ndarray:
    """Number of non-blank patches of a patch × patch grid in each training image."""
    data = megapixel_mnist_split(root, "train")
    counts = []
    for i in range(len(data)):
        image = torch.from_numpy(data.dense(i))
        grid = image.unfold(0, patch, patch).unfold(1, patch, patch).reshape(1, -1, patch * patch)
        counts.append(int((~blank_patches(grid)).sum()))
    return np.array(counts)


def report(ink: np.ndarray, salient: int, context: int, drop: float, seed: int = 0) -> list[str]:
    """Lines describing the buffers' ink for IPS/DBPS (every patch kept) and DBformer+ ('half', random drop)."""
    in_salient, in_context = np.minimum(ink, salient), np.clip(ink - salient, 0, context)
    lines = [
        f"ips/dbps, M = {salient}, S = {context}: ink in the salient set {in_salient.mean():.2f}, images with blank "
        f"patches in it {100 * (ink < salient).mean():.0f} %; ink in the context {in_context.mean():.2f}, images "
        f"whose context is all blank {100 * (in_context == 0).mean():.0f} %",
    ]
    rng = np.random.default_rng(seed)
    kept = rng.binomial(np.repeat(ink, 10), 1.0 - drop)  # ten random drops per image
    inside, outside = math.ceil(salient / 2), salient - math.ceil(salient / 2)
    drawn = np.minimum(kept, inside) + np.minimum(np.clip(kept - salient, 0, None), outside)
    lines.append(
        f"dbps+ 'half', M = {salient}, drop {drop}: ink kept {kept.mean():.2f}, ink in the salient set "
        f"{drawn.mean():.2f} (the rest of the M are blank), ink left to the context {(kept - drawn).mean():.2f}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="a Megapixel MNIST folder (dbps's or the reference generator's)")
    parser.add_argument("--patch", type=int, default=50)
    parser.add_argument("--salient", type=int, nargs="+", default=[16], help="M (several: one report each)")
    parser.add_argument("--context", type=int, default=16, help="S")
    parser.add_argument("--drop", type=float, default=0.3, help="dbps+'s random drop ratio")
    args = parser.parse_args()
    ink = ink_patches_per_image(args.root, args.patch)
    print(f"images {len(ink)}; ink patches per image: mean {ink.mean():.2f}, sd {ink.std():.2f}, "
          f"{ink.min()}–{ink.max()}")
    for salient in args.salient:
        print("\n".join(report(ink, salient, args.context, args.drop)))


if __name__ == "__main__":
    main()
