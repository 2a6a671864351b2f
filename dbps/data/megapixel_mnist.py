"""Megapixel MNIST (Katharopoulos & Fleuret 2019; IPS): the generator and the dataset.

Each image is a dark square canvas with 3 digits of a target class, 2 digits of other classes and 50
placements of scribble noise. Four tasks: `majority` (the target class), `max` (largest of the 5 digit
labels), `top` (label of the top-most digit) and `multi` (multi-hot of the classes present). Images are
stored sparsely (flat indices and uint8 values of non-zero pixels, ~20 KB each) in memory-mapped .npy
files and densified only on the device that trains on them.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from dbps.config.schema import GenerateConfig
from dbps.data.digits import DigitPool, load_digit_pools
from dbps.data.sparse import SparseImage
from dbps.files import atomic_folder, read_json
from dbps.tasks import Activation, TaskSpec

DIGIT = 28
TASKS = (
    TaskSpec("majority", 10),
    TaskSpec("max", 10),
    TaskSpec("top", 10),
    TaskSpec("multi", 10, Activation.SIGMOID, "multilabel_accuracy"),
)
FORMAT_VERSION = 1
_ARRAYS = ("index", "values", "offsets", "digits", "positions")
DATASET_ENTRIES = ("meta.json", "train", "test")
GENERATE = GenerateConfig()  # the generator's defaults, written once: `data.generate`, `dbps make-data` and here


@dataclass(frozen=True)
class CanvasSpec:
    """Geometry of one image: canvas side, noise placements and the size of the noise bank."""

    size: int = GENERATE.size
    n_noise: int = GENERATE.n_noise
    n_patterns: int = 50
    n_positive: int = 3
    n_negative: int = 2


def scribble_bank(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` 28×28 noise patterns, each the union of two random straight lines, intensity × U(0.8, 1)."""
    bank = np.zeros((count, DIGIT, DIGIT), dtype=np.float32)
    for pattern in bank:
        for _ in range(2):
            (y0, x0), (y1, x1) = rng.integers(0, DIGIT, size=(2, 2))
            steps = max(abs(y1 - y0), abs(x1 - x0)) + 1
            pattern[np.linspace(y0, y1, steps).round().astype(int), np.linspace(x0, x1, steps).round().astype(int)] = 1
        pattern *= rng.uniform(0.8, 1.0)
    return (bank * 255).round().astype(np.uint8)


def place_boxes(rng: np.random.Generator, size: int, count: int, max_tries: int = 10_000) -> np.ndarray:
    """Top-left (y, x) of `count` non-overlapping 28×28 boxes on a size×size canvas, (count, 2)."""
    placed: list[tuple[int, int]] = []
    for _ in range(max_tries):
        y, x = (int(v) for v in rng.integers(0, size - DIGIT + 1, size=2))
        if all(abs(y - py) >= DIGIT or abs(x - px) >= DIGIT for py, px in placed):
            placed.append((y, x))
            if len(placed) == count:
                return np.array(placed, dtype=np.int32)
    raise ValueError(f"cannot place {count} non-overlapping digits on a {size}×{size} canvas")


def task_targets(digits: np.ndarray, positions: np.ndarray) -> dict[str, np.ndarray]:
    """Targets of the four tasks from digit labels (n, 5) and their top-left positions (n, 5, 2)."""
    counts = np.stack([np.bincount(row, minlength=10) for row in digits])
    # lexicographic (y, x): the top-most digit, the left-most on a tie
    top = np.lexsort((positions[..., 1], positions[..., 0]), axis=-1)[:, 0] if len(digits) else np.zeros(0, int)
    return {
        "majority": counts.argmax(axis=1),
        "max": digits.max(axis=1) if len(digits) else np.zeros(0, int),
        "top": digits[np.arange(len(digits)), top],
        "multi": (counts > 0).astype(np.int64),
    }


def task_names(tasks: list[str] | None) -> list[str]:
    """The requested Megapixel MNIST task names (all four when None); an unknown name is a ValueError."""
    names = [task.name for task in TASKS]
    unknown = sorted(set(tasks or []) - set(names))
    if unknown:
        raise ValueError(f"unknown Megapixel MNIST task(s) {unknown}; known: {names}")
    return list(tasks or names)


def draw_image(
    rng: np.random.Generator,
    canvas: np.ndarray,
    spec: CanvasSpec,
    pool: DigitPool,
    by_class: list[np.ndarray],
    bank: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image onto `canvas` (zeroed here); returns digit labels (5,) and positions (5, 2)."""
    canvas.fill(0)
    target = int(rng.integers(10))
    others = [c for c in range(10) if c != target]
    labels = np.array([target] * spec.n_positive + list(rng.choice(others, size=spec.n_negative)), dtype=np.int64)
    rng.shuffle(labels)
    corners = rng.integers(0, spec.size - DIGIT + 1, size=(spec.n_noise, 2))
    for (y, x), pattern in zip(corners, rng.integers(0, len(bank), size=spec.n_noise), strict=True):
        box = canvas[y : y + DIGIT, x : x + DIGIT]
        np.maximum(box, bank[pattern], out=box)
    positions = place_boxes(rng, spec.size, len(labels))
    for (y, x), label in zip(positions, labels, strict=True):
        canvas[y : y + DIGIT, x : x + DIGIT] = pool.images[rng.choice(by_class[label])]  # digits overwrite noise
    return labels, positions


def _generate_split(
    folder: Path, n: int, spec: CanvasSpec, pool: DigitPool, bank: np.ndarray, seed: int, progress: bool
) -> None:
    rng = np.random.default_rng(seed)
    by_class = pool.by_class()
    if any(len(members) == 0 for members in by_class):
        raise ValueError("the digit pool lacks some classes 0..9")
    canvas = np.zeros((spec.size, spec.size), dtype=np.uint8)
    flat = canvas.reshape(-1)
    index_dtype = np.int32 if spec.size * spec.size < 2**31 else np.int64
    index, values, digits, positions = [], [], np.zeros((n, 5), np.int64), np.zeros((n, 5, 2), np.int32)
    for i in tqdm(range(n), desc=f"making {folder.name}", unit="img", disable=not progress):
        digits[i], positions[i] = draw_image(rng, canvas, spec, pool, by_class, bank)
        nonzero = np.flatnonzero(flat)
        index.append(nonzero.astype(index_dtype))
        values.append(flat[nonzero])
    folder.mkdir(parents=True, exist_ok=True)
    offsets = np.concatenate([[0], np.cumsum([len(v) for v in values])]).astype(np.int64)
    arrays = {"index": np.concatenate(index), "values": np.concatenate(values), "offsets": offsets}
    arrays |= {"digits": digits, "positions": positions}
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)


def make_data_command(root: str | Path, *, n_train: int, n_test: int, size: int, n_noise: int, seed: int,
                      digits: str | Path | None) -> str:
    """The `dbps make-data` command that generates this dataset into `root`."""
    command = (f"dbps make-data megapixel-mnist --out {shlex.quote(str(root))} --n-train {n_train} "
               f"--n-test {n_test} --size {size} --noise {n_noise} --seed {seed}")
    return command + (f" --digits {shlex.quote(str(digits))}" if digits else "")


def make_megapixel_mnist(
    out: str | Path,
    *,
    n_train: int = GENERATE.n_train,
    n_test: int = GENERATE.n_test,
    size: int = GENERATE.size,
    n_noise: int = GENERATE.n_noise,
    seed: int = GENERATE.seed,
    digits: str | Path | None = GENERATE.digits,
    progress: bool = True,
) -> Path:
    """Generate Megapixel MNIST into `out` (train/ and test/ folders and meta.json). Deterministic per seed.

    Train images use the train digit pool and test images the test pool, so no digit appears in both. The
    dataset is built in a folder beside `out` and takes its place when complete: a failure leaves `out` as it
    was. An existing dataset in `out` is replaced; a folder holding anything else is refused.
    """
    out = Path(out)
    spec = CanvasSpec(size=size, n_noise=n_noise)
    if size < 3 * DIGIT:
        raise ValueError(f"size must be at least {3 * DIGIT} pixels, got {size}")
    _check_replaceable(out)
    pools = load_digit_pools(digits, seed=seed)
    seeds = np.random.SeedSequence(seed).spawn(3)
    bank = scribble_bank(np.random.default_rng(seeds[0]), spec.n_patterns)

    def build(folder: Path) -> None:
        for split, n, pool, split_seed in (
            ("train", n_train, pools.train, seeds[1]),
            ("test", n_test, pools.test, seeds[2]),
        ):
            _generate_split(folder / split, n, spec, pool, bank, split_seed, progress)
        meta = {"format": FORMAT_VERSION, "spec": asdict(spec), "seed": seed, "digits": pools.source}
        meta |= {"n_train": n_train, "n_test": n_test}
        (folder / "meta.json").write_text(json.dumps(meta, indent=2))

    atomic_folder(out, build)
    return out


def _check_replaceable(out: Path) -> None:
    """`out` is new, an empty folder, or a dataset of this generator (nothing else would be lost)."""
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} is a file, not a dataset folder")
    others = sorted(entry.name for entry in out.iterdir() if entry.name not in DATASET_ENTRIES) if out.is_dir() else []
    if others:
        shown = ", ".join(others[:5]) + (" …" if len(others) > 5 else "")
        raise FileExistsError(f"{out} holds files that are not a Megapixel MNIST dataset ({shown}); "
                              "choose an empty or new folder")


def _canvas_size(meta_path: Path) -> int:
    try:
        size = read_json(meta_path)["spec"]["size"]
    except (KeyError, TypeError):
        raise ValueError(f"{meta_path}: no spec.size, so not written by `dbps make-data megapixel-mnist`") from None
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"{meta_path}: spec.size must be a positive integer, got {size!r}")
    return size


def _load_arrays(folder: Path) -> dict[str, np.ndarray]:
    """The split's arrays, memory-mapped, after checking that they are readable and agree with each other."""
    missing = [name for name in _ARRAYS if not (folder / f"{name}.npy").is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(f'{m}.npy' for m in missing)}")
    arrays = {}
    for name in _ARRAYS:
        path = folder / f"{name}.npy"
        try:
            arrays[name] = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError) as exc:
            raise ValueError(f"{path}: not a readable .npy array, truncated or corrupt ({exc}); make the data "
                             "again") from None
    n, offsets = len(arrays["digits"]), np.asarray(arrays["offsets"])
    agree = (
        arrays["digits"].shape == (n, 5) and arrays["positions"].shape == (n, 5, 2) and offsets.shape == (n + 1,)
        and offsets[0] == 0 and np.all(np.diff(offsets) >= 0) and len(arrays["index"]) == len(arrays["values"])
        and offsets[-1] == len(arrays["index"])
    )
    if not agree:
        shapes = ", ".join(f"{name} {arrays[name].shape}" for name in _ARRAYS)
        raise ValueError(f"{folder}: the arrays disagree ({shapes}); make the data again")
    return arrays


class MegapixelMNIST(Dataset):
    """A generated Megapixel MNIST split; items are (SparseImage, {task: target tensor}).

    Args:
        root: folder written by `make_megapixel_mnist`.
        split: 'train' or 'test'.
        tasks: names of the tasks whose targets are returned (default: all four).
    """

    TASKS = TASKS

    def __init__(self, root: str | Path, split: str = "train", tasks: list[str] | None = None) -> None:
        self.root = Path(root)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{meta_path} not found: make the data with `dbps make-data megapixel-mnist`")
        self.size = _canvas_size(meta_path)
        self._arrays = _load_arrays(self.root / split)
        self.tasks = task_names(tasks)
        self._targets = task_targets(np.asarray(self._arrays["digits"]), np.asarray(self._arrays["positions"]))

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (1, self.size, self.size)

    def __len__(self) -> int:
        return len(self._arrays["digits"])

    def __getitem__(self, i: int) -> tuple[SparseImage, dict[str, torch.Tensor]]:
        start, stop = self._arrays["offsets"][i], self._arrays["offsets"][i + 1]
        image = SparseImage(
            torch.from_numpy(np.asarray(self._arrays["index"][start:stop], dtype=np.int64)),
            torch.from_numpy(np.array(self._arrays["values"][start:stop])),
            self.image_shape,
        )
        return image, {name: torch.as_tensor(self._targets[name][i]) for name in self.tasks}

    def dense(self, i: int) -> np.ndarray:
        """Image i as a dense uint8 array (size, size), for inspection and plots."""
        image = np.zeros(self.size * self.size, dtype=np.uint8)
        start, stop = self._arrays["offsets"][i], self._arrays["offsets"][i + 1]
        image[self._arrays["index"][start:stop]] = self._arrays["values"][start:stop]
        return image.reshape(self.size, self.size)
