"""CUDA paths: bf16 autocast, channels-last, prefetching, and no host synchronisation inside selection."""

from __future__ import annotations

import pytest
import torch

from dbps.data import DevicePrefetcher, PatchSpec, SparseBatch, SparseImageBatch
from dbps.engine.step import train_step
from dbps.patches import ImagePatches
from dbps.selection import PatchSelector
from tests.conftest import tiny_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize(
    ("method", "update"), [("ips", "joint"), ("dbps", "joint"), ("dbps", "two_stage"), ("dbps+", "joint")]
)
def test_selection_never_synchronises_with_the_host(method: str, update: str) -> None:
    model = tiny_model("DA", heads=2).cuda()
    model.encoder.to_channels_last()
    images = (torch.rand(4, 1, 160, 160, device="cuda") > 0.99).to(torch.uint8) * 255
    plus = method == "dbps+"
    selector = PatchSelector(
        method, num_salient=4, chunk_size=16, num_context=8 if method == "dbps" else None,
        drop_ratio=0.3 if plus else 0.0, sampling="half" if plus else "hard", buffer_update=update,
    )
    generator = torch.Generator("cuda").manual_seed(0)
    source = ImagePatches(images, 16, dtype=torch.bfloat16)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        selector.select(model, source, training=True, generator=generator)  # warm-up: lazy initialisation may sync
        torch.cuda.set_sync_debug_mode("error")
        try:
            selection = selector.select(model, source, training=True, generator=generator)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert selection.salient_idx.is_cuda and selection.salient_idx.shape == (4, 4)


def test_bf16_train_step_matches_cpu_selection_shapes_and_learns_something() -> None:
    model = tiny_model("CA").cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    images = torch.rand(8, 1, 64, 64, device="cuda")
    labels = {"label": torch.randint(0, 2, (8,), device="cuda")}
    selector = PatchSelector("dbps", num_salient=3, chunk_size=8, num_context=4)
    losses = [
        train_step(model, selector, ImagePatches(images, 8), labels, optimizer, amp_dtype=torch.bfloat16).loss.item()
        for _ in range(20)
    ]
    assert losses[-1] < losses[0]


def test_prefetcher_densifies_sparse_batches_on_the_gpu() -> None:
    dense = (torch.rand(3, 1, 20, 20) > 0.9).to(torch.uint8) * 200
    flat = dense.flatten()
    index = flat.nonzero().flatten()
    sparse = SparseBatch(index, flat[index], (3, 1, 20, 20))
    loader = [SparseImageBatch(sparse, {"label": torch.arange(3)}, PatchSpec((10, 10))).pin_memory()] * 2
    out = list(DevicePrefetcher(loader, torch.device("cuda")))
    assert len(out) == 2 and all(torch.equal(batch.images.cpu(), dense) for batch in out)
    assert all(batch.targets["label"].is_cuda for batch in out)
