"""Predictions with their evidence: per-instance outputs and attention heatmaps (salient and context outlined)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dbps.engine.build import Run
from dbps.engine.step import autocast, predict
from dbps.selection import PatchSelector
from dbps.tasks import Activation
from dbps.viz import save_heatmap


@torch.no_grad()
def predict_rows(run: Run, loader: DataLoader, out: Path, *, prefix: str) -> list[dict[str, Any]]:
    """Predict every instance of `loader`; image instances also get a heatmap PNG in `out`.

    The prediction uses the run's own selector. The heatmap shows one joint scoring of every patch (what
    DBformer+ computes): the chunked selectors' scores are relative to each chunk's candidates.
    """
    joint = PatchSelector("dbps+", run.selector.eval_num_salient, run.selector.chunk_size)
    rows: list[dict[str, Any]] = []
    for batch in run.batches(loader):
        for group in batch.groups(run.micro_batch_size):
            source = group.source(run.patch_dtype)
            outputs, selection = predict(run.model, run.selector, source, amp_dtype=run.amp_dtype)
            images = getattr(group, "images", None)
            if images is not None:
                run.model.eval()
                with autocast(run.device, run.amp_dtype):
                    scores = joint.select(run.model, source, training=False).scores
                coords = source.coords().cpu().numpy()  # type: ignore[attr-defined]
            for b in range(len(group)):
                row: dict[str, Any] = {"index": len(rows)}
                labels = []
                for task in run.model.tasks:
                    logits = outputs[task.name][b]
                    sigmoid = task.activation is Activation.SIGMOID
                    predicted = (logits > 0).int().tolist() if sigmoid else int(logits.argmax())
                    target = group.targets[task.name][b].tolist()
                    row |= {f"{task.name}_predicted": predicted, f"{task.name}_target": target}
                    labels.append(f"{task.name}: {predicted} (true {target})")
                if images is not None:
                    picture = out / f"{prefix}-{len(rows):04d}.png"
                    image = images[b].float().cpu().numpy()
                    image = image / 255.0 if not images.is_floating_point() else image
                    save_heatmap(
                        image, scores[b].float().cpu().numpy(), coords, source.patch_size,  # type: ignore[attr-defined]
                        selection.salient_idx[b].cpu().numpy(), selection.context_idx[b].cpu().numpy(),
                        ", ".join(labels), picture,
                    )  # fmt: skip
                    row["heatmap"] = picture.name
                rows.append(row)
    return rows
