"""`dbps predict`: predictions and attention heatmaps for images of a split."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="predict and draw attention heatmaps", description=__doc__)
    parser.add_argument("target", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("--split", choices=["test", "val", "train"], default="test")
    parser.add_argument("--count", type=int, default=8, help="images to predict (default 8)")
    parser.add_argument("--out", type=Path, help="output folder (default: RUN_DIR/predictions-<split>)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch
    from torch.utils.data import Subset

    from dbps.cli.evaluate import load_run
    from dbps.engine.build import make_source
    from dbps.engine.step import autocast, predict
    from dbps.selection import PatchSelector
    from dbps.viz import save_heatmap

    if args.count < 1:
        raise ValueError(f"--count must be ≥ 1, got {args.count}")
    session, checkpoint_path = load_run(args.target, args.overrides)
    dataset = getattr(session.splits, args.split)
    subset = Subset(dataset, range(min(args.count, len(dataset))))  # type: ignore[arg-type]
    out = args.out or checkpoint_path.parent / f"predictions-{args.split}"
    selector = session.selector
    # One joint scoring of every patch for the heatmap (what DBformer+ computes); the prediction itself uses
    # the run's own selector, whose chunked scores are relative to each chunk's candidates.
    attention = PatchSelector("dbps+", selector.eval_num_salient, selector.chunk_size)
    rows, shown = [], 0
    for images, targets in session.batches(session.loader_for(subset)):
        source = make_source(images, session.config, session.splits, session.amp_dtype)
        outputs, selection = predict(session.model, selector, source, amp_dtype=session.amp_dtype)
        with autocast(session.device, session.amp_dtype):
            scores = attention.select(session.model, source, training=False).scores
        coords = source.coords().cpu().numpy()
        for b in range(images.shape[0]):
            row: dict[str, object] = {"index": shown}
            labels = []
            for task in session.model.tasks:
                logits = outputs[task.name][b]
                predicted = (logits > 0).int().tolist() if task.activation == "sigmoid" else int(logits.argmax())
                target = targets[task.name][b].tolist()
                row |= {f"{task.name}_predicted": predicted, f"{task.name}_target": target}
                labels.append(f"{task.name}: {predicted} (true {target})")
            rows.append(row)
            image = images[b].float().cpu().numpy()
            image = image / 255.0 if images.dtype == torch.uint8 else image
            save_heatmap(
                image, scores[b].float().cpu().numpy(), coords, source.patch_size,
                selection.salient_idx[b].cpu().numpy(), selection.context_idx[b].cpu().numpy(),
                ", ".join(labels), out / f"{args.split}-{shown:04d}.png",
            )  # fmt: skip
            shown += 1
    with (out / "predictions.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {shown} heatmaps and predictions.csv to {out}")
    return 0
