"""Run folders: one command at a time writes into one.

A command that writes into a run folder (training, resuming, evaluation and prediction reports) holds an
operating-system lock on `RUN/.dbps-lock` for as long as it runs. The kernel releases it when the process ends,
however it ends (an error, Ctrl-C, SIGKILL, a crash), so a lock file left by a killed process never blocks; the
file only records who holds it, for the message a second command gets.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

LOCK_FILE = ".dbps-lock"


class RunFolderInUse(OSError):
    """Another process holds the run folder; `filename` is the folder, `strerror` names the process."""


@contextmanager
def locked(run_dir: Path, command: str, *, elsewhere: str = "") -> Iterator[None]:
    """Hold `run_dir`'s lock inside the block (the folder is created when missing).

    Args:
        run_dir: the run folder.
        command: what holds it, for the message of a command that finds it held (e.g. 'dbps train').
        elsewhere: how the command could write somewhere else instead (e.g. 'write elsewhere with --out').

    Raises:
        RunFolderInUse: another process holds it; nothing was changed in the folder.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _lock(fd, fcntl.LOCK_EX, run_dir, elsewhere)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"process {os.getpid()} ({command})\n".encode(), 0)
            yield
        finally:
            os.ftruncate(fd, 0)  # an empty file while locked: its next holder has not written its name yet
    finally:
        os.close(fd)  # releases the lock


def check_not_in_use(run_dir: Path, *, elsewhere: str = "") -> None:
    """Raise `RunFolderInUse` when another process holds `run_dir`; creates and changes nothing (for the checks
    made before a command builds its run, so that a folder being trained is not mistaken for an interrupted one)."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        _lock(fd, fcntl.LOCK_SH, run_dir, elsewhere)  # given back at once, by closing
    finally:
        os.close(fd)


def _lock(fd: int, kind: int, run_dir: Path, elsewhere: str) -> None:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        raise RunFolderInUse(
            errno.EBUSY, f"in use by {holder}; a run folder takes one command at a time: wait for it to end or "
            f"stop it{', or ' + elsewhere if elsewhere else ''}", str(run_dir),
        ) from None


def _holder(fd: int, wait_s: float = 2.0) -> str:
    """Who holds the lock, as the holder wrote it. A holder writes its name just after taking the lock, so for a
    moment the file is empty, or names a killed holder before it: wait a little for a living holder's name."""
    deadline = time.monotonic() + wait_s
    while True:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
        if _names_a_living_process(text) or time.monotonic() > deadline:
            return text or "another process"
        time.sleep(0.01)


def _names_a_living_process(text: str) -> bool:
    words = text.split()
    if len(words) < 2 or words[0] != "process" or not words[1].isdigit():
        return False
    try:
        os.kill(int(words[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it lives, under another user
    return True


def is_run_folder(folder: Path) -> bool:
    """Whether `folder` is a run folder (training writes config.yaml into it first)."""
    return (folder / "config.yaml").is_file()


def locked_if_inside(out: Path, run_dir: Path, command: str) -> AbstractContextManager[None]:
    """`run_dir`'s lock when `out` lies inside that run folder (reports of `dbps eval` / `dbps predict`); nothing
    otherwise: a command that only reads a run folder may run beside its training."""
    inside = is_run_folder(run_dir) and out.resolve().is_relative_to(run_dir.resolve())
    return locked(run_dir, command, elsewhere="write elsewhere with --out") if inside else nullcontext()
