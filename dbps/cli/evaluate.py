"""`dbps eval`: evaluate a run's best checkpoint (or any checkpoint) on a split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dbps.engine.loop import Session


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    parser = sub.add_parser(name, help="evaluate a trained model", description=__doc__)
    parser.add_argument("target", type=Path, metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. data.root=/other/copy")
    parser.set_defaults(run=run)


def load_run(target: Path, overrides: list[str]) -> tuple[Session, Path]:
    """The session of a run folder (its best.pt) or of a checkpoint, with the trained weights loaded."""
    from dbps.config import config_from_dict, read_yaml
    from dbps.engine.checkpoint import load_checkpoint
    from dbps.engine.loop import Session

    checkpoint_path = target / "best.pt" if target.is_dir() else target
    checkpoint = load_checkpoint(checkpoint_path)
    raw = checkpoint.get("config")
    if raw is None:
        config_file = checkpoint_path.parent / "config.yaml"
        if not config_file.is_file():
            raise FileNotFoundError(f"{checkpoint_path} holds no config and {config_file} is missing")
        raw = read_yaml(config_file)
    config, _ = config_from_dict(raw, overrides)
    session = Session.create(config, progress=config.log.progress)
    session.model.load_state_dict(checkpoint["model"])
    return session, checkpoint_path


def run(args: argparse.Namespace) -> int:
    from dbps.engine.checkpoint import write_json
    from dbps.engine.loop import evaluate

    session, checkpoint_path = load_run(args.target, args.overrides)
    config = session.config
    result = evaluate(session, session.loader(args.split), desc=args.split, progress=config.log.progress)
    result |= {"checkpoint": str(checkpoint_path.resolve()), "split": args.split}
    out = checkpoint_path.parent / f"eval-{args.split}.json"
    write_json(out, result)
    for task, values in result["tasks"].items():
        print(f"{task}: " + ", ".join(f"{k} {100 * v:.2f} %" for k, v in values.items()))
    print(f"loss {result['loss']:.4f} on {result['images']} {args.split} images; written to {out}")
    print(json.dumps(result["tasks"]))
    return 0
