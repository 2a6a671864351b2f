"""The `dbps` command: thin sub-commands that parse arguments and call the library."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from dbps.cli import bench, evaluate, make_data, train

COMMANDS = {"make-data": make_data, "train": train, "eval": evaluate, "bench": bench}


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
    args = build_parser().parse_args(argv)
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
