"""The Megapixel MNIST kind makes its own data (`prepare`) and names its tasks; its generator's defaults are one."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from dbps.cli import build_parser
from dbps.config import ConfigError
from dbps.config.schema import GenerateConfig
from dbps.data import DATASETS, MegapixelMNIST, dataset_kind, make_megapixel_mnist
from dbps.data.kinds import PrepareRequest

TINY = {"n_train": 2, "n_test": 1, "size": 120, "n_noise": 0, "seed": 0, "digits": None}


def test_only_megapixel_mnist_prepares_and_names_its_tasks() -> None:
    for name in ("megapixel_mnist", "mnist"):
        kind = dataset_kind(name)
        assert kind.prepare is not None and kind.tasks == MegapixelMNIST.TASKS
    others = [name for name in DATASETS.names() if name not in ("megapixel_mnist", "mnist")]
    assert others and all(dataset_kind(n).prepare is None and dataset_kind(n).tasks == () for n in others)


def test_prepare_generates_only_where_asked_and_allowed(tmp_path: Path) -> None:
    prepare = dataset_kind("megapixel_mnist").prepare
    assert prepare is not None
    root = tmp_path / "mm"
    assert prepare(PrepareRequest(root)) == [] and not root.exists()  # no data.generate: nothing is made
    with pytest.raises(FileNotFoundError, match=r"no dataset there.*evaluation does not"):
        prepare(PrepareRequest(root, TINY, may_generate=False))
    with pytest.raises(FileNotFoundError) as named:
        prepare(PrepareRequest(root, TINY, root_named=True, root_key="dataset_path (data.root)"))
    assert str(named.value).startswith(f"dataset_path (data.root) {root}: no dataset there; make it with "
                                       f"`dbps make-data megapixel-mnist --out {root} --n-train 2 --n-test 1 "
                                       "--size 120 --noise 0")
    assert not root.exists()
    assert prepare(PrepareRequest(root, TINY, progress=False)) == [] and (root / "meta.json").is_file()
    made = (root / "meta.json").stat().st_mtime_ns
    assert prepare(PrepareRequest(root, TINY, may_generate=False)) == []  # there already: read, not made again
    assert (root / "meta.json").stat().st_mtime_ns == made
    with pytest.raises(ConfigError, match=r"data\.generate: size must be at least"):
        prepare(PrepareRequest(tmp_path / "small", TINY | {"size": 10}, progress=False))


def test_generator_defaults_are_written_once() -> None:
    defaults = GenerateConfig()
    signature = inspect.signature(make_megapixel_mnist).parameters
    assert {key: signature[key].default for key in TINY} == vars(defaults)
    args = build_parser().parse_args(["make-data", "megapixel-mnist", "--out", "x"])
    assert (args.n_train, args.n_test, args.size, args.noise, args.seed, args.digits) == tuple(vars(defaults).values())
