"""Small real datasets built from the photos shipped in scikit-image's wheel (skimage/data), in every layout dbps reads.

Each `make_*` function writes into a given folder and returns the root to point a reader at. The photos are
cropped and downscaled to mixed small sizes and saved in mixed modes, so the files are tiny and quick to decode.
"""

from __future__ import annotations

import importlib.util
import io
import json
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = {
    "fundus": ["retina.jpg"],
    "scene": [
        "hubble_deep_field.jpg",
        "motorcycle_left.png",
        "coffee.png",
        "astronaut.png",
        "rocket.jpg",
        "chelsea.png",
    ],
    "texture": ["grass.png", "gravel.png", "brick.png", "ihc.png"],
}
# every way an image file is written; the folder dataset cycles through them so each one appears
KINDS = (
    "jpeg", "png16", "grey", "palette", "rgba", "la", "cmyk_jpeg", "cmyk_tiff", "webp", "truncated", "exif", "tiff16"
)
EXIF_ORIENTATION = 0x0112
TRAFFIC_SETS = {
    "Set1": [
        ("empty.jpg", ""),
        ("misc_only.jpg", "MISC_SIGNS;"),
        ("seventy.jpg", "VISIBLE, 100.5, 80.2, 60.1, 40.3, PROHIBITORY, 70_SIGN;"),
        ("visibility_first.jpg", "OCCLUDED, 120, 90, 20, 10, PROHIBITORY, 50_SIGN;"
                                 "VISIBLE, 50, 40, 40, 30, PROHIBITORY, 80_SIGN;"),
        ("larger_wins.jpg", "VISIBLE, 30, 30, 20, 20, PROHIBITORY, 50_SIGN;"
                            "VISIBLE, 90l, 90, 10, 10, PROHIBITORY, 80_SIGN"),
        ("blurred_best.jpg", "BLURRED, 60, 60, 10, 10, PROHIBITORY, 70_SIGN;"),
        ("other_only.jpg", "VISIBLE, 60, 60, 10, 10, WARNING, PEDESTRIAN_CROSSING;"),
        ("with_other.jpg", "VISIBLE, 90, 90, 10, 10, OTHER, PASS_RIGHT_SIDE;"
                           "SIDE_ROAD, 40, 40, 20, 20, PROHIBITORY, 50_SIGN;"
                           "VISIBLE, 40, 40, 30, 30, PROHIBITORY, 50_SIGN"),
    ],
    "Set2": [
        ("empty2.jpg", ""),
        ("fifty.jpg", "VISIBLE, 70.1, 70.9, 40.2, 40.0, PROHIBITORY, 50_SIGN;"),
        ("eighty.jpg", "VISIBLE, 70, 70, 40, 40, PROHIBITORY, 80_SIGN;MISC_SIGNS;"),
        ("side_road.jpg", "SIDE_ROAD, 70, 70, 40, 40, PROHIBITORY, 80_SIGN;"),
    ],
}
TRAFFIC_LABELS = {  # what the reference rules give each line above; None = dropped
    "empty.jpg": 0, "misc_only.jpg": 0, "seventy.jpg": 2, "visibility_first.jpg": 3, "larger_wins.jpg": 3,
    "blurred_best.jpg": None, "other_only.jpg": None, "with_other.jpg": 1,
    "empty2.jpg": 0, "fifty.jpg": 1, "eighty.jpg": 3, "side_road.jpg": None,
}


def skimage_data() -> Path:
    """The folder of photos inside the installed scikit-image wheel (a test dependency)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("scikit-image is not installed: pip install -e '.[dev]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@cache
def _photo(name: str) -> Image.Image:
    """A photo as RGB, downscaled to at most 400 px a side (plenty for crops of up to 200 px)."""
    with Image.open(skimage_data() / name) as image:
        image = image.convert("RGB")
        image.thumbnail((400, 400))
        return image


def photo_crop(name: str, rng: np.random.Generator, height: int, width: int) -> Image.Image:
    """A random crop of half to all of the photo, resized to height × width, RGB."""
    photo = _photo(name)
    scale = rng.uniform(0.5, 1.0)
    crop_w, crop_h = max(8, int(photo.width * scale)), max(8, int(photo.height * scale))
    left, top = int(rng.integers(0, photo.width - crop_w + 1)), int(rng.integers(0, photo.height - crop_h + 1))
    return photo.crop((left, top, left + crop_w, top + crop_h)).resize((width, height), Image.Resampling.BILINEAR)


def _sixteen_bit(image: Image.Image) -> Image.Image:
    grey = np.asarray(image.convert("L")).astype(np.uint16) * 257  # the full 16-bit range
    return Image.fromarray(grey)


def save_as(image: Image.Image, path: Path, kind: str) -> Path:
    """Write an RGB image as one of KINDS; returns the file written (its suffix follows the kind)."""
    if kind in ("jpeg", "truncated", "exif", "cmyk_jpeg"):
        path = path.with_suffix(".jpg")
        buffer = io.BytesIO()
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = 6  # stored rotated: viewers turn it 90° clockwise
        source = image.convert("CMYK") if kind == "cmyk_jpeg" else image
        source.save(buffer, format="JPEG", quality=90, exif=exif if kind == "exif" else Image.Exif())
        data = buffer.getvalue()
        path.write_bytes(data[: len(data) * 6 // 10] if kind == "truncated" else data)
        return path
    if kind in ("cmyk_tiff", "tiff16"):
        path = path.with_suffix(".tif")
        (image.convert("CMYK") if kind == "cmyk_tiff" else _sixteen_bit(image)).save(path, format="TIFF")
        return path
    if kind == "webp":
        path = path.with_suffix(".webp")
        image.save(path, format="WEBP", quality=90)
        return path
    path = path.with_suffix(".png")
    if kind == "palette":
        palette = image.quantize(32)
        palette.info["transparency"] = 0  # palette entry 0 is transparent
        palette.save(path, transparency=0)
        return path
    alpha = Image.linear_gradient("L").resize(image.size)
    converted = {
        "png16": lambda: _sixteen_bit(image),
        "grey": lambda: image.convert("L"),
        "rgba": lambda: Image.merge("RGBA", (*image.split(), alpha)),
        "la": lambda: Image.merge("LA", (image.convert("L"), alpha)),
    }[kind]()
    converted.save(path, format="PNG")
    return path


def make_photo_folder(root: Path, per_split: tuple[int, int, int] = (4, 2, 2), seed: int = 0) -> Path:
    """root/{train,val,test}/{fundus,scene,texture}/ with per_split images per class, in mixed sizes and modes.

    Sizes are 60–200 px a side. Every kind of file in KINDS appears; train also holds a hidden file and a text
    file, which readers must skip.
    """
    rng = np.random.default_rng(seed)
    count = 0
    for split, n in zip(("train", "val", "test"), per_split, strict=True):
        for label, names in PHOTOS.items():
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                height, width = (int(v) for v in rng.integers(60, 201, size=2))
                image = photo_crop(names[(count + i) % len(names)], rng, height, width)
                save_as(image, folder / f"{label}_{i:02d}", KINDS[count % len(KINDS)])
                count += 1
    (root / "train" / "scene" / ".hidden.jpg").write_bytes(b"not an image")
    (root / "train" / "scene" / "notes.txt").write_text("not an image either")
    return root


def make_ddr_layout(root: Path, seed: int = 0) -> Path:
    """DDR-style grading lists: root/DR_grading/{train,valid,test}.txt (`name grade`) and the JPEGs they name.

    Train has two images of each grade 0–5 (5 = ungradable), valid and test one of each.
    """
    rng = np.random.default_rng(seed)
    grading = root / "DR_grading"
    for stem, repeats in (("train", 2), ("valid", 1), ("test", 1)):
        (grading / stem).mkdir(parents=True, exist_ok=True)
        lines = []
        for grade in [g for g in range(6) for _ in range(repeats)]:
            name = f"{stem}-{len(lines):03d}.jpg"
            photo_crop("retina.jpg", rng, 96, 96).save(grading / stem / name, quality=90)
            lines.append(f"{name} {grade}")
        (grading / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    return root


def make_csv_list(root: Path, seed: int = 0) -> Path:
    """root/labels.csv with a header and rows `images/<file>,<class name>,<split>`; returns the CSV's path."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rows = ["path,label,split"]
    for split, n in (("train", 3), ("valid", 1), ("test", 1)):
        for label, names in PHOTOS.items():
            for i in range(n):
                name = f"images/{split}_{label}_{i}.png"
                photo_crop(names[i % len(names)], rng, 80, 100).save(root / name)
                rows.append(f"{name},{label},{split}")
    path = root / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def make_traffic_signs(root: Path, seed: int = 0) -> Path:
    """root/Set1 and root/Set2, each with annotations.txt (TRAFFIC_SETS) and 96×128 JPEGs (a tenth of 960×1280)."""
    rng = np.random.default_rng(seed)
    for set_name, lines in TRAFFIC_SETS.items():
        folder = root / set_name
        folder.mkdir(parents=True, exist_ok=True)
        for i, (name, _) in enumerate(lines):
            photo_crop(PHOTOS["scene"][i % len(PHOTOS["scene"])], rng, 96, 128).save(folder / name, quality=90)
        (folder / "annotations.txt").write_text("".join(f"{name}:{signs}\n" for name, signs in lines))
    return root


def write_reference_mnist(root: Path, split: str, images: np.ndarray, targets: dict[str, np.ndarray]) -> None:
    """Write uint8 images (n, H, W) as the reference generator does: a pickled list of sparse dicts, values in 0..1."""
    records = []
    for i, image in enumerate(images):
        flat = image.astype(np.float32).ravel() / 255
        nonzero = np.where(flat != 0)  # the generator keeps np.where's 1-tuple
        record = {"input": (nonzero, flat[nonzero])}
        record |= {key: targets[key][i] for key in ("majority", "max", "top")}
        records.append(record | {"multi": targets["multi"][i].astype(float)})
    np.save(root / f"{split}.npy", np.array(records, dtype=object), allow_pickle=True)


def make_reference_mnist(root: Path, n_train: int = 8, n_test: int = 4, size: int = 200, seed: int = 0) -> Path:
    """Reference-format Megapixel MNIST (parameters.json, train.npy, test.npy) of images made by dbps's generator.

    The generated dataset it was converted from is kept in root/generated for comparison.
    """
    from dbps.data import MegapixelMNIST, make_megapixel_mnist

    generated = make_megapixel_mnist(
        root / "generated", n_train=n_train, n_test=n_test, size=size, n_noise=8, seed=seed, progress=False
    )
    for split in ("train", "test"):
        dataset = MegapixelMNIST(generated, split)
        images = np.stack([dataset.dense(i) for i in range(len(dataset))])
        items = [dataset[i][1] for i in range(len(dataset))]
        targets = {key: np.stack([item[key].numpy() for item in items]) for key in items[0]}
        write_reference_mnist(root, split, images, targets)
    parameters = {"n_train": n_train, "n_test": n_test, "width": size, "height": size, "noise": True}
    (root / "parameters.json").write_text(json.dumps(parameters | {"n_noise": 8, "seed": seed}, indent=4))
    return root
