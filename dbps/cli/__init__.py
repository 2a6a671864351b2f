"""The `dbps` command: thin sub-commands that parse arguments and call the library."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from dbps.cli import bench, evaluate, extract_features, make_data, predict, tile, train

COMMANDS = {
    "make-data": make_data, "train": train, "eval": evaluate, "predict": predict, "bench": bench, "tile": tile,
    "extract-features": extract_features,
}  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbps", description="Dual-buffer patch selection for very large images.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module in COMMANDS.items():
        module.add_parser(sub, name)
    return parser


def _version() -> str:
    from dbps import __version__

    return __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point. Errors in user input end in one line per problem, without a traceback (DBPS_DEBUG=1 shows it)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may follow options (`dbps eval run --split val M=5`), which argparse leaves over
    stray = [token for token in extra if token.startswith("-") or "=" not in token]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("dbps: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as exc:
        if os.environ.get("DBPS_DEBUG"):
            raise
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"dbps: error: {line}", file=sys.stderr)
        return 2
