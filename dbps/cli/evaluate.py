"""`dbps eval`: evaluate a run's best checkpoint (or any checkpoint) on a split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="evaluate a trained model", description=__doc__)
    parser.add_argument("target", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. data.root=/other/copy")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbps.data import instance_names
    from dbps.engine.build import Run
    from dbps.engine.evaluate import evaluate, write_reports
    from dbps.files import check_output_folder, write_json

    built, checkpoint_path = Run.from_checkpoint(args.target, args.overrides)
    check_output_folder(checkpoint_path.parent, "the checkpoint's folder")
    evaluation = evaluate(built, built.loader(args.split), desc=args.split)
    result = evaluation.summary() | {"checkpoint": str(checkpoint_path.resolve()), "split": args.split}
    out = checkpoint_path.parent / f"eval-{args.split}.json"
    write_json(out, result)
    names = instance_names(getattr(built.data, args.split))
    reports = write_reports(evaluation, built.model.tasks, checkpoint_path.parent, args.split, names)
    for task, values in result["tasks"].items():
        print(f"{task}: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in values.items()))
    print(f"loss {result['loss']:.4f} on {result['images']} {args.split} images; written to {out}"
          + (f" and {len(reports)} report files" if reports else ""))  # fmt: skip
    print(json.dumps(result["tasks"]))
    return 0
