"""`SlidePatches`: a PatchSource reading slide patches by index, with prefetch of the next chunk."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from dbps.patches import PatchSource
from dbps.selection import PatchSelector
from dbps.wsi import SlidePatches, SlideReader, open_slide, read_patch, write_coords

pytest_plugins = ["tests.wsi_data"]


class CountingSlide:
    """A two-level slide whose pixel at level-0 (x, y) is (x mod 256, y mod 256, (x + y) mod 256); counts reads."""

    path = Path("counting")
    dimensions = (4096, 4096)
    level_dimensions = ((4096, 4096), (2048, 2048))
    level_downsamples = (1.0, 2.0)
    mpp, magnification = 0.5, 20.0
    offset = (0, 0)

    def __init__(self) -> None:
        self.reads = 0
        self._lock = threading.Lock()

    def read_region(self, xy: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        with self._lock:
            self.reads += 1
        step = int(self.level_downsamples[level])
        xs = xy[0] + np.arange(size[0]) * step
        ys = xy[1] + np.arange(size[1]) * step
        grid_x, grid_y = np.meshgrid(xs, ys)
        return np.stack([grid_x % 256, grid_y % 256, (grid_x + grid_y) % 256], axis=-1).astype(np.uint8)

    def thumbnail(self, max_side: int) -> np.ndarray:
        return self.read_region((0, 0), 1, (max_side, max_side))

    def close(self) -> None:
        pass

    def __enter__(self) -> CountingSlide:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


COORDS = np.array([[0, 0], [100, 37], [1000, 2000], [3000, 5], [17, 3900], [2048, 2048]], dtype=np.int64)
MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def _expected(slide: SlideReader, indices: list[int], size0: int, size: int) -> torch.Tensor:
    """Brute force: read each patch, scale to [0, 1], normalise per channel."""
    patches = [read_patch(slide, tuple(COORDS[i]), size0, size) for i in indices]
    pixels = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float() / 255
    return ((pixels - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)).unsqueeze(0)


def test_fetch_reads_exactly_the_requested_patches_normalised() -> None:
    slide = CountingSlide()
    with SlidePatches(slide, COORDS, 64, 32, mean=MEAN, std=STD, num_workers=2) as source:
        assert isinstance(source, PatchSource) and isinstance(slide, SlideReader)
        assert (source.batch_size, source.num_patches, source.device) == (1, 6, torch.device("cpu"))
        assert torch.equal(source.coords(), torch.from_numpy(COORDS))
        idx = torch.tensor([[5, 0, 2, 2]])
        patches = source.fetch(idx)
        assert patches.shape == (1, 4, 3, 32, 32) and patches.dtype == torch.float32
        assert torch.allclose(patches, _expected(slide, [5, 0, 2, 2], 64, 32), atol=1e-6)
        raw = (patches[0, 1] * torch.tensor(STD).view(3, 1, 1) + torch.tensor(MEAN).view(3, 1, 1)) * 255
        assert raw[0, 0, 1].round() == 2 and raw[1, 1, 0].round() == 2  # level 1: every other level-0 pixel
    with pytest.raises(ValueError, match="indices must be \\(1, n\\)"):
        SlidePatches(CountingSlide(), COORDS, 64, 32).fetch(torch.zeros(2, 3, dtype=torch.long))


def test_prefetched_chunk_is_returned_without_reading_again() -> None:
    slide = CountingSlide()
    with SlidePatches(slide, COORDS, 32, 32, mean=MEAN, std=STD, dtype=torch.float64) as source:
        chunk = torch.tensor([[1, 3, 4]])
        source.prefetch(chunk)
        patches = source.fetch(chunk)
        assert slide.reads == 3 and patches.dtype == torch.float64
        assert torch.allclose(patches.float(), _expected(slide, [1, 3, 4], 32, 32), atol=1e-6)
        source.prefetch(torch.tensor([[0, 1]]))  # superseded: a different chunk is asked for
        other = source.fetch(torch.tensor([[2]]))
        assert torch.allclose(other.float(), _expected(slide, [2], 32, 32), atol=1e-6)
        again = source.fetch(chunk)  # no stale prefetch is handed out
        assert torch.allclose(again, patches)


def test_memory_is_flat_in_the_number_of_patches() -> None:
    """Chunked reading with prefetch keeps at most two chunks of pixels in flight, whatever N is."""
    import tracemalloc

    peaks = []
    for count in (64, 1024):
        coords = np.stack([np.arange(count) % 60 * 64, np.arange(count) // 60 * 64], axis=1)
        with SlidePatches(CountingSlide(), coords, 64, 64, num_workers=2) as source:
            chunks = torch.arange(count).view(-1, 32)
            tracemalloc.start()
            source.prefetch(chunks[:1])
            for i in range(len(chunks)):
                source.fetch(chunks[i : i + 1])
                if i + 1 < len(chunks):
                    source.prefetch(chunks[i + 1 : i + 2])
            peaks.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0]  # 16× the patches, about the same peak


def test_a_source_keeps_no_python_objects_per_patch() -> None:
    """The index of a slide's patches is its (N, 2) array, not N Python objects (a list costs ~140 bytes a patch)."""
    import tracemalloc

    count = 200_000
    coords = np.stack([np.arange(count) % 600 * 256, np.arange(count) // 600 * 256], axis=1)
    tracemalloc.start()
    with SlidePatches(CountingSlide(), coords, 256, 32) as source:
        held = tracemalloc.get_traced_memory()[0]
        assert source.fetch(torch.tensor([[count - 1]])).shape == (1, 1, 3, 32, 32)
    tracemalloc.stop()
    assert held < 1_000_000  # 16 bytes a patch would be 3.2 MB; the coordinates array itself is shared


@pytest.mark.parametrize("method", ["ips", "dbps"])
def test_a_training_step_reads_the_slide_at_most_two_chunks_ahead_of_the_encoder(method: str) -> None:
    """Selection streams the slide: patches read but not yet embedded never exceed the chunk and the prefetched one."""
    from dbps.engine.step import forward_backward
    from tests.conftest import tiny_model

    slide, chunk, salient = CountingSlide(), 16, 4
    coords = np.stack([np.arange(256) % 16 * 256, np.arange(256) // 16 * 256], axis=1)
    model = tiny_model(in_chans=3)
    embedded, ahead = [0], []
    embed = model.embed

    def counting_embed(patches: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled():
            ahead.append(slide.reads - embedded[0])
            embedded[0] += patches.shape[0]
        return embed(patches)

    model.embed = counting_embed  # type: ignore[method-assign]
    selector = PatchSelector(method, num_salient=salient, chunk_size=chunk, num_context=4 if method == "dbps" else None)
    with SlidePatches(slide, coords, 64, 16, num_workers=2) as source:
        forward_backward(model, selector, source, {"label": torch.tensor([1])})
    assert embedded[0] == len(coords) and slide.reads == len(coords) + salient  # each read once, the M again
    assert len(ahead) == len(coords) // chunk and max(ahead) <= 2 * chunk


def test_patches_from_a_coordinate_file_of_a_real_slide(he_pyramid, tmp_path) -> None:
    coords = np.array([[700, 900], [1200, 1500]], dtype=np.int64)
    path = tmp_path / "cmu.h5"
    write_coords(path, coords, {"patch_size": 128, "patch_size_level0": 256})
    with SlidePatches.from_coords_file(he_pyramid, path, mean=(0, 0, 0), std=(1, 1, 1)) as source:
        patches = source.fetch(torch.tensor([[1, 0]]))
        with open_slide(he_pyramid) as slide:
            expected = read_patch(slide, (1200, 1500), 256, 128)
    assert patches.shape == (1, 2, 3, 128, 128)
    assert torch.allclose(patches[0, 0], torch.tensor(expected).permute(2, 0, 1).float() / 255)


class DamagedSlide(CountingSlide):
    """Fails on the tiles right of x = 2000, as a slide with a corrupt region does."""

    def read_region(self, xy: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        if xy[0] >= 2000:
            raise ValueError(f"{self.path}: unreadable slide (bad tile)")
        return super().read_region(xy, level, size)


def test_a_read_error_in_a_worker_reaches_the_caller() -> None:
    with SlidePatches(DamagedSlide(), COORDS, 32, 32) as source:
        assert source.fetch(torch.tensor([[0, 1]])).shape == (1, 2, 3, 32, 32)
        source.prefetch(torch.tensor([[3]]))
        with pytest.raises(ValueError, match="counting: unreadable slide"):
            source.fetch(torch.tensor([[3]]))
