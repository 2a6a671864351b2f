"""The `dbps` command: thin sub-commands that parse arguments and call the library."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from dbps.cli import bench, cv, evaluate, extract_features, make_data, predict, splits, tile, train

COMMANDS = {
    "make-data": make_data, "train": train, "eval": evaluate, "predict": predict, "bench": bench, "tile": tile,
    "extract-features": extract_features, "splits": splits, "cv": cv,
}


USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one `dbps: error:` line naming the command (`--help` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("dbps").strip()
        self.exit(2, f"dbps: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dbps", description="Dual-buffer patch selection for very large images.")
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
    try:
        args = _parse(build_parser(), argv)
    except SystemExit as exit_:  # --help, --version, or a bad argument (already reported)
        return int(exit_.code or 0)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("dbps: interrupted", file=sys.stderr)
        return 130
    except (*USER_ERRORS, OSError) as exc:
        if os.environ.get("DBPS_DEBUG") or not _is_user_error(exc):
            raise
        for line in _message(exc).splitlines() or [type(exc).__name__]:
            print(f"dbps: error: {line}", file=sys.stderr)
        return 2


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, extra = parser.parse_known_args(argv)
    # KEY=VALUE overrides may follow options (`dbps eval run --split val M=5`), which argparse leaves over
    stray = [token for token in extra if token.startswith("-") or "=" not in token]
    if stray or (extra and not hasattr(args, "overrides")):
        hint = " (overrides are KEY=VALUE)" if any(not token.startswith("-") for token in stray) else ""
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}{hint}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def _is_user_error(exc: Exception) -> bool:
    """Bad input, or an operating-system error about a named file (disk full, read-only file system)."""
    return isinstance(exc, USER_ERRORS) or (isinstance(exc, OSError) and exc.filename is not None)


def _message(exc: Exception) -> str:
    """The error's text; an operating-system error as `path: reason` (e.g. `/data: Permission denied`)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)
