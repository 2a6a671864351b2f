"""Class-folder datasets: root/{train,val,test}/<class>/* with the class index given by the sorted training folders."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from dbps.data.image_dataset import ImageDataset, SplitFiles
from dbps.data.images import IMAGE_EXTENSIONS, is_image_file

SPLIT_FOLDERS = {"train": ("train",), "val": ("val", "valid"), "test": ("test",)}


def image_files(folder: Path) -> list[Path]:
    """Image files under `folder`, recursively (symbolic links followed), hidden files and folders skipped, sorted."""
    found = []
    for parent, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = [name for name in dirs if not name.startswith(".")]
        found += [Path(parent) / name for name in names if is_image_file(name)]
    return sorted(found)


def scan_split(split_dir: str | Path, classes: Sequence[str] | None = None) -> SplitFiles:
    """The images of one split folder, labelled by their class folder.

    Args:
        split_dir: a folder of class folders.
        classes: the training classes; None makes them the sorted class folder names of `split_dir`.

    Raises:
        FileNotFoundError: `split_dir` is missing.
        ValueError: no class folders, a class folder with no image, or a class folder unknown to `classes`.
    """
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise FileNotFoundError(f"{split_dir}: no such folder (expected one sub-folder of images per class)")
    folders = sorted(entry for entry in split_dir.iterdir() if entry.is_dir() and not entry.name.startswith("."))
    if not folders:
        raise ValueError(f"{split_dir}: no class folders (expected {split_dir}/<class>/<image>)")
    names = [folder.name for folder in folders]
    classes = list(names if classes is None else classes)
    unknown = [name for name in names if name not in classes]
    if unknown:
        raise ValueError(f"{split_dir}: class folder(s) {unknown} are not among the training classes {classes}")
    paths: list[Path] = []
    labels: list[int] = []
    for folder in folders:
        files = image_files(folder)
        if not files:
            raise ValueError(f"{folder}: no image files (extensions {', '.join(IMAGE_EXTENSIONS)})")
        paths += files
        labels += [classes.index(folder.name)] * len(files)
    return SplitFiles(paths, labels, classes)


def _split_folder(root: Path, split: str) -> Path | None:
    present = [root / name for name in SPLIT_FOLDERS[split] if (root / name).is_dir()]
    if len(present) > 1:
        raise ValueError(f"{root}: both {present[0].name}/ and {present[1].name}/ exist; keep one validation folder")
    return present[0] if present else None


def folder_splits(root: str | Path) -> dict[str, SplitFiles]:
    """Scan root/train, root/test and the optional root/val (or root/valid) class folders.

    The class index is the position of the folder name among the sorted training class folders; a validation or
    test class folder that training lacks is an error, while a training class that another split lacks is fine.

    Returns:
        {'train': ..., 'test': ...} plus 'val' when the folder exists.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such dataset folder")
    folders = {split: _split_folder(root, split) for split in ("train", "val", "test")}
    for split in ("train", "test"):
        if folders[split] is None:
            raise FileNotFoundError(f"{root / split}: no such folder (expected {root}/{{train,test}}/<class>/<image>)")
    splits = {"train": scan_split(folders.pop("train"))}  # type: ignore[arg-type]
    splits |= {split: scan_split(folder, splits["train"].classes) for split, folder in folders.items() if folder}
    return splits


class ImageFolderDataset(ImageDataset):
    """One split folder of class folders as an `ImageDataset`.

    Args:
        split_dir: a folder of class folders.
        classes: the training classes (class index = position); None takes the sorted folder names of `split_dir`.
        channels, resize, task_names, fast_jpeg: as for `ImageDataset`.
    """

    def __init__(
        self,
        split_dir: str | Path,
        classes: Sequence[str] | None = None,
        *,
        channels: int = 3,
        resize: tuple[int, int] | None = None,
        task_names: Sequence[str] = ("label",),
        fast_jpeg: bool = False,
    ) -> None:
        files = scan_split(split_dir, classes)
        super().__init__(files, channels=channels, resize=resize, task_names=task_names, fast_jpeg=fast_jpeg)
