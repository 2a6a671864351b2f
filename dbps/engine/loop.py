"""The training loop: epochs of micro-batched steps, validation that picks the best checkpoint, one test.

A run can stop at any point and continue exactly (`Trainer.resume`): checkpoints hold the weights, the optimiser,
the schedule's position, the epoch and the step within it, and every random state; the order of items is a pure
function of (seed, epoch). Over several processes (torchrun), rank 0 alone writes the run folder.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from dbps.config import save_config
from dbps.data import Batch, instance_names
from dbps.engine import distributed
from dbps.engine.build import Run
from dbps.engine.checkpoint import load_checkpoint, save_checkpoint
from dbps.engine.evaluate import evaluate, write_reports
from dbps.engine.faults import StopRequests, TrainingStopped
from dbps.engine.loggers import MetricLoggers
from dbps.engine.memory import peak_memory_bytes, reset_peak_memory
from dbps.engine.schedule import warmup_cosine_lr
from dbps.engine.state import TrainState, random_states, restore_random_states
from dbps.engine.step import forward_backward
from dbps.files import write_json
from dbps.models.weights import load_model_state, plain_state_dict
from dbps.patches import batch_source, grid_shape, opened

log = logging.getLogger(__name__)
MB = 1024**2


class Trainer:
    """Trains a built run into a run folder.

    Args:
        run: the built run (model on its device, data, selector).
        run_dir: the run folder (written by rank 0 only).
    """

    def __init__(self, run: Run, run_dir: Path) -> None:
        self.run, self.run_dir, self.config, self.dist = run, run_dir, run.config, run.dist
        t = self.config.train
        if (t.batch_size // self.dist.world) % run.micro_batch_size:
            raise ValueError(f"train.micro_batch_size ({run.micro_batch_size}) must divide the per-process batch "
                             f"({t.batch_size // self.dist.world})")
        size, p = run.data.image_size, self.config.patches
        num_patches = math.prod(grid_shape(*size, p.size, p.stride)) if size is not None else None
        unused = run.model.aggregator.context_only_parameters and run.selector.context_may_be_empty(num_patches)
        self.model: nn.Module = distributed.wrap(run.model, self.dist, run.device, sync_bn=t.sync_bn,
                                                 find_unused=unused)
        self.optimizer = torch.optim.AdamW(run.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.sampler = run.train_sampler()
        self.train_loader = run.loader_for(run.data.train, sampler=self.sampler)
        self.val_loader = run.loader("val")
        self.test_loader = run.loader("test")
        self.total_steps = t.epochs * self.sampler.num_batches
        self.warmup_steps = round(t.warmup_epochs * self.sampler.num_batches)
        self.generator = torch.Generator(run.device).manual_seed(t.seed + self.dist.rank)
        self.state = TrainState()
        self.stops = StopRequests()
        self.loggers: MetricLoggers | None = None

    def resume(self, checkpoint: dict[str, Any], origin: Path) -> None:
        """Continue from a checkpoint: weights, optimiser, progress and random states."""
        load_model_state(self.run.model, checkpoint["model"], origin)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.state = TrainState.from_dict(checkpoint["state"])
        states = checkpoint.get("random") or []
        if len(states) == self.dist.world:
            restore_random_states(states[self.dist.rank], self.generator)
        else:
            log.warning("note: %s was written by %d process(es), this run has %d: random states start afresh",
                        origin, len(states), self.dist.world)

    def fit(self) -> dict[str, Any]:
        """Train the remaining epochs, test best.pt once; returns the summary (written to summary.json)."""
        t = self.config.train
        if self.dist.is_main:
            self.loggers = MetricLoggers(
                self.run_dir, self.config.to_dict(), project=self.config.log.project,
                run_name=self.config.log.run_name or self.run_dir.name, tensorboard=self.config.log.tensorboard,
                wandb=self.config.log.wandb, swanlab=self.config.log.swanlab,
                resume_after=self.state.epoch if self.state.step else None,
            )
        try:
            with self.stops.installed():
                while self.state.epoch < t.epochs:
                    stats = self._train_epoch()
                    self._end_epoch(stats)
        finally:
            if self.loggers is not None:
                self.loggers.close()
        return self._test()

    def _lr_at(self, step: int) -> float:
        t = self.config.train
        return warmup_cosine_lr(step, base_lr=t.lr, total_steps=self.total_steps, warmup_steps=self.warmup_steps,
                                min_ratio=t.min_lr_ratio)

    def _train_epoch(self) -> dict[str, float]:
        run, state, t = self.run, self.state, self.config.train
        epoch = state.epoch
        self.sampler.set_epoch(epoch, state.batch_in_epoch)
        if state.batch_in_epoch == 0:
            reset_peak_memory(run.device)
        run.model.train()
        explore = epoch < self.config.selection.explore_epochs
        clock = time.perf_counter()
        bar = tqdm(run.batches(self.train_loader), desc=f"epoch {epoch + 1}/{t.epochs}", leave=False,
                   initial=state.batch_in_epoch, total=self.sampler.num_batches,
                   disable=not (self.config.log.progress and self.dist.is_main))
        lr = self._lr_at(max(state.step - 1, 0))  # resumed after the epoch's last step: that step's rate
        for batch in bar:
            lr = self._lr_at(state.step)
            loss_sum, images = self._step(batch, lr, explore)
            votes, loss_sum, images = self.dist.sum([float(self.stops.requested), loss_sum, images])
            state.epoch_loss_sum += loss_sum
            state.epoch_images += int(images)
            if state.step % 10 == 0 and state.epoch_images:
                bar.set_postfix(loss=f"{state.epoch_loss_sum / state.epoch_images:.3f}", lr=f"{lr:.2e}")
            stop = votes > 0
            if stop or (t.checkpoint_every and state.step % t.checkpoint_every == 0):
                state.epoch_seconds += time.perf_counter() - clock
                clock = time.perf_counter()
                self._save({"last.pt"}, metrics={})
            if stop:
                raise TrainingStopped(f"interrupted at step {state.step} (epoch {epoch + 1}); last.pt is written: "
                                      f"resume with `dbps train --resume {self.run_dir}`", self.stops.exit_code)
        state.epoch_seconds += time.perf_counter() - clock
        return {"train_loss": state.epoch_loss_sum / max(1, state.epoch_images), "lr": lr}

    def _step(self, batch: Batch, lr: float, explore: bool) -> tuple[float, int]:
        """One optimiser step over a batch, skipped (and counted) when its loss or gradient is not finite.

        Returns:
            This process's summed loss and its number of images (0 and 0 for a skipped step).
        """
        run, state, t = self.run, self.state, self.config.train
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        batch = batch.augment(self.generator)
        parts = list(batch.groups(run.micro_batch_size))
        loss_sum = torch.zeros((), device=run.device)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            no_sync = getattr(self.model, "no_sync", None)
            sync = nullcontext() if last or no_sync is None else no_sync()  # one all-reduce per step
            with sync, opened(batch_source(part, run.patch_dtype)) as source:
                out = forward_backward(
                    self.model, run.selector, source, part.targets,
                    loss_scale=len(part) / len(batch), generator=self.generator, amp_dtype=run.amp_dtype,
                    explore=explore,
                )
            loss_sum += out.loss.float() * len(part)
        params = [p for p in run.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, t.grad_clip or float("inf"))
        finite = bool(torch.isfinite(norm) & torch.isfinite(loss_sum))  # the step's one host synchronisation
        state.step += 1
        state.batch_in_epoch += 1
        if finite:
            self.optimizer.step()
            state.bad_streak = 0
            return float(loss_sum), len(batch)
        self.optimizer.zero_grad(set_to_none=True)
        state.skipped_steps += 1
        state.bad_streak += 1
        log.warning("step %d skipped: non-finite loss or gradient (%d in a row)", state.step, state.bad_streak)
        if state.bad_streak >= t.max_bad_steps:
            self._save({"last.pt"}, metrics={})
            raise TrainingStopped(
                f"{state.bad_streak} steps in a row had a non-finite loss or gradient (step {state.step}); the "
                f"weights before them are in last.pt: lower train.lr or set train.grad_clip, then resume with "
                f"`dbps train --resume {self.run_dir}` and overrides", 1,
            )
        return 0.0, 0

    def _end_epoch(self, stats: dict[str, float]) -> None:
        run, state = self.run, self.state
        seconds, images = state.epoch_seconds, state.epoch_images
        # Without a validation split the latest epoch is the best one: its score is the epoch number.
        val = evaluate(run, self.val_loader, desc="validate") if len(run.data.val) else None
        test = evaluate(run, self.test_loader, desc="test") if self.config.log.test_every_epoch else None
        epoch_peak = peak_memory_bytes(run.device)
        state.peak_memory = max(state.peak_memory, epoch_peak)
        state.train_seconds += seconds
        state.train_images += images
        state.finish_epoch()
        row = {"epoch": state.epoch, "train_loss": stats["train_loss"], "lr": stats["lr"]}
        row |= (val.row("val") if val else {}) | (test.row("test") if test else {})
        row |= {"seconds": round(seconds, 3), "images_per_s": images / max(seconds, 1e-9),
                "peak_memory_mb": round(epoch_peak / MB, 1), "skipped_steps": state.skipped_steps}
        score = val.score if val else float(state.epoch)
        improved = score > state.best_score or state.best_epoch < 0
        if improved:
            state.best_score, state.best_epoch = score, state.epoch
        if self.loggers is not None:
            self.loggers.log(row)
        self._save({"best.pt", "last.pt"} if improved else {"last.pt"}, metrics=row)
        log.info("epoch %d: train loss %.4f%s", state.epoch, stats["train_loss"],
                 f", val score {score:.4f}" if val else "")

    def _save(self, names: set[str], metrics: dict[str, Any]) -> None:
        """Checkpoints written atomically by rank 0 (best.pt before last.pt, so a crash between them is safe)."""
        randoms = self.dist.gather(random_states(self.generator))
        if self.dist.is_main:
            payload = {
                "model": plain_state_dict(self.run.model), "optimizer": self.optimizer.state_dict(),
                "epoch": self.state.epoch, "step": self.state.step, "config": self.config.to_dict(),
                "metrics": metrics, "state": asdict(self.state), "random": randoms,
            }
            for name in sorted(names):  # 'best.pt' < 'last.pt'
                save_checkpoint(self.run_dir / name, **payload)
        self.dist.barrier()

    def _test(self) -> dict[str, Any]:
        state, run = self.state, self.run
        run.model.load_state_dict(load_checkpoint(self.run_dir / "best.pt")["model"])
        test = evaluate(run, self.test_loader, desc="test")
        summary = {
            "test": test.metrics, "test_loss": test.loss, "test_score": test.score,
            "best_epoch": state.best_epoch, "best_val_score": state.best_score if len(run.data.val) else None,
            "train_seconds": round(state.train_seconds, 2),
            "train_images_per_second": state.train_images / state.train_seconds if state.train_seconds else None,
            "peak_memory_mb": round(state.peak_memory / MB, 1), "skipped_steps": state.skipped_steps,
            "device": str(run.device), "processes": self.dist.world, "run_dir": str(self.run_dir.resolve()),
        }
        if self.dist.is_main:
            write_reports(test, run.model.tasks, self.run_dir, "test", instance_names(run.data.test))
            summary["pictures"] = self._pictures()
            write_json(self.run_dir / "summary.json", summary)
        return summary

    def _pictures(self) -> list[str]:
        """The learning curve and the attention maps of the first `log.heatmaps` test instances (best.pt).

        Drawn once training and testing are done: a failure here is reported and leaves the run as it is.
        """
        from torch.utils.data import Subset

        from dbps.engine.predictions import predict_rows
        from dbps.viz import save_learning_curve

        run, drawn = self.run, []
        try:
            with (self.run_dir / "metrics.csv").open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            metrics = [f"{task.name}_{task.metric}" for task in run.model.tasks]
            save_learning_curve(rows, metrics, self.run_dir / "learning-curve.png")
            drawn.append("learning-curve.png")
            count = min(run.config.log.heatmaps, len(run.data.test))
            if count:
                test = Subset(run.data.test, range(count))  # type: ignore[arg-type]
                predict_rows(run, test, self.run_dir / "heatmaps", prefix="test")
                drawn.append(f"heatmaps/ ({count} test {'bags' if run.data.feature_dim else 'images'})")
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("pictures not drawn (the run itself is complete): %s", exc)
        return drawn


def fit(run: Run, run_dir: Path, *, resume: bool = False) -> dict[str, Any]:
    """Train a built run into `run_dir` (continuing its last.pt when `resume`); returns the summary.

    Nothing is written before the run is built and checked. The folder then receives config.yaml, metrics.csv,
    last.pt and best.pt (atomically, after every epoch and every `train.checkpoint_every` steps), the test
    reports (confusion matrices) and summary.json.
    """
    trainer = Trainer(run, run_dir)
    if resume:
        trainer.resume(load_checkpoint(run_dir / "last.pt"), run_dir / "last.pt")
    elif run.dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(run.config, run_dir / "config.yaml")
    for note in run.notes if run.dist.is_main else []:
        log.info("note: %s", note)
    return trainer.fit()
