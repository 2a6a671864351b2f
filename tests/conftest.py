"""Shared fixtures: offline, deterministic, tiny."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from dbps.models import PatchClassifier, create_aggregator, create_encoder
from dbps.tasks import TaskSpec


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def tiny_model(
    aggregator: str = "CA",
    *,
    dim: int = 16,
    heads: int = 1,
    tasks: list[TaskSpec] | None = None,
    in_chans: int = 1,
    pos_enc: bool = False,
) -> PatchClassifier:
    """A small CNN + aggregator classifier for image patches."""
    tasks = tasks or [TaskSpec("label", 2)]
    encoder = create_encoder("small_cnn", in_chans=in_chans, dim=dim)
    agg = create_aggregator(aggregator, dim=dim, num_tasks=len(tasks), heads=heads, dim_key=8, dim_value=8)
    return PatchClassifier(encoder, agg, tasks, pos_enc=pos_enc)


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A 20 MB tmpfs mounted for the test, to fill up for real (root only; skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(disk)], capture_output=True,
                             text=True, check=False)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Write zeros into `disk` until not one more byte fits; returns the filler file (delete it to free the space)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as handle:
        try:
            while True:
                handle.write(bytes(1 << 16))
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler
