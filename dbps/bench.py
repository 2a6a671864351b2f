"""Speed and memory per training step, per method and image size, with out-of-memory recorded as a result.

Images are synthetic (sparse bright blobs on black, uint8, made on the device) so that any size can be measured
without a dataset; a step is the whole optimiser step: selection, re-embedding, aggregation, loss, backward,
AdamW. Times come from CUDA events on a GPU (warm-up steps excluded) and from a wall clock on a CPU. Memory is
the peak over warm-up and timed steps of what the measurement holds (weights, optimiser state, images,
activations): CUDA peak allocated above what was allocated before, or on a CPU the peak resident set above the
resident set before (freed memory goes back to the OS between measurements, so earlier ones do not mask it).
"""

from __future__ import annotations

import csv
import gc
import multiprocessing
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from dbps.config import Config
from dbps.data import Batch, FeatureBag, FeatureBatch, ImageBatch, dataset_kind
from dbps.engine.build import amp_dtype, build_model, data_request, patch_spec, place_model, resolve_device
from dbps.engine.memory import current_memory_bytes, peak_memory_bytes, reset_peak_memory
from dbps.engine.step import autocast, train_step
from dbps.metrics import task_metric
from dbps.patches import PatchSource, batch_source, grid_shape, num_kept
from dbps.selection import Method, PatchSelector, Sampling
from dbps.tasks import Activation, TaskSpec

METHODS = ("full", "ips", "dbps", "dbps+")
MB = 1024**2
# Dense bf16 tensor-core peaks (TFLOP/s) for the fraction-of-peak column; others can be passed explicitly.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "RTX 4090": 165.0}


@dataclass
class BenchResult:
    """One row of the benchmark CSV."""

    method: str
    size: int
    num_patches: int
    batch: int
    num_salient: int
    chunk_size: int
    num_context: int | None
    status: str  # ok | oom
    ms_per_step: float | None
    warmup_s: float | None  # the untimed warm-up steps, torch.compile's compilation included
    images_per_s: float | None
    peak_memory_mb: float | None
    selection_ms: float | None
    selection_tflops: float | None
    fraction_of_bf16_peak: float | None
    device: str
    dtype: str
    torch: str


def method_selector(method: str, config: Config, num_patches: int) -> PatchSelector:
    """The selector each benchmarked method uses, at the config's M, I and S.

    `full` is the full-gradient baseline (every patch embedded with autograd); `dbps+` uses its paper settings
    (drop 0.3 unless the config sets a ratio, 'half' sampling).
    """
    s, p = config.selection, config.patches
    if method == "full":
        return PatchSelector(Method.IPS, num_salient=num_patches, chunk_size=s.chunk_size)
    # what every selecting method takes from the config as it is
    shared: dict[str, Any] = {"score_scale": s.score_scale, "skip_blank": s.skip_blank, "mask_blank": s.mask_blank}
    if method == "ips":
        return PatchSelector(Method.IPS, s.num_salient, s.chunk_size, **shared)
    if method == "dbps":
        return PatchSelector(Method.DBPS, s.num_salient, s.chunk_size, s.num_context or s.num_salient,
                             buffer_update=s.buffer_update, **shared)
    if method == "dbps+":
        return PatchSelector(Method.DBPS_PLUS, s.num_salient, s.chunk_size, drop_ratio=p.drop_ratio or 0.3,
                             sampling=Sampling.HALF, **shared)
    raise ValueError(f"unknown benchmark method {method!r}; known: {', '.join(METHODS)}")


def bench_tasks(config: Config) -> list[TaskSpec]:
    """The config's tasks (classes from the task, `model.num_classes` or 2), else the dataset's known tasks."""
    if config.tasks:
        tasks = [
            TaskSpec(t.name, t.num_classes or config.model.num_classes or 2, t.activation or Activation.SOFTMAX,
                     t.metric or "accuracy")
            for t in config.tasks
        ]
        for task in tasks:
            task_metric(task)  # an unknown metric is named before anything runs
        return tasks
    known = dataset_kind(config.data.name).tasks
    if known:
        return list(known)
    return [TaskSpec("label", config.model.num_classes or 2)]


def feature_width(config: Config) -> int | None:
    """Width of the synthetic feature vectors for feature-bag configs (`model.in_chans`, e.g. n_chan_in: 1024)."""
    return (config.model.in_chans or 1024) if config.model.encoder.lower() == "projector" else None


def synthetic_images(batch: int, channels: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    """uint8 images, black with ~1 % bright pixels in small blobs, made on the device."""
    gen = torch.Generator(device).manual_seed(seed)
    coarse = torch.rand(batch, channels, size // 4 + 1, size // 4 + 1, generator=gen, device=device) < 0.01
    blobs = coarse.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)[..., :size, :size]
    return blobs.to(torch.uint8) * 255


class _Timer:
    """CUDA events on a GPU, perf_counter on a CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> _Timer:
        if self.device.type == "cuda":
            self._start, self._end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            self._end.record()
            self._end.synchronize()
            self.ms = self._start.elapsed_time(self._end)
        else:
            self.ms = (time.perf_counter() - self._t0) * 1e3


def encoder_flops_per_patch(model: torch.nn.Module, patch_shape: tuple[int, ...], device: torch.device) -> float:
    """Forward FLOPs of the encoder for one patch (counted on a small batch)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.embed(torch.zeros(2, *patch_shape, device=device))
    return counter.get_total_flops() / 2


def bench_one(
    config: Config, method: str, size: int, *, batch: int, steps: int, warmup: int, device: torch.device,
    peak_tflops: float | None,
) -> BenchResult:
    """Measure one method at one image size (for feature-bag configs, `size` is the bag length)."""
    tasks = bench_tasks(config)
    channels = data_request(config).channels or 3
    if feature_width(config) is not None:
        num_patches = size
    else:
        rows, cols = grid_shape(size, size, config.patches.size, config.patches.stride)
        num_patches = rows * cols
    selector = method_selector(method, config, num_patches)
    amp = amp_dtype(config, device)
    result = BenchResult(
        method, size, num_patches, batch, selector.num_salient, selector.chunk_size, selector.num_context, "ok",
        None, None, None, None, None, None, None, str(device), str(amp or torch.float32).replace("torch.", ""),
        torch.__version__,
    )
    try:
        _measure(result, config, selector, tasks, channels, device, amp, steps, warmup, peak_tflops)
    except torch.OutOfMemoryError:
        result.status = "oom"
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return result


def _measure(
    result: BenchResult, config: Config, selector: PatchSelector, tasks: list, channels: int, device: torch.device,
    amp: torch.dtype | None, steps: int, warmup: int, peak_tflops: float | None,
) -> None:
    gc.collect()
    reset_peak_memory(device)
    baseline = current_memory_bytes(device)
    torch.manual_seed(config.train.seed)
    width = feature_width(config)
    model = place_model(build_model(config, tasks, channels, width), config, device)
    spec = patch_spec(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, weight_decay=config.train.weight_decay)
    if width is None:
        images = synthetic_images(result.batch, channels, result.size, device, config.train.seed)
        batch: Batch = ImageBatch(images, {}, spec)
        patch_shape = (channels, *(int(side * selector.score_scale) for side in spec.size))  # lrs: smaller patches
    else:
        features = torch.randn(result.batch, result.size, width, generator=torch.Generator(device).manual_seed(0),
                               device=device)
        batch = FeatureBatch([FeatureBag(bag) for bag in features], {})
        patch_shape = (width,)
    targets = {
        t.name: torch.zeros(result.batch, *((t.num_classes,) if t.activation == "sigmoid" else ()), dtype=torch.long,
                            device=device)
        for t in tasks
    }
    generator = torch.Generator(device).manual_seed(config.train.seed)

    def source() -> PatchSource:
        return batch_source(batch, amp or torch.float32)

    with _Timer(device) as warmup_timer:
        for _ in range(warmup):
            train_step(model, selector, source(), targets, optimizer, generator=generator, amp_dtype=amp)
    result.warmup_s = warmup_timer.ms / 1e3
    with _Timer(device) as timer:
        for _ in range(steps):
            train_step(model, selector, source(), targets, optimizer, generator=generator, amp_dtype=amp)
    result.ms_per_step = timer.ms / steps
    result.images_per_s = result.batch * 1e3 / result.ms_per_step
    result.peak_memory_mb = (peak_memory_bytes(device) - baseline) / MB
    if result.method == "full":
        return
    with _Timer(device) as sel_timer, autocast(device, amp):
        for _ in range(steps):
            selector.select(model, source(), training=True, generator=generator)
    result.selection_ms = sel_timer.ms / steps
    embedded = num_kept(result.num_patches, selector.drop_ratio)
    flops = encoder_flops_per_patch(model, patch_shape, device) * result.batch * embedded
    result.selection_tflops = flops / (result.selection_ms * 1e-3) / 1e12
    if peak_tflops:
        result.fraction_of_bf16_peak = result.selection_tflops / peak_tflops


def default_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def run_benchmark(
    config: Config,
    *,
    methods: list[str],
    sizes: list[int],
    batch: int,
    steps: int,
    warmup: int = 2,
    peak_tflops: float | None = None,
    progress: bool = True,
    isolate: bool = True,
) -> list[BenchResult]:
    """Every method at every size, baselines included, in one session.

    On a CPU each measurement runs in a freshly spawned process when `isolate` is set: the C allocator keeps
    freed memory mapped, so in one process an earlier measurement's peak would hide a later one's.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown benchmark method(s) {unknown}; known: {', '.join(METHODS)}")
    device = resolve_device(config.train.device)
    peak = peak_tflops or default_peak_tflops(device)
    results = []
    for size in sizes:
        for method in methods:
            kwargs = {"batch": batch, "steps": steps, "warmup": warmup, "device": device, "peak_tflops": peak}
            if isolate and device.type == "cpu":
                with _fresh_processes().Pool(1) as pool:
                    result = pool.apply(bench_one, (config, method, size), kwargs)
            else:
                result = bench_one(config, method, size, **kwargs)
            if progress:
                print(_describe(result), flush=True)
            results.append(result)
    return results


def _fresh_processes() -> multiprocessing.context.BaseContext:
    """Processes forked from a server that has imported this module and computed nothing.

    Each measurement starts with a fresh allocator, as a spawned process would, without paying seconds to import
    torch again (nor torch._dynamo, which building an optimizer imports); forking before any computation is safe
    because no OpenMP thread pool exists yet.
    """
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "torch._dynamo"])
    return context


def _describe(r: BenchResult) -> str:
    if r.status != "ok":
        return f"{r.method:>6} {r.size:>6}px N={r.num_patches:<6} {r.status}"
    return (f"{r.method:>6} {r.size:>6}px N={r.num_patches:<6} {r.ms_per_step:9.1f} ms/step "
            f"{r.images_per_s:8.1f} img/s  peak {r.peak_memory_mb:8.1f} MB")


def cpu_model() -> str:
    """The CPU model as /proc/cpuinfo names it on Linux (the platform's processor string elsewhere)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or "cpu"


def cpu_name() -> str:
    """The CPU's model name and logical core count."""
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def write_csv(results: list[BenchResult], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*asdict(results[0]), "machine"])
        writer.writeheader()
        machine = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_name()
        for result in results:
            writer.writerow(asdict(result) | {"machine": machine})


def plot(results: list[BenchResult], path: Path) -> None:
    """Two panels: peak memory and time per step against image size, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method in dict.fromkeys(r.method for r in results):
        rows = [r for r in results if r.method == method and r.status == "ok"]
        sizes = [r.size for r in rows]
        axes[0].plot(sizes, [r.peak_memory_mb for r in rows], marker="o", label=method)
        axes[1].plot(sizes, [r.ms_per_step for r in rows], marker="o", label=method)
        ooms = [r.size for r in results if r.method == method and r.status == "oom"]
        for ax in axes:
            ax.scatter(ooms, [0] * len(ooms), marker="x", color="red")
    for ax, label in zip(axes, ("peak memory (MB)", "time per step (ms)"), strict=True):
        ax.set_xlabel("image side (pixels)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("dbps bench (x: out of memory)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
