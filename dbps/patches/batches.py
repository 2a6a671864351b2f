"""The patch source of each batch kind of `dbps.data`, and where an instance's patches lie (for its attention).

Batches come from data/, the floor below; the sources they become live here. `batch_source(group, dtype)` is the
patch source of a group (`Batch.groups` yields only groups that have one), with the training erasing that
`augment` armed applied to it; `batch_overlay(group, index, source)` says where instance `index`'s patches lie,
given the group's own source, open. Both dispatch on the batch's class: a batch kind defined elsewhere registers
its own with `batch_source.register(MyBatch)` and `batch_overlay.register(MyBatch)`.
"""

from __future__ import annotations

from functools import singledispatch

import torch

from dbps.data.batch_protocol import ArmedErasing, Batch, ImageOverlay, Level0Overlay, Overlay
from dbps.data.batches import FeatureBatch, ImageBatch, RaggedImageBatch, SlideBatch, SparseImageBatch
from dbps.data.stain_augment import slide_stain
from dbps.patches.erasing import ErasedPatches
from dbps.patches.grid import grid_coords, to_pair
from dbps.patches.sources import FeaturePatches, ImagePatches, PatchSource
from dbps.wsi import SlidePatches


def _unregistered(what: str, batch: object) -> TypeError:
    return TypeError(f"no {what} for a {type(batch).__name__}: register one with "
                     f"dbps.patches.{what}.register({type(batch).__name__})")


@singledispatch
def batch_source(batch: Batch, dtype: torch.dtype = torch.float32) -> PatchSource:
    """The patch source of one group of a batch, its patches fetched as `dtype` (integer images are scaled)."""
    raise _unregistered("batch_source", batch)


@singledispatch
def batch_overlay(batch: Batch, index: int, source: PatchSource) -> Overlay | None:
    """Where the patches of instance `index` of a group lie (`source`: the group's own, open), for pictures and
    tables of its attention; None when it has no positions (feature bags without coordinates)."""
    raise _unregistered("batch_overlay", batch)


def erased(source: PatchSource, erasing: ArmedErasing | None) -> PatchSource:
    """`source` with the armed training erasing applied (drawn now, so every fetch of the group sees the same)."""
    if erasing is None:
        return source
    return ErasedPatches(source, fraction=erasing.fraction, area=erasing.area, generator=erasing.generator)


@batch_source.register
def _image_source(batch: ImageBatch, dtype: torch.dtype = torch.float32) -> PatchSource:
    s = batch.spec
    return erased(ImagePatches(batch.images, s.size, s.stride, mean=s.mean, std=s.std, dtype=dtype), batch.armed)


@batch_overlay.register
def _image_overlay(batch: ImageBatch, index: int, source: PatchSource) -> ImageOverlay:
    image = batch.images[index].float().cpu().numpy()
    pixels = image / 255.0 if not batch.images.is_floating_point() else image
    height, width = batch.images.shape[-2:]
    coords = grid_coords(height, width, batch.spec.size, batch.spec.stride).numpy()
    return ImageOverlay(pixels, coords, to_pair(batch.spec.size, "patch_size"))


@batch_source.register
def _sparse_source(batch: SparseImageBatch, dtype: torch.dtype = torch.float32) -> PatchSource:
    return batch_source(batch.dense(), dtype)


@batch_overlay.register
def _sparse_overlay(batch: SparseImageBatch, index: int, source: PatchSource) -> ImageOverlay:
    return _image_overlay(batch.dense(), index, source)


@batch_source.register
def _ragged_source(batch: RaggedImageBatch, dtype: torch.dtype = torch.float32) -> PatchSource:
    (group,) = batch.groups(len(batch))  # a single group, or the caller should have split the batch
    return batch_source(group, dtype)


@batch_overlay.register
def _ragged_overlay(batch: RaggedImageBatch, index: int, source: PatchSource) -> ImageOverlay:
    return _image_overlay(ImageBatch(batch.images[index].unsqueeze(0), {}, batch.spec), 0, source)


@batch_source.register
def _feature_source(batch: FeatureBatch, dtype: torch.dtype = torch.float32) -> PatchSource:
    lengths = {bag.features.shape[0] for bag in batch.bags}
    if len(lengths) != 1:
        raise ValueError(f"feature bags of lengths {sorted(lengths)} need `groups` before `source`")
    return FeaturePatches(torch.stack([bag.features for bag in batch.bags]).to(dtype))


@batch_overlay.register
def _feature_overlay(batch: FeatureBatch, index: int, source: PatchSource) -> Level0Overlay | None:
    coords = batch.bags[index].coords
    return Level0Overlay(coords.numpy()) if coords is not None else None  # feature bags: coordinates as they are


@batch_source.register
def _slide_source(batch: SlideBatch, dtype: torch.dtype = torch.float32) -> PatchSource:
    if len(batch.refs) != 1:
        raise ValueError("a batch of slides needs `groups` before `source`: each slide is its own source")
    ref, spec = batch.refs[0], batch.spec
    source = SlidePatches.from_coords_file(
        ref.slide, ref.coords, mean=spec.mean, std=spec.std, dtype=dtype, device=batch.device,
        num_workers=batch.read_threads,
    )
    jitter = spec.stain_jitter if batch.jitter_seeds is not None else None
    if spec.stain_norm is not None or jitter is not None:
        seed = batch.jitter_seeds[0] if batch.jitter_seeds else 0
        source.transform = slide_stain(source, spec.stain_norm, jitter, seed)  # type: ignore[arg-type]
    return source


@batch_overlay.register
def _slide_overlay(batch: SlideBatch, index: int, source: PatchSource) -> Level0Overlay:
    if not isinstance(source, SlidePatches):
        raise TypeError(f"a slide's overlay needs its own SlidePatches, got {type(source).__name__}")
    return Level0Overlay(source.coords().numpy(), source.patch_size_level0, source.reader)
