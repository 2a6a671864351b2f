"""The training loop: epochs of micro-batched steps, validation that picks the best checkpoint, one test."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from dbps.config import Config, save_config
from dbps.engine.build import Run
from dbps.engine.checkpoint import load_checkpoint, plain_state_dict, save_checkpoint, write_json
from dbps.engine.evaluate import evaluate, write_reports
from dbps.engine.loggers import MetricLoggers
from dbps.engine.memory import peak_memory_bytes, reset_peak_memory
from dbps.engine.schedule import warmup_cosine_lr
from dbps.engine.step import forward_backward

log = logging.getLogger(__name__)
MB = 1024**2


@dataclass
class TrainState:
    """Where training stands after an epoch: what a checkpoint needs besides weights and optimiser."""

    epoch: int = 0
    step: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    train_seconds: float = 0.0
    train_images: int = 0
    peak_memory: int = 0


def train_one_epoch(
    run: Run,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    first_step: int,
    total_steps: int,
    generator: torch.Generator,
    desc: str,
    explore: bool = False,
) -> tuple[dict[str, float], int]:
    """One pass over the training data; the LR follows the per-step schedule. Returns stats and the next step.

    Each batch is augmented on the device, then split into groups (micro-batches, and images of one size or
    bags of one length); every group runs its own selection and gradient pass, and the gradients of all
    groups accumulate into one optimiser step, so the step is over the whole batch.
    """
    train, config = run.config.train, run.config
    warmup = round(train.warmup_epochs * total_steps / train.epochs)
    step, images_seen, lr = first_step, 0, train.lr
    loss_sum = torch.zeros((), device=run.device)
    run.model.train()
    bar = tqdm(run.batches(loader), desc=desc, leave=False, disable=not config.log.progress)
    for batch in bar:
        lr = warmup_cosine_lr(step, base_lr=train.lr, total_steps=total_steps, warmup_steps=warmup,
                              min_ratio=train.min_lr_ratio)  # fmt: skip
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        batch = batch.augment(generator)
        size = len(batch)
        for part in batch.groups(run.micro_batch_size):
            out = forward_backward(
                run.model, run.selector, part.source(run.patch_dtype), part.targets, loss_scale=len(part) / size,
                generator=generator, amp_dtype=run.amp_dtype, explore=explore,
            )  # fmt: skip
            loss_sum += out.loss * len(part)
        optimizer.step()
        step += 1
        images_seen += size
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / images_seen:.3f}", lr=f"{lr:.2e}")
    return {"train_loss": loss_sum.item() / max(1, images_seen), "lr": lr, "train_images": images_seen}, step


def fit(config: Config, run_dir: Path) -> dict[str, Any]:
    """Train, keep the best checkpoint by validation score, test it once; returns the summary.

    Everything is built and checked before the run folder is touched. The folder then receives config.yaml,
    metrics.csv, last.pt and best.pt (written atomically after each epoch, so an interruption never loses a
    finished epoch), the test reports (confusion matrices) and summary.json.
    """
    config = replace(config, data=replace(config.data, root=str(Path(config.data.root).resolve())))
    run = Run.from_config(config, progress=config.log.progress)
    for note in run.notes:
        log.info("note: %s", note)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")
    train = config.train
    train_loader = run.loader("train", train=True)
    val_loader = run.loader("val")
    optimizer = torch.optim.AdamW(run.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    total_steps = train.epochs * len(train_loader)
    generator = torch.Generator(run.device).manual_seed(train.seed)
    loggers = MetricLoggers(
        run_dir, config.to_dict(), project=config.log.project, run_name=config.log.run_name or run_dir.name,
        tensorboard=config.log.tensorboard, wandb=config.log.wandb, swanlab=config.log.swanlab,
    )  # fmt: skip
    state = TrainState()
    try:
        for epoch in range(train.epochs):
            reset_peak_memory(run.device)
            start = time.perf_counter()
            stats, state.step = train_one_epoch(
                run, train_loader, optimizer, first_step=state.step, total_steps=total_steps, generator=generator,
                desc=f"epoch {epoch + 1}/{train.epochs}", explore=epoch < config.selection.explore_epochs,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            state.epoch = epoch + 1
            state.train_seconds += seconds
            state.train_images += stats["train_images"]
            val = evaluate(run, val_loader, desc="validate")
            epoch_peak = peak_memory_bytes(run.device)
            state.peak_memory = max(state.peak_memory, epoch_peak)
            row = {"epoch": epoch + 1, "train_loss": stats["train_loss"], "lr": stats["lr"]} | val.row("val")
            row |= {"seconds": round(seconds, 3), "images_per_s": stats["train_images"] / seconds,
                    "peak_memory_mb": round(epoch_peak / MB, 1)}  # fmt: skip
            loggers.log(row)
            improved = val.score > state.best_score or state.best_epoch < 0
            if improved:
                state.best_score, state.best_epoch = val.score, epoch + 1
            payload = {"model": plain_state_dict(run.model), "optimizer": optimizer.state_dict(),
                       "epoch": state.epoch, "step": state.step, "config": config.to_dict(), "metrics": row,
                       "state": asdict(state)}  # fmt: skip
            if improved:
                save_checkpoint(run_dir / "best.pt", **payload)
            save_checkpoint(run_dir / "last.pt", **payload)
            log.info("epoch %d: train loss %.4f, val score %.4f", epoch + 1, stats["train_loss"], val.score)
    finally:
        loggers.close()
    run.model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model"])
    test = evaluate(run, run.loader("test"), desc="test")
    write_reports(test, run.model.tasks, run_dir, "test")
    summary = {
        "test": test.metrics,
        "test_loss": test.loss,
        "test_score": test.score,
        "best_epoch": state.best_epoch,
        "best_val_score": state.best_score,
        "train_seconds": round(state.train_seconds, 2),
        "train_images_per_second": state.train_images / state.train_seconds if state.train_seconds else None,
        "peak_memory_mb": round(state.peak_memory / MB, 1),
        "device": str(run.device),
        "run_dir": str(run_dir.resolve()),
    }
    write_json(run_dir / "summary.json", summary)
    return summary
