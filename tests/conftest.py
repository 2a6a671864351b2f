"""Shared fixtures: offline, deterministic, tiny."""

from __future__ import annotations

import os

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
