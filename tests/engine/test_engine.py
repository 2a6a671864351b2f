"""Engine parts: LR schedule, checkpoints, loggers, memory probes."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
import torch

from dbps.engine.checkpoint import load_checkpoint, save_checkpoint
from dbps.engine.loggers import CSVLogger
from dbps.engine.schedule import warmup_cosine_lr
from dbps.engine.step import unwrap
from dbps.files import atomic_write
from dbps.models.weights import plain_state_dict
from tests.conftest import tiny_model


def test_warmup_is_linear_then_cosine_decays_to_the_floor() -> None:
    lrs = [warmup_cosine_lr(s, base_lr=1.0, total_steps=100, warmup_steps=10, min_ratio=1e-3) for s in range(101)]
    assert lrs[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    assert lrs[55] == pytest.approx(1e-3 + 0.5 * (1 - 1e-3))
    assert lrs[100] == pytest.approx(1e-3)
    assert warmup_cosine_lr(0, base_lr=0.5, total_steps=10, warmup_steps=0, min_ratio=0.0) == pytest.approx(0.5)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path) -> None:
    path = tmp_path / "best.pt"
    save_checkpoint(path, model={"w": torch.ones(2)}, epoch=1)

    def crash(tmp):
        tmp.write_bytes(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


def test_bare_state_dicts_load_and_prefixes_are_stripped(tmp_path) -> None:
    model = tiny_model()
    wrapped = torch.nn.Module()
    wrapped.module = model
    state = plain_state_dict(wrapped)
    assert set(state) == set(model.state_dict())
    torch.save(model.state_dict(), tmp_path / "bare.pt")
    assert set(load_checkpoint(tmp_path / "bare.pt")["model"]) == set(state)
    assert unwrap(wrapped) is model
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pt"):
        load_checkpoint(tmp_path / "junk.pt")


def test_csv_logger_writes_a_header_once(tmp_path) -> None:
    logger = CSVLogger(tmp_path / "m.csv")
    logger.log({"epoch": 1, "loss": 0.5})
    logger.log({"epoch": 2, "loss": 0.25})
    assert (tmp_path / "m.csv").read_text().splitlines() == ["epoch,loss", "1,0.5", "2,0.25"]


def test_cpu_peak_memory_sees_a_large_allocation() -> None:
    """In a fresh process: one that already freed large blocks (kept mapped, see keep_freed_host_memory) may serve
    the allocation from resident pages, and its peak rightly does not move."""
    check = (
        "import torch\n"
        "from dbps.engine.memory import peak_memory_bytes, reset_peak_memory\n"
        "device = torch.device('cpu')\n"
        "reset_peak_memory(device)\n"
        "before = peak_memory_bytes(device)\n"
        "block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, touched\n"
        "grown = peak_memory_bytes(device) - before\n"
        "assert grown >= 60 * 1024 * 1024, grown\n"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
