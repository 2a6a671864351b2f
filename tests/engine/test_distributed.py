"""torchrun: two CPU processes (gloo) train to the result of one process with the same global batch, one run folder.

The runs are made comparable step for step: the two processes split each global batch of B = 4 into halves,
which is what the single process's micro-batches (B_seq = 2) hold; selection is deterministic (hard top-M, no
drop, no shuffle, no exploration, no dropout) and BatchNorm is frozen, because on a CPU the processes cannot share
batch statistics (SyncBatchNorm needs a GPU). The gradients then agree to the bit: the single process accumulates
0.5·g1 + 0.5·g2, the all-reduce computes (g1 + g2) / 2, and halving is exact in floating point. So the weights
must be identical; only the reported train loss, summed in another order, may differ in its last digits.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from dbps.data import make_megapixel_mnist

ARGS = [
    "--config", "quickstart", "data.generate=null", "tasks=[majority, multi]", "model.encoder=small_cnn",
    "model.dim=16", "model.heads=2", "model.dim_key=8", "model.dim_value=8", "model.dim_ffn=32", "M=3", "S=3", "I=8",
    "train.epochs=2", "train.warmup_epochs=1", "B=4", "data.num_workers=0", "log.progress=false",
    "log.tensorboard=false", "data.val_fraction=0.2", "selection.explore_epochs=0", "model.bn_mode=frozen",
    "train.device=cpu",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_the_same_global_batch(tmp_path) -> None:
    data = make_megapixel_mnist(tmp_path / "mm", n_train=40, n_test=8, size=150, n_noise=3, seed=2, progress=False)
    single, double = tmp_path / "single", tmp_path / "double"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "dbps", "train", *ARGS, f"data.root={data}", "B_seq=2", "--out",
                          str(single)], capture_output=True, text=True, env=env, check=False)
    assert one.returncode == 0, one.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
                "--master-port", str(free_port())]
    two = subprocess.run([*launcher, "-m", "dbps", "train", *ARGS, f"data.root={data}", "--out", str(double)],
                         capture_output=True, text=True, env=env, check=False)
    assert two.returncode == 0, two.stderr
    assert sorted(p.name for p in double.iterdir()) == sorted(p.name for p in single.iterdir())  # one folder
    assert two.stdout.count("finished: ") == 1  # rank 0 alone reports

    first, second = (json.loads((p / "summary.json").read_text()) for p in (single, double))
    assert (first["processes"], second["processes"]) == (1, 2)
    assert second["test"] == first["test"]
    rows = [list(csv.DictReader((p / "metrics.csv").open())) for p in (single, double)]
    for a, b in zip(*rows, strict=True):
        assert float(b["train_loss"]) == pytest.approx(float(a["train_loss"]), rel=1e-6)
        assert (b["val_loss"], b["val_majority_accuracy"]) == (a["val_loss"], a["val_majority_accuracy"])
    weights = [torch.load(p / "best.pt", weights_only=True)["model"] for p in (single, double)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_processes_share_each_global_batch_in_halves() -> None:
    from dbps.data import EpochSampler

    with pytest.raises(ValueError, match="divisible by the 3 processes"):
        EpochSampler(10, 4, world=3)
    everyone = [list(EpochSampler(10, 4, seed=1, rank=r, world=2)) for r in (0, 1)]
    alone = list(EpochSampler(10, 4, seed=1))
    # process r reads the r-th half of each global batch; the last batch is completed from the start
    assert everyone[0][:2] + everyone[1][:2] == alone[:4]
    assert len(everyone[0]) == len(everyone[1]) == 6 and everyone[1][4:] == alone[:2]
