"""A labelled list of image files as a Dataset: decoded and resized in DataLoader workers, one label for every task."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import Dataset

from dbps.data.images import read_image


class SplitFiles(NamedTuple):
    """The images of one split, their class indices, and the class names (index = position)."""

    paths: list[Path]
    labels: list[int]
    classes: list[str]


def check_files_exist(paths: Sequence[Path], origin: str | Path, show: int = 3) -> None:
    """Raise FileNotFoundError naming the first few missing files of `paths` (listed in `origin`) and their count."""
    missing = [path for path in paths if not path.is_file()]
    if missing:
        shown = ", ".join(str(path) for path in missing[:show])
        more = f" and {len(missing) - show} more" if len(missing) > show else ""
        raise FileNotFoundError(f"{origin}: {len(missing)} listed image(s) missing: {shown}{more}")


class ImageDataset(Dataset):
    """Images and their labels; items are (uint8 C×H×W tensor, {task: label}).

    Args:
        files: the split's paths, labels and class names.
        channels: 1 or 3 channels per image.
        resize: (height, width) every image is resized to (antialiased bilinear, as the reference), or None to
            keep each image's native size (then images of one batch differ in size).
        task_names: tasks that all receive the image's label (the reference gives the folder label to every task).
        fast_jpeg: decode large JPEGs at a reduced DCT scale before resizing (see `read_image`).
    """

    def __init__(
        self,
        files: SplitFiles,
        *,
        channels: int = 3,
        resize: tuple[int, int] | None = None,
        task_names: Sequence[str] = ("label",),
        fast_jpeg: bool = False,
    ) -> None:
        if len(files.paths) != len(files.labels):
            raise ValueError(f"{len(files.paths)} paths but {len(files.labels)} labels")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        if resize is not None and (len(resize) != 2 or min(resize) < 1):
            raise ValueError(f"resize must be (height, width) of positive ints or None, got {resize!r}")
        if not task_names:
            raise ValueError("task_names is empty: name at least one task")
        bad = [label for label in files.labels if not 0 <= label < len(files.classes)]
        if bad:
            raise ValueError(f"label {bad[0]} is outside the {len(files.classes)} classes {files.classes}")
        self.paths = list(files.paths)
        self.classes = list(files.classes)
        self._labels = list(files.labels)
        self.channels = channels
        self.resize = tuple(resize) if resize is not None else None
        self.task_names = list(task_names)
        self.fast_jpeg = fast_jpeg

    def __len__(self) -> int:
        return len(self.paths)

    def labels(self) -> list[int]:
        """Every image's class index, without decoding anything (for class counts and balanced sampling)."""
        return list(self._labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        image = read_image(self.paths[i], self.channels, self.resize, fast_jpeg=self.fast_jpeg)  # type: ignore[arg-type]
        return image, {name: torch.tensor(self._labels[i], dtype=torch.long) for name in self.task_names}
