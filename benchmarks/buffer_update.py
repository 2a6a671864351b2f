"""CPU cost of the two `dbps` buffer updates (joint, two_stage): process time of the no-gradient selection pass.

Process CPU time on one thread rather than wall time, so that other jobs on a shared machine hardly move the
comparison; the two updates alternate, and the median of the repeats is kept. The model is the config's (quickstart:
small CNN, CA aggregator, D = 64, 4 heads, 2 task tokens), the images are `dbps bench`'s synthetic ones.

    python benchmarks/buffer_update.py --config quickstart --sizes 300,600,1200 --batch 4 --repeats 9
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from dbps.bench import bench_tasks, synthetic_images
from dbps.config import load_config
from dbps.data import ImageBatch
from dbps.engine.build import build_model, patch_spec
from dbps.models import PatchClassifier
from dbps.patches import PatchSource, batch_source
from dbps.selection import PatchSelector

UPDATES = ("joint", "two_stage")


def cpu_ms(selector: PatchSelector, model: PatchClassifier, source: PatchSource) -> float:
    """Process CPU time of one selection pass, in ms."""
    start = time.process_time()
    selector.select(model, source, training=False)
    return (time.process_time() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="quickstart", help="YAML file or preset (model, M, I, S)")
    parser.add_argument("--sizes", default="300,600,1200", help="image sides in pixels, comma-separated")
    parser.add_argument("--batch", type=int, default=4, help="images per selection pass")
    parser.add_argument("--repeats", type=int, default=9, help="timed passes per update and size")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    configs = {u: load_config(args.config, ["train.device=cpu", f"selection.buffer_update={u}"])[0] for u in UPDATES}
    config = configs["joint"]
    model = build_model(config, bench_tasks(config), channels=1).eval()
    selectors = {u: PatchSelector.from_config(c) for u, c in configs.items()}
    s = config.selection
    print(f"M = {s.num_salient}, I = {s.chunk_size}, S = {s.num_context}, B = {args.batch}: CPU ms per pass, 1 thread")
    print("| image | N | chunks | joint ms | two_stage ms | two_stage / joint |")
    print("|---|---|---|---|---|---|")
    for size in (int(v) for v in args.sizes.split(",")):
        images = synthetic_images(args.batch, 1, size, torch.device("cpu"))
        source = batch_source(ImageBatch(images, {}, patch_spec(config)), torch.float32)
        times: dict[str, list[float]] = {u: [] for u in UPDATES}
        for repeat in range(args.repeats + 1):  # the first pass of each is a warm-up
            for update in UPDATES:
                elapsed = cpu_ms(selectors[update], model, source)
                if repeat:
                    times[update].append(elapsed)
        joint, two_stage = (statistics.median(times[u]) for u in UPDATES)
        chunks = math.ceil(source.num_patches / s.chunk_size)
        ratio = two_stage / joint
        print(f"| {size}² | {source.num_patches} | {chunks} | {joint:.1f} | {two_stage:.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
