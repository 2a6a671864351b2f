"""Does bf16 selection pick the patches float32 picks? The same trained weights on the same images, both ways.

For every image of the chosen splits, evaluation-mode selection (every patch, hard top-M) and prediction run
once in float32 and once under bf16 autocast (patches converted to bf16, as training does). Per image it
records the overlap |salient_bf16 ∩ salient_fp32| / M, the same for the context set (S) when there is one,
and whether each task's prediction agrees; it prints the means and the share of identical salient sets.

    python benchmarks/bf16_agreement.py --run runs/<run> --out benchmarks/results/cpu-bf16-agreement.csv
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import torch
from torch import Tensor

from dbps.engine.build import Run
from dbps.engine.step import predict
from dbps.patches import batch_source, opened
from dbps.selection import Selection
from dbps.tasks import Activation, TaskSpec

Prediction = tuple[dict[str, Tensor], Selection]


def overlap(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    """Per row, |set(a) ∩ set(b)| / width (NaN for empty rows)."""
    if a.shape[1] == 0:
        return [float("nan")] * a.shape[0]
    return [len(set(x.tolist()) & set(y.tolist())) / a.shape[1] for x, y in zip(a, b, strict=True)]


def decisions(logits: torch.Tensor, activation: Activation) -> torch.Tensor:
    """Predicted class (softmax tasks) or label set (sigmoid tasks) per image."""
    return logits.argmax(-1, keepdim=True) if activation is Activation.SOFTMAX else logits > 0


def compare(fp32: Prediction, bf16: Prediction, targets: dict[str, Tensor], tasks: list[TaskSpec]) -> list[dict]:
    """One row per image: salient and context overlaps; per task, agreement and (softmax tasks) correctness."""
    (out32, sel32), (out16, sel16) = fp32, bf16
    columns: dict[str, list[float]] = {
        "salient_overlap": overlap(sel32.salient_idx, sel16.salient_idx),
        "context_overlap": overlap(sel32.context_idx, sel16.context_idx),
    }
    for task in tasks:
        pred32, pred16 = decisions(out32[task.name], task.activation), decisions(out16[task.name], task.activation)
        columns[f"same_{task.name}"] = (pred32 == pred16).all(-1).float().tolist()
        if task.activation is Activation.SOFTMAX:
            for label, pred in (("fp32", pred32), ("bf16", pred16)):
                columns[f"correct_{task.name}_{label}"] = (pred[:, 0] == targets[task.name]).float().tolist()
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="run folder with config.yaml and best.pt")
    parser.add_argument("--splits", default="train,test")
    parser.add_argument("--batch", type=int, default=8, help="images per forward")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cpu-bf16-agreement.csv"))
    args = parser.parse_args()
    run, _ = Run.from_checkpoint(args.run, ["train.device=cpu", "train.compile=false", "data.num_workers=0"])
    rows: list[dict[str, object]] = []
    for split in args.splits.split(","):
        for batch in run.batches(run.loader(split)):
            for group in batch.groups(args.batch):
                results = {}
                for dtype in (None, torch.bfloat16):
                    with opened(batch_source(group, dtype or torch.float32)) as source:
                        results[dtype] = predict(run.model, run.selector, source, amp_dtype=dtype)
                for row in compare(results[None], results[torch.bfloat16], group.targets, run.model.tasks):
                    rows.append({"split": split, "image": len(rows)} | row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summarise(rows, run.selector.num_salient)


def summarise(rows: list[dict[str, object]], num_salient: int) -> None:
    for split in dict.fromkeys(str(r["split"]) for r in rows):
        part = [r for r in rows if r["split"] == split]
        salient = [float(r["salient_overlap"]) for r in part]  # type: ignore[arg-type]
        line = (f"{split}: {len(part)} images, M = {num_salient}: mean salient overlap {statistics.mean(salient):.3f}, "
                f"identical salient sets {sum(s == 1.0 for s in salient) / len(part):.1%}")
        context = [float(r["context_overlap"]) for r in part]  # type: ignore[arg-type]
        if context and context[0] == context[0]:  # not NaN: the method keeps a context set
            line += f", mean context overlap {statistics.mean(context):.3f}"
        print(line)
        for key in (k for k in part[0] if k.startswith(("same_", "correct_"))):
            print(f"  {key}: {statistics.mean(float(r[key]) for r in part):.1%}")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
