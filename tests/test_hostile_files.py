"""Files that would run code when opened (a pickled object whose `__reduce__` calls a function) are refused by every
command that reads them, in one line naming the file and the object, and the payload never runs.

Each hostile file is first shown to run its payload when opened without the safe loaders, so the tests can fail.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch

from dbps.cli import main
from dbps.data import make_megapixel_mnist
from tests.test_bad_input import FEATURES, TINY, TRAIN, Payload, assert_one_line_errors

EXTRACT = "extract-features {slides} --coords {tiles} --encoder small_cnn --out {out} --no-progress"


def would_run(path: Path, marker: Path, unsafe_load) -> None:
    """Opening `path` without the safe loader runs the payload (then the marker is removed again)."""
    unsafe_load(path)
    assert marker.is_dir(), f"{path} does not run its payload: the test proves nothing"
    marker.rmdir()


def torch_unsafe(path: Path) -> None:
    torch.load(path, weights_only=False)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, Path]:
    """A dataset, a run folder (config.yaml, last.pt, best.pt) whose checkpoints carry the payload, and files."""
    from dbps.config import load_config, save_config
    from dbps.engine.build import Run
    from dbps.models.weights import plain_state_dict

    w = tmp_path_factory.mktemp("hostile")
    marker = w / "payload-ran"
    data = make_megapixel_mnist(w / "mm", n_train=8, n_test=4, size=120, n_noise=2, progress=False)
    config, _ = load_config("quickstart", [f"data.root={data}", *TINY.split()])
    built = Run.from_config(config, progress=False, generate=False)
    run = w / "run"
    run.mkdir()
    save_config(config, run / "config.yaml")
    state = plain_state_dict(built.model)
    for name in ("best.pt", "last.pt"):
        torch.save({"model": state, "config": config.to_dict(), "metrics": Payload(marker)}, run / name)
    torch.save({**state, "payload": Payload(marker)}, w / "encoder.pt")
    torch.save({"features": torch.zeros(3, 8), "payload": Payload(marker)}, w / "bag.pt")
    (w / "slides").mkdir()
    (w / "slides" / "s1.tiff").write_bytes(b"II*\x00 not really a slide")
    (w / "tiles").mkdir()
    return {"w": w, "marker": marker, "data": data, "run": run, "slides": w / "slides", "tiles": w / "tiles",
            "out": w / "new"}


def assert_refused(world: dict[str, Path], command: str, named: str, capsys) -> None:
    places = {key: str(path) for key, path in world.items()}
    code = main(shlex.split(command.format(**places)))
    err = capsys.readouterr().err
    assert code == 2, err
    assert_one_line_errors(err, [named.format(**places), "refused: it holds posix.mkdir"])
    assert not world["marker"].exists(), "the payload ran"


@pytest.mark.parametrize(
    ("command", "named"),
    [
        ("eval {run}", "{run}/best.pt"),
        ("predict {run} --count 1", "{run}/best.pt"),
        ("train --resume {run}", "{run}/last.pt"),
    ],
    ids=["eval", "predict", "resume"],
)
def test_a_checkpoint_that_would_run_code_is_refused(world, command, named, capsys) -> None:
    would_run(world["run"] / "best.pt", world["marker"], torch_unsafe)
    assert_refused(world, command, named, capsys)


def test_run_from_checkpoint_refuses_it_too(world) -> None:
    from dbps.engine.build import Run
    from dbps.safe_load import UnsafeFileError

    with pytest.raises(UnsafeFileError, match=r"refused: it holds posix\.mkdir") as refused:
        Run.from_checkpoint(world["run"] / "last.pt")
    assert "\n" not in str(refused.value) and not world["marker"].exists()


@pytest.mark.parametrize(
    "command",
    [
        f"{TRAIN} data.root={{data}} model.weights={{w}}/encoder.pt",
        f"{TRAIN} data.root={{data}} model.encoder=resnet18 model.weights={{w}}/encoder.pt",
        f"{EXTRACT} --weights {{w}}/encoder.pt",
    ],
    ids=["own-encoder", "timm-encoder", "extract-features"],
)
def test_encoder_weights_that_would_run_code_are_refused(world, command, capsys) -> None:
    would_run(world["w"] / "encoder.pt", world["marker"], torch_unsafe)
    assert_refused(world, command, "{w}/encoder.pt", capsys)


def test_a_feature_bag_that_would_run_code_is_refused(world, tmp_path, capsys) -> None:
    bags = tmp_path / "feats"
    (bags / "pt").mkdir(parents=True)
    for name in ("normal_001", "tumor_001", "test_001", "test_002"):
        torch.save(torch.ones(4, 8), bags / "pt" / f"{name}.pt")
    (bags / "pt" / "tumor_001.pt").write_bytes((world["w"] / "bag.pt").read_bytes())
    (bags / "label.csv").write_text("slide_name,label\nnormal_001,0\ntumor_001,1\ntest_001,1\ntest_002,0\n")
    would_run(bags / "pt" / "tumor_001.pt", world["marker"], torch_unsafe)
    assert_refused(world | {"feats": bags}, f"{FEATURES} data.root={{feats}}", "{feats}/pt/tumor_001.pt", capsys)


def test_a_reference_mnist_file_that_would_run_code_is_refused(world, tmp_path, capsys) -> None:
    root = tmp_path / "reference"
    root.mkdir()
    (root / "parameters.json").write_text(json.dumps({"width": 100, "height": 100}))
    record = {"input": (np.array([3, 4]), np.array([0.5, 1.0])), "majority": 1, "max": 2, "top": 3,
              "multi": np.zeros(10), "note": Payload(world["marker"])}
    np.save(root / "train.npy", np.array([record], dtype=object), allow_pickle=True)
    would_run(root / "train.npy", world["marker"], lambda path: np.load(path, allow_pickle=True))
    command = f"{TRAIN} --dataset mnist data.root={root} tasks=[majority]"
    assert_refused(world, command, f"{root}/train.npy", capsys)


def test_the_reference_reader_takes_what_the_generator_writes(tmp_path) -> None:
    """Python numbers, NumPy scalars and arrays, tuples, lists and strings (also in the numpy 1 module names)."""
    import pickle

    from dbps.data.reference_mnist import load_records

    record = {"input": ((np.array([0, 5], dtype=np.int64),), np.array([0.25, 1.0], dtype=np.float32)),
              "majority": np.int64(4), "max": 7, "top": 7, "multi": [0.0] * 9 + [1.0], "name": "digits"}
    np.save(tmp_path / "train.npy", np.array([record, record], dtype=object), allow_pickle=True)
    loaded = load_records(tmp_path / "train.npy")
    assert len(loaded) == 2 and loaded[0]["name"] == "digits" and int(loaded[1]["majority"]) == 4
    assert np.array_equal(loaded[0]["input"][0][0], [0, 5]) and loaded[0]["multi"][-1] == 1.0
    numpy1 = pickle.dumps(np.array([record], dtype=object), protocol=3).replace(b"numpy._core", b"numpy.core")
    with (tmp_path / "test.npy").open("wb") as handle:  # as NumPy 1 saved it
        np.lib.format.write_array_header_1_0(handle, {"descr": "|O", "fortran_order": False, "shape": (1,)})
        handle.write(numpy1)
    assert load_records(tmp_path / "test.npy")[0]["max"] == 7


def test_a_checkpoint_of_dbps_0_1_with_numpy_random_states_still_loads(tmp_path) -> None:
    """Checkpoints written before this version pickled NumPy's random state (an array) and NumPy metric values."""
    from dbps.engine.checkpoint import load_checkpoint
    from dbps.engine.state import random_states, restore_random_states

    generator = torch.Generator().manual_seed(0)
    np.random.seed(3)
    torch.save({"model": {"head.weight": torch.zeros(2)}, "random": [random_states(generator)],
                "metrics": {"val_score": np.float64(0.5)}}, tmp_path / "old.pt")
    expected = np.random.rand(3)
    checkpoint = load_checkpoint(tmp_path / "old.pt")
    assert checkpoint["metrics"]["val_score"] == 0.5
    restore_random_states(checkpoint["random"][0], generator)
    assert np.array_equal(np.random.rand(3), expected)
