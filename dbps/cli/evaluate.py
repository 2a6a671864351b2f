"""`dbps eval`: evaluate a run's best checkpoint (or any checkpoint) on a split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="evaluate a trained model", description=__doc__)
    parser.add_argument("target", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("--out", type=Path, help="folder for the reports (default: the checkpoint's folder)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. data.root=/other/copy")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dbps.data import instance_names
    from dbps.engine.build import Run
    from dbps.engine.evaluate import evaluate, write_reports
    from dbps.engine.run_folder import locked_if_inside
    from dbps.files import check_output_folder, write_json

    built, checkpoint_path = Run.from_checkpoint(args.target, args.overrides)
    folder = args.out or checkpoint_path.parent
    check_output_folder(folder, "--out" if args.out else "the checkpoint's folder")
    with locked_if_inside(folder, checkpoint_path.parent, "dbps eval"):
        evaluation = evaluate(built, built.loader(args.split), desc=args.split)
        result = evaluation.summary() | {"checkpoint": str(checkpoint_path.resolve()), "split": args.split}
        out = folder / f"eval-{args.split}.json"
        write_json(out, result)
        names = instance_names(getattr(built.data, args.split))
        reports = write_reports(evaluation, built.model.tasks, folder, args.split, names)
    for task, values in result["tasks"].items():
        print(f"{task}: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in values.items()))
    print(f"loss {result['loss']:.4f} on {result['images']} {args.split} images; written to {out}"
          + (f" and {len(reports)} report files" if reports else ""))
    print(json.dumps(result["tasks"]))
    return 0
