"""The training loop: epochs of micro-batched steps, validation that picks the best checkpoint, one test."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from dbps.config import Config, save_config
from dbps.data import DataSplits, build_loader
from dbps.data.prefetch import DevicePrefetcher
from dbps.engine.build import (
    amp_dtype,
    build_model,
    make_source,
    place_model,
    prepare_data,
    resolve_device,
    resolve_tasks,
    seed_everything,
)
from dbps.engine.checkpoint import load_checkpoint, plain_state_dict, save_checkpoint, write_json
from dbps.engine.loggers import MetricLoggers
from dbps.engine.memory import keep_freed_host_memory, peak_memory_bytes, reset_peak_memory
from dbps.engine.schedule import warmup_cosine_lr
from dbps.engine.step import forward_backward, predict
from dbps.metrics import task_metrics
from dbps.models import PatchClassifier
from dbps.selection import PatchSelector
from dbps.tasks import multitask_loss

log = logging.getLogger(__name__)
MB = 1024**2


@dataclass
class Session:
    """Everything a run builds from its config, shared by training, evaluation and benchmarking."""

    config: Config
    device: torch.device
    splits: DataSplits
    model: PatchClassifier
    selector: PatchSelector
    amp_dtype: torch.dtype | None

    @classmethod
    def create(cls, config: Config, *, progress: bool = True) -> Session:
        seed_everything(config.train.seed)
        device = resolve_device(config.train.device)
        keep_freed_host_memory()
        splits = prepare_data(config, progress=progress)
        tasks = resolve_tasks(config, splits.tasks)
        model = place_model(build_model(config, tasks, splits.image_shape[0]), config, device)
        return cls(config, device, splits, model, config.selector(), amp_dtype(config, device))

    def loader(self, split: str, *, shuffle: bool = False) -> DataLoader:
        return self.loader_for(getattr(self.splits, split), shuffle=shuffle)

    def loader_for(self, dataset: Dataset, *, shuffle: bool = False) -> DataLoader:
        data, train = self.config.data, self.config.train
        return build_loader(
            dataset,
            train.batch_size,
            shuffle=shuffle,
            num_workers=data.num_workers,
            pin_memory=data.pin_memory and self.device.type == "cuda",
            seed=train.seed,
        )

    def batches(self, loader: DataLoader) -> DevicePrefetcher:
        """The loader's batches on the device, the next one prefetched on CUDA."""
        return DevicePrefetcher(loader, self.device)


def evaluate(session: Session, loader: DataLoader, *, desc: str = "eval", progress: bool = True) -> dict[str, Any]:
    """Loss and per-task metrics over a loader, with every patch and hard top-M selection.

    Returns:
        {'loss': float, 'tasks': {task: {metric: value}}, 'score': mean of each task's own metric, 'images': n}.
    """
    model, tasks = session.model, session.model.tasks
    logits: dict[str, list[torch.Tensor]] = {task.name: [] for task in tasks}
    targets: dict[str, list[torch.Tensor]] = {task.name: [] for task in tasks}
    for images, batch_targets in tqdm(session.batches(loader), desc=desc, leave=False, disable=not progress):
        source = make_source(images, session.config, session.splits, session.amp_dtype)
        outputs, _ = predict(model, session.selector, source, amp_dtype=session.amp_dtype)
        for name in logits:
            logits[name].append(outputs[name].float().cpu())
            targets[name].append(batch_targets[name].cpu())
    joined = {name: torch.cat(values) for name, values in logits.items()}
    joined_targets = {name: torch.cat(values) for name, values in targets.items()}
    metrics = {
        task.name: task_metrics(task, joined[task.name].numpy(), joined_targets[task.name].numpy()) for task in tasks
    }
    main = [metrics[task.name][task.metric] for task in tasks]
    return {
        "loss": float(multitask_loss(joined, joined_targets, tasks)),
        "tasks": metrics,
        "score": float(np.nanmean(main)) if not all(math.isnan(v) for v in main) else float("nan"),
        "images": len(next(iter(joined.values()))),
    }


def _flatten(prefix: str, result: dict[str, Any]) -> dict[str, float]:
    row = {f"{prefix}_loss": result["loss"], f"{prefix}_score": result["score"]}
    for task, values in result["tasks"].items():
        row |= {f"{prefix}_{task}_{metric}": value for metric, value in values.items()}
    return row


def train_one_epoch(
    session: Session,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    *,
    first_step: int,
    total_steps: int,
    generator: torch.Generator,
    desc: str,
    explore: bool = False,
) -> tuple[dict[str, float], int]:
    """One pass over the training data; the LR follows the per-step schedule. Returns stats and the next step."""
    train, config = session.config.train, session.config
    warmup = round(train.warmup_epochs * total_steps / train.epochs)
    micro = train.micro_batch_size or train.batch_size
    step, images_seen = first_step, 0
    loss_sum = torch.zeros((), device=session.device)
    session.model.train()
    bar = tqdm(session.batches(loader), desc=desc, leave=False, disable=not config.log.progress)
    for images, targets in bar:
        lr = warmup_cosine_lr(step, base_lr=train.lr, total_steps=total_steps, warmup_steps=warmup,
                              min_ratio=train.min_lr_ratio)  # fmt: skip
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        batch = images.shape[0]
        for start in range(0, batch, micro):
            part = slice(start, start + micro)
            source = make_source(images[part], config, session.splits, session.amp_dtype)
            out = forward_backward(
                session.model,
                session.selector,
                source,
                {name: t[part] for name, t in targets.items()},
                loss_scale=source.batch_size / batch,
                generator=generator,
                amp_dtype=session.amp_dtype,
                explore=explore,
            )
            loss_sum += out.loss * source.batch_size
        optimizer.step()
        step += 1
        images_seen += batch
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss_sum.item() / images_seen:.3f}", lr=f"{lr:.2e}")
    return {"train_loss": loss_sum.item() / max(1, images_seen), "lr": lr, "train_images": images_seen}, step


def fit(config: Config, run_dir: Path) -> dict[str, Any]:
    """Train, keep the best checkpoint by validation score, test it once; returns the summary.

    The run folder receives config.yaml, metrics.csv, last.pt and best.pt (written atomically after each
    epoch, so an interruption never loses a finished epoch) and summary.json.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    config = replace(config, data=replace(config.data, root=str(Path(config.data.root).resolve())))
    save_config(config, run_dir / "config.yaml")
    session = Session.create(config, progress=config.log.progress)
    train = config.train
    train_loader = session.loader("train", shuffle=True)
    val_loader = session.loader("val")
    optimizer = torch.optim.AdamW(session.model.parameters(), lr=train.lr, weight_decay=train.weight_decay)
    total_steps = train.epochs * len(train_loader)
    generator = torch.Generator(session.device).manual_seed(train.seed)
    loggers = MetricLoggers(
        run_dir, config.to_dict(), project=config.log.project, run_name=config.log.run_name or run_dir.name,
        tensorboard=config.log.tensorboard, wandb=config.log.wandb, swanlab=config.log.swanlab,
    )  # fmt: skip
    best_score, best_epoch, step, train_seconds, train_images, peak = -math.inf, -1, 0, 0.0, 0, 0
    try:
        for epoch in range(train.epochs):
            reset_peak_memory(session.device)
            start = time.perf_counter()
            stats, step = train_one_epoch(
                session, train_loader, optimizer, first_step=step, total_steps=total_steps, generator=generator,
                desc=f"epoch {epoch + 1}/{train.epochs}", explore=epoch < config.selection.explore_epochs,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            train_seconds += seconds
            train_images += stats["train_images"]
            val = evaluate(session, val_loader, desc="validate", progress=config.log.progress)
            epoch_peak = peak_memory_bytes(session.device)
            peak = max(peak, epoch_peak)
            row = {"epoch": epoch + 1, "train_loss": stats["train_loss"], "lr": stats["lr"]} | _flatten("val", val)
            row |= {"seconds": round(seconds, 3), "images_per_s": stats["train_images"] / seconds,
                    "peak_memory_mb": round(epoch_peak / MB, 1)}  # fmt: skip
            loggers.log(row)
            payload = {"model": plain_state_dict(session.model), "optimizer": optimizer.state_dict(),
                       "epoch": epoch + 1, "step": step, "config": config.to_dict(), "metrics": row}  # fmt: skip
            if val["score"] > best_score or best_epoch < 0:
                best_score, best_epoch = val["score"], epoch + 1
                save_checkpoint(run_dir / "best.pt", **payload)
            save_checkpoint(run_dir / "last.pt", **payload)
            log.info("epoch %d: train loss %.4f, val score %.4f", epoch + 1, stats["train_loss"], val["score"])
    finally:
        loggers.close()
    session.model.load_state_dict(load_checkpoint(run_dir / "best.pt")["model"])
    test = evaluate(session, session.loader("test"), desc="test", progress=config.log.progress)
    summary = {
        "test": test["tasks"],
        "test_loss": test["loss"],
        "test_score": test["score"],
        "best_epoch": best_epoch,
        "best_val_score": best_score,
        "train_seconds": round(train_seconds, 2),
        "train_images_per_second": train_images / train_seconds if train_seconds else None,
        "peak_memory_mb": round(peak / MB, 1),
        "device": str(session.device),
        "run_dir": str(run_dir.resolve()),
    }
    write_json(run_dir / "summary.json", summary)
    return summary
