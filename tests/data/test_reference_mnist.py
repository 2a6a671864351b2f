"""Reference-format Megapixel MNIST: the round trip equals the dense image, items match the generated dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dbps.data import Collate, MegapixelMNIST, PatchSpec, SparseBatch, SparseImageBatch
from dbps.data.reference_mnist import ReferenceMegapixelMNIST

pytest.importorskip("skimage")
from tests.photo_fixtures import make_reference_mnist, write_reference_mnist


@pytest.fixture(scope="module")
def reference_root(tmp_path_factory):
    return make_reference_mnist(tmp_path_factory.mktemp("refmnist"), n_train=6, n_test=3, size=120)


@pytest.mark.parametrize("split", ["train", "test"])
def test_items_equal_the_generated_dataset(reference_root, split) -> None:
    reference = ReferenceMegapixelMNIST(reference_root, split)
    generated = MegapixelMNIST(reference_root / "generated", split)
    assert len(reference) == len(generated) and reference.image_shape == generated.image_shape == (1, 120, 120)
    for i in range(len(reference)):
        (image, targets), (own_image, own_targets) = reference[i], generated[i]
        assert image.values.dtype == torch.uint8 and image.shape == own_image.shape
        assert torch.equal(image.index, own_image.index) and torch.equal(image.values, own_image.values)
        assert np.array_equal(reference.dense(i), generated.dense(i))
        assert targets.keys() == own_targets.keys() == {"majority", "max", "top", "multi"}
        assert all(torch.equal(targets[k], own_targets[k]) and targets[k].dtype == torch.long for k in targets)
    assert reference.labels() == [int(generated[i][1]["majority"]) for i in range(len(generated))]


def test_both_sources_collate_into_one_batch(reference_root) -> None:
    reference = ReferenceMegapixelMNIST(reference_root, "test", ["majority"])
    items = [reference[0], MegapixelMNIST(reference_root / "generated", "test", ["majority"])[0]]
    batch = Collate(PatchSpec((40, 40)))(items)
    assert isinstance(batch, SparseImageBatch) and batch.sparse.shape == (2, 1, 120, 120)
    assert batch.targets["majority"].shape == (2,)
    dense = batch.sparse.to_dense("cpu")
    assert torch.equal(dense[0], dense[1])


def non_square(tmp_path, height: int = 30, width: int = 50, n: int = 3):
    rng = np.random.default_rng(0)
    images = (rng.random((n, height, width)) < 0.1) * rng.integers(1, 256, (n, height, width))
    digits = rng.integers(0, 10, (n, 5))
    targets = {"majority": digits[:, 0], "max": digits.max(1), "top": digits[:, 1]}
    targets["multi"] = np.stack([np.bincount(row, minlength=10) > 0 for row in digits])
    (tmp_path / "parameters.json").write_text(json.dumps({"width": width, "height": height}))
    return images.astype(np.uint8), targets


def test_non_square_round_trip(tmp_path) -> None:
    images, targets = non_square(tmp_path)
    write_reference_mnist(tmp_path, "train", images, targets)
    dataset = ReferenceMegapixelMNIST(tmp_path, "train")
    assert dataset.image_shape == (1, 30, 50)
    for i, image in enumerate(images):
        assert np.array_equal(dataset.dense(i), image)
        sparse, item_targets = dataset[i]
        assert torch.equal(SparseBatch.collate([sparse]).to_dense("cpu")[0, 0], torch.from_numpy(image))
        assert item_targets["multi"].tolist() == targets["multi"][i].astype(int).tolist()


def test_errors_name_what_is_wrong(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"parameters\.json: not found"):
        ReferenceMegapixelMNIST(tmp_path)
    (tmp_path / "parameters.json").write_text(json.dumps({"width": 10}))
    with pytest.raises(ValueError, match=r"lacks key\(s\) \['height'\]"):
        ReferenceMegapixelMNIST(tmp_path)
    images, targets = non_square(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"train\.npy: not found"):
        ReferenceMegapixelMNIST(tmp_path)
    (tmp_path / "train.npy").write_text("garbage")
    with pytest.raises(ValueError, match=r"train\.npy: not a reference Megapixel MNIST file"):
        ReferenceMegapixelMNIST(tmp_path)
    np.save(tmp_path / "train.npy", np.zeros(3))
    with pytest.raises(ValueError, match="expected a list of dicts"):
        ReferenceMegapixelMNIST(tmp_path)
    write_reference_mnist(tmp_path, "train", images, targets | {"top": np.zeros((3, 2), int)})
    with pytest.raises(ValueError, match=r"item 0: \['top'\] must each be one integer"):
        ReferenceMegapixelMNIST(tmp_path)
    (tmp_path / "parameters.json").write_text(json.dumps({"width": 10, "height": 10}))
    write_reference_mnist(tmp_path, "train", images, targets)
    with pytest.raises(ValueError, match=r"beyond the 100 pixels of parameters\.json"):
        ReferenceMegapixelMNIST(tmp_path)
    with pytest.raises(ValueError, match="unknown Megapixel MNIST task"):
        ReferenceMegapixelMNIST(tmp_path, "train", ["parity"])
