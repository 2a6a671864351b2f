"""Files and folders that are never half-written (built beside the target, then renamed), and output checks."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp)` on a temporary file in `path`'s folder, then rename it to `path`.

    A crash or an error while writing leaves `path` as it was (or absent) and no temporary file behind; an
    operating-system error (a full disk) names `path`, not the temporary file. The temporary file keeps `path`'s
    suffix, for writers that choose the format by it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    except OSError as exc:
        raise _renamed(exc, str(exc.filename or ""), path) from None
    os.close(handle)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and str(exc.filename or tmp).startswith(tmp):
            raise _renamed(exc, tmp, path) from None
        raise


def _renamed(exc: OSError, tmp: str, path: Path) -> OSError:
    """The error `exc` about the temporary `tmp` (or about no file), told of `path` (or of the file under it)."""
    where = str(exc.filename or tmp)
    return type(exc)(exc.errno, exc.strerror, f"{path}{where[len(tmp):] if where.startswith(tmp) else ''}")


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def read_text(path: Path) -> str:
    """A UTF-8 text file (a leading byte-order mark dropped); ValueError naming the file when it is not text."""
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text file (byte {exc.start} is not UTF-8)") from None


def read_csv(path: Path) -> list[list[str]]:
    """The non-blank rows of a CSV file, cells as written; ValueError naming the file when it is not CSV text."""
    try:
        return [row for row in csv.reader(io.StringIO(read_text(path), newline="")) if row]
    except csv.Error as exc:
        raise ValueError(f"{path}: not a CSV file ({exc})") from None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file holding an object; ValueError naming the file (and where it breaks) otherwise."""
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def atomic_folder(path: Path, build: Callable[[Path], object]) -> None:
    """Call `build(tmp)` on a new temporary folder beside `path`, then put it in `path`'s place.

    An error while building leaves `path` as it was and no temporary folder behind (an operating-system error
    names the file where it was going to be). An existing `path` is replaced only once the new folder is
    complete: renamed aside, the new one renamed in, the old one deleted.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.new-"))
    except OSError as exc:  # named after the folder asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        build(tmp)
        _swap_in(tmp, path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and str(exc.filename or "").startswith(str(tmp)):
            raise _renamed(exc, str(tmp), path) from exc
        raise


def _swap_in(new: Path, path: Path) -> None:
    """Rename the folder `new` to `path`; an existing `path` is renamed aside first and deleted last."""
    if not path.exists():
        os.replace(new, path)
        return
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
    try:
        os.replace(path, old)
    except BaseException:
        old.rmdir()
        raise
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old)


def check_output_folder(path: Path, what: str) -> None:
    """Raise, before anything is written, when `path` cannot become a folder this process writes into.

    Args:
        path: the folder, existing or not (missing parents are fine: they are created).
        what: how the user named it, for the message (e.g. '--out').

    Raises:
        NotADirectoryError: `path` or one of its parents is a file.
        PermissionError: the folder, or the nearest existing parent, is not writable.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise NotADirectoryError(f"{what} {path} is not a folder{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: {existing} is not writable")


def check_output_file(path: Path, what: str) -> None:
    """Like `check_output_folder`, for a file to be written: its folder must be writable, itself no folder."""
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder, not a file")
    check_output_folder(path.parent, what)
