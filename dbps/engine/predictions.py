"""Predictions with their evidence: per-instance outputs and attention maps (salient and context outlined).

Images get a two-panel PNG; slides get the scores over their thumbnail, a CSV of every patch's score at level-0
coordinates and a GeoJSON of the salient patches for QuPath; feature bags with coordinates get the CSV and GeoJSON.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from dbps.data import Batch, ImageOverlay, Level0Overlay, instance_names
from dbps.engine.build import Run
from dbps.engine.step import autocast, predict
from dbps.files import atomic_write
from dbps.patches import PatchSource, batch_overlay, batch_source, opened
from dbps.selection import PatchSelector, Selection
from dbps.tasks import Activation
from dbps.viz import save_heatmap
from dbps.wsi.heatmap import score_overlay, write_geojson, write_scores_csv

THUMBNAIL_SIDE = 2048


@torch.no_grad()
def predict_rows(run: Run, dataset: Dataset, out: Path, *, prefix: str) -> list[dict[str, Any]]:
    """Predict every instance of `dataset` and draw its attention into `out`; one row per instance.

    The prediction uses the run's own selector. The maps show one joint scoring of every patch (what DBformer+
    computes): the chunked selectors' scores are relative to each chunk's candidates.
    """
    joint = PatchSelector("dbps+", run.selector.eval_num_salient, run.selector.chunk_size)
    names = instance_names(dataset)
    rows: list[dict[str, Any]] = []
    out.mkdir(parents=True, exist_ok=True)
    for batch in run.batches(run.loader_for(dataset)):
        for group in batch.groups(run.micro_batch_size):
            with opened(batch_source(group, run.patch_dtype)) as source:
                outputs, selection = predict(run.model, run.selector, source, amp_dtype=run.amp_dtype)
                run.model.eval()
                with autocast(run.device, run.amp_dtype):
                    scores = joint.select(run.model, source, training=False).scores.float().cpu().numpy()
                for b in range(len(group)):
                    row = {"index": len(rows), "name": names[len(rows)]} | _outcome(run, outputs, group.targets, b)
                    title = ", ".join(f"{t.name}: {row[f'{t.name}_predicted']} (true {row[f'{t.name}_target']})"
                                      for t in run.model.tasks)
                    row |= _draw(group, source, selection, scores, b, out, f"{prefix}-{len(rows):04d}", title,
                                 str(row["name"]))
                    rows.append(row)
    return rows


def _outcome(run: Run, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], b: int) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for task in run.model.tasks:
        logits = outputs[task.name][b]
        sigmoid = task.activation is Activation.SIGMOID
        row[f"{task.name}_predicted"] = (logits > 0).int().tolist() if sigmoid else int(logits.argmax())
        row[f"{task.name}_target"] = targets[task.name][b].tolist()
    return row


def grid_step(coords_xy: np.ndarray, default: int = 256) -> int:
    """The patch grid's step in level-0 pixels: the smallest gap between distinct x coordinates."""
    gaps = np.diff(np.unique(coords_xy[:, 0]))
    return int(gaps.min()) if len(gaps) else default


def _draw(group: Batch, source: PatchSource, selection: Selection, scores: np.ndarray, b: int, out: Path, stem: str,
          title: str, name: str) -> dict[str, Any]:
    """Write the instance's attention map(s); returns the file columns of its row."""
    salient, context = selection.salient_idx[b].cpu().numpy(), selection.context_idx[b].cpu().numpy()
    overlay = batch_overlay(group, b, source)
    if isinstance(overlay, ImageOverlay):
        save_heatmap(overlay.pixels, scores[b], overlay.coords, overlay.patch_size, salient, context, title,
                     out / f"{stem}.png")
        return {"heatmap": f"{stem}.png"}
    if not isinstance(overlay, Level0Overlay):
        return {}
    coords_xy, slide = overlay.coords_xy, overlay.slide
    size = overlay.patch_size or grid_step(coords_xy)
    offset = slide.offset if slide is not None else (0, 0)  # feature bags: their coordinates as they are
    write_scores_csv(out / f"{name}-scores.csv", coords_xy, scores[b], salient, context, offset)
    write_geojson(out / f"{name}-salient.geojson", coords_xy, size, scores[b], salient, "salient", offset)
    files = {"scores": f"{name}-scores.csv", "geojson": f"{name}-salient.geojson"}
    if slide is not None:
        thumbnail = slide.thumbnail(THUMBNAIL_SIDE)
        picture = score_overlay(thumbnail, slide.dimensions, coords_xy, size, scores[b], salient, context)
        atomic_write(out / f"{name}-heatmap.png", picture.save)
        files["heatmap"] = f"{name}-heatmap.png"
    return files
