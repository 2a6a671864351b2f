"""`SlidePatches`: the patches of one slide as a `PatchSource`, read by index in a thread pool with prefetch.

Selection asks for a chunk of indices at a time; only those patches are read (best pyramid level + resize),
turned into floats on the device and normalised. `prefetch(next_chunk)` starts reading the next chunk in the
background while the current one is embedded; at most one chunk is in flight, so memory is flat in N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np
import torch
from torch import Tensor

from dbps.wsi.coords_io import read_coords
from dbps.wsi.reader import SlideReader, open_slide, read_patch


class SlidePatches:
    """N patches of one slide (batch size 1), read on demand: satisfies `dbps.patches.PatchSource`.

    Args:
        slide: a slide path, or an open reader (then the caller closes it).
        coords: (N, 2) level-0 top-left (x, y) of the patches.
        patch_size_level0: patch side in level-0 pixels.
        patch_size: side of the fetched patches (patch_size_level0 / patch_size is the downsample from level 0).
        mean: per-channel mean subtracted after scaling to [0, 1].
        std: per-channel standard deviation divided after that.
        dtype: floating dtype of fetched patches.
        device: where fetched patches go.
        num_workers: reading threads (OpenSlide decodes without holding the GIL).
        transform: applied to the float RGB patches in [0, 1] before mean/std: `transform(patches, indices, N)`
            (stain normalisation and augmentation, `dbps.data.stain_augment.PatchStain`).
    """

    def __init__(
        self,
        slide: str | Path | SlideReader,
        coords: np.ndarray | Tensor,
        patch_size_level0: int,
        patch_size: int,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        num_workers: int = 2,
        transform: Callable[[Tensor, Tensor, int], Tensor] | None = None,
    ) -> None:
        self.transform = transform
        coords = torch.as_tensor(coords, dtype=torch.int64).reshape(-1, 2).cpu()
        if num_workers < 1:
            raise ValueError(f"num_workers must be ≥ 1, got {num_workers}")
        self._owns_reader = not isinstance(slide, SlideReader)
        self.reader = open_slide(slide) if self._owns_reader else slide  # type: ignore[arg-type]
        self._coords = coords
        self._xy = coords.numpy()  # rows read by index: no Python objects per patch (~140 bytes each as lists)
        self.patch_size_level0 = int(patch_size_level0)
        self.patch_size = int(patch_size)
        self._device = torch.device(device)
        self._dtype = dtype
        self._mean = None if mean is None else torch.tensor(mean, dtype=dtype, device=self._device).view(-1, 1, 1)
        self._std = None if std is None else torch.tensor(std, dtype=dtype, device=self._device).view(-1, 1, 1)
        self._pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="slide-read")
        self._pending: tuple[Tensor, list[Future[np.ndarray]]] | None = None

    @classmethod
    def from_coords_file(
        cls, slide: str | Path | SlideReader, coords_path: str | Path, patch_size: int | None = None, **kwargs: object
    ) -> SlidePatches:
        """The patches listed in a CLAM or TRIDENT coordinate file, at its patch size unless `patch_size` is given."""
        reader = open_slide(slide) if not isinstance(slide, SlideReader) else slide
        try:
            found = read_coords(coords_path, reader)
            source = cls(reader, found.coords, found.patch_size_level0, patch_size or found.patch_size, **kwargs)
        except BaseException:
            if reader is not slide:
                reader.close()
            raise
        source._owns_reader = reader is not slide
        return source

    @property
    def batch_size(self) -> int:
        return 1

    @property
    def num_patches(self) -> int:
        return len(self._coords)

    @property
    def device(self) -> torch.device:
        return self._device

    def coords(self) -> Tensor:
        """Level-0 top-left (x, y) of each patch, (N, 2) int64."""
        return self._coords

    def _read(self, index: int) -> np.ndarray:
        x, y = self._xy[index]
        return read_patch(self.reader, (int(x), int(y)), self.patch_size_level0, self.patch_size)

    def _submit(self, idx: Tensor) -> tuple[Tensor, list[Future[np.ndarray]]]:
        idx = idx.detach().reshape(-1).cpu()
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.num_patches):
            raise IndexError(f"patch indices must be in [0, {self.num_patches}), got {idx.min()}..{idx.max()}")
        return idx, [self._pool.submit(self._read, index) for index in idx.tolist()]

    def _drop_pending(self) -> None:
        if self._pending is not None:
            for future in self._pending[1]:
                future.cancel()
            self._pending = None

    def prefetch(self, idx: Tensor) -> None:
        """Start reading the patches `idx` (1, n) in the background; a later `fetch(idx)` returns them at once."""
        self._drop_pending()  # one chunk in flight at most
        self._pending = self._submit(idx)

    def fetch(self, idx: Tensor) -> Tensor:
        """Patches `idx` (1, n) → (1, n, 3, patch_size, patch_size) in `dtype` on `device`, normalised."""
        if idx.dim() != 2 or idx.shape[0] != 1:
            raise ValueError(f"a slide is one instance: indices must be (1, n), got shape {tuple(idx.shape)}")
        patches = self.read_rgb(idx[0])
        if self.transform is not None:
            patches = self.transform(patches, idx[0], self.num_patches)
        if self._mean is not None:
            patches = patches - self._mean
        if self._std is not None:
            patches = patches / self._std
        return patches.unsqueeze(0)

    def read_rgb(self, idx: Tensor) -> Tensor:
        """Patches `idx` (n,) as float RGB in [0, 1], (n, 3, patch_size, patch_size), before any transform."""
        idx = idx.reshape(1, -1)
        pending = self._pending
        if pending is not None and torch.equal(pending[0], idx.detach().reshape(-1).cpu()):
            self._pending, futures = None, pending[1]
        else:
            self._drop_pending()
            futures = self._submit(idx)[1]
        size = self.patch_size
        pixels = np.empty((len(futures), size, size, 3), dtype=np.uint8)
        for row, future in enumerate(futures):
            pixels[row] = future.result()
        return torch.from_numpy(pixels).to(self._device).permute(0, 3, 1, 2).to(self._dtype) / 255.0

    def close(self) -> None:
        """Stop the reading threads (and close the slide when this source opened it)."""
        self._drop_pending()
        self._pool.shutdown(wait=True)
        if self._owns_reader:
            self.reader.close()

    def __enter__(self) -> SlidePatches:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
