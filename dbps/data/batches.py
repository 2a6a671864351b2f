"""Batches: what a loader yields, and how each kind moves to the device and splits into groups.

The engine never looks inside a batch. It moves it to the device (`to`), applies the training transforms
(`augment`), splits it into groups that share a patch count (`groups`: micro-batches, and images of different
sizes or bags of different lengths, which cannot share one tensor), asks `dbps.patches.batch_source` for each
group's patch source and, to show a prediction's attention, `dbps.patches.batch_overlay` for where each
instance's patches lie. Every kind of data — dense or sparse image batches, images of mixed sizes, feature bags,
slides — is one class here, so the loop, evaluation, prediction and benchmarks are the same code for all of
them. The protocol they follow, the patch spec, the erasing and the overlays are in `dbps.data.batch_protocol`
(and importable from here); their patch sources are one floor up, in `dbps.patches.batches`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from dbps.data.batch_protocol import (
    ArmedErasing,
    Batch,
    Erasing,
    ImageOverlay,
    ImageTransform,
    Level0Overlay,
    Overlay,
    PatchSpec,
    Targets,
)
from dbps.data.sparse import SparseBatch, SparseImage


def _slice_targets(targets: Targets, part: slice) -> Targets:
    return {name: target[part] for name, target in targets.items()}


def move_targets(targets: Targets, device: torch.device, non_blocking: bool = False) -> Targets:
    """Every target tensor on `device`."""
    return {name: target.to(device, non_blocking=non_blocking) for name, target in targets.items()}


def _runs(keys: Sequence[object], max_size: int) -> Iterator[slice]:
    """Slices of consecutive equal keys, each at most `max_size` long."""
    start = 0
    for end in range(1, len(keys) + 1):
        if end == len(keys) or keys[end] != keys[start] or end - start == max_size:
            yield slice(start, end)
            start = end


@dataclass
class ImageBatch:
    """B images of one size, B×C×H×W (uint8 or float), cut into patches on their device.

    Attributes:
        images: the pixels; integer images are scaled to [0, 1] patch by patch, never as a whole.
        targets: target tensor per task name.
        spec: patch grid and normalisation.
        transform: training transform of a uint8 batch (`augment` applies it), or None.
        erasing: training per-patch erasing (`augment` arms it), or None.
        armed: the erasing `augment` armed, applied to the batch's patch source, or None.
    """

    images: Tensor
    targets: Targets
    spec: PatchSpec
    transform: ImageTransform | None = field(default=None, repr=False)
    erasing: Erasing | None = None
    armed: ArmedErasing | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.images.shape[0]

    def to(self, device: torch.device, non_blocking: bool = False) -> ImageBatch:
        return dataclasses.replace(
            self, images=self.images.to(device, non_blocking=non_blocking),
            targets=move_targets(self.targets, device, non_blocking),
        )

    def pin_memory(self) -> ImageBatch:
        return dataclasses.replace(self, images=self.images.pin_memory())

    def tensors(self) -> Iterator[Tensor]:
        yield self.images
        yield from self.targets.values()

    def augment(self, generator: torch.Generator | None) -> ImageBatch:
        images = self.transform(self.images, generator) if self.transform is not None else self.images
        armed = self.erasing.armed(generator) if self.erasing is not None else None
        return dataclasses.replace(self, images=images, transform=None, erasing=None, armed=armed)

    def groups(self, max_size: int) -> Iterator[ImageBatch]:
        if max_size >= len(self):
            yield self
            return
        for start in range(0, len(self), max_size):
            part = slice(start, start + max_size)
            yield dataclasses.replace(self, images=self.images[part], targets=_slice_targets(self.targets, part))




@dataclass
class SparseImageBatch:
    """Sparse uint8 images of one size (Megapixel MNIST): only non-zero pixels travel; densified on arrival."""

    sparse: SparseBatch
    targets: Targets
    spec: PatchSpec
    transform: ImageTransform | None = field(default=None, repr=False)
    erasing: Erasing | None = None

    def __len__(self) -> int:
        return self.sparse.shape[0]

    def to(self, device: torch.device, non_blocking: bool = False) -> ImageBatch:
        images = self.sparse.to_dense(device, non_blocking)
        return ImageBatch(images, move_targets(self.targets, device, non_blocking), self.spec, self.transform,
                          self.erasing)

    def pin_memory(self) -> SparseImageBatch:
        return dataclasses.replace(self, sparse=self.sparse.pin_memory())

    def tensors(self) -> Iterator[Tensor]:
        yield from (self.sparse.index, self.sparse.values, *self.targets.values())

    def dense(self) -> ImageBatch:
        """This batch densified where it is (its patch source and overlays are the dense batch's)."""
        return self.to(self.sparse.index.device)

    def augment(self, generator: torch.Generator | None) -> ImageBatch:
        return self.dense().augment(generator)

    def groups(self, max_size: int) -> Iterator[ImageBatch]:
        return self.dense().groups(max_size)




@dataclass
class RaggedImageBatch:
    """Images of different sizes (native resolution): each keeps its own patch grid.

    `groups` stacks consecutive images of one size, so a batch of mixed sizes runs as several selections
    whose gradients accumulate into one optimiser step.
    """

    images: list[Tensor]
    targets: Targets
    spec: PatchSpec
    transform: ImageTransform | None = field(default=None, repr=False)
    erasing: Erasing | None = None
    armed: ArmedErasing | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device: torch.device, non_blocking: bool = False) -> RaggedImageBatch:
        images = [image.to(device, non_blocking=non_blocking) for image in self.images]
        return dataclasses.replace(self, images=images, targets=move_targets(self.targets, device, non_blocking))

    def pin_memory(self) -> RaggedImageBatch:
        return dataclasses.replace(self, images=[image.pin_memory() for image in self.images])

    def tensors(self) -> Iterator[Tensor]:
        yield from (*self.images, *self.targets.values())

    def augment(self, generator: torch.Generator | None) -> RaggedImageBatch:
        images = self.images
        if self.transform is not None:  # one image at a time: contrast must not average over another's pixels
            images = [self.transform(image.unsqueeze(0), generator)[0] for image in self.images]
        armed = self.erasing.armed(generator) if self.erasing is not None else None
        return dataclasses.replace(self, images=images, transform=None, erasing=None, armed=armed)

    def groups(self, max_size: int) -> Iterator[ImageBatch]:
        for part in _runs([tuple(image.shape) for image in self.images], max_size):
            stacked = torch.stack(self.images[part])
            yield ImageBatch(stacked, _slice_targets(self.targets, part), self.spec, armed=self.armed)




@dataclass
class FeatureBag:
    """One instance of pre-extracted patch features (N, F), with optional level-0 (x, y) coordinates (N, 2)."""

    features: Tensor
    coords: Tensor | None = None


@dataclass
class FeatureBatch:
    """Feature bags, possibly of different lengths; `groups` stacks consecutive bags of one length."""

    bags: list[FeatureBag]
    targets: Targets

    def __len__(self) -> int:
        return len(self.bags)

    def to(self, device: torch.device, non_blocking: bool = False) -> FeatureBatch:
        bags = [
            FeatureBag(bag.features.to(device, non_blocking=non_blocking), bag.coords) for bag in self.bags
        ]  # coordinates are only read for pictures and tables: they stay on the host
        return FeatureBatch(bags, move_targets(self.targets, device, non_blocking))

    def pin_memory(self) -> FeatureBatch:
        return FeatureBatch([FeatureBag(bag.features.pin_memory(), bag.coords) for bag in self.bags], self.targets)

    def tensors(self) -> Iterator[Tensor]:
        yield from (*(bag.features for bag in self.bags), *self.targets.values())

    def augment(self, generator: torch.Generator | None) -> FeatureBatch:
        return self

    def groups(self, max_size: int) -> Iterator[FeatureBatch]:
        for part in _runs([bag.features.shape[0] for bag in self.bags], max_size):
            yield FeatureBatch(self.bags[part], _slice_targets(self.targets, part))




@dataclass(frozen=True)
class Collate:
    """Turns a list of dataset items `(instance, {task: target})` into the batch kind their instances call for.

    Dense image tensors of one size → `ImageBatch`, of several sizes → `RaggedImageBatch`; `SparseImage` →
    `SparseImageBatch`; `FeatureBag` → `FeatureBatch`. A picklable object, so loader workers can use it.

    Attributes:
        spec: the patch grid and normalisation of image batches.
        transform: training transform for image batches (None for evaluation loaders).
        erasing: training per-patch erasing for image batches (None for evaluation loaders).
    """

    spec: PatchSpec
    transform: ImageTransform | None = None
    erasing: Erasing | None = None

    def __call__(self, items: list[tuple[object, Targets]]) -> Batch:
        instances = [item[0] for item in items]
        targets = {name: torch.stack([item[1][name] for item in items]) for name in items[0][1]}
        first = instances[0]
        if isinstance(first, SparseImage):
            sparse = SparseBatch.collate(instances)  # type: ignore[arg-type]
            return SparseImageBatch(sparse, targets, self.spec, self.transform, self.erasing)
        if isinstance(first, FeatureBag):
            return FeatureBatch(instances, targets)  # type: ignore[arg-type]
        if isinstance(first, Tensor):
            shapes = {tuple(image.shape) for image in instances}  # type: ignore[union-attr]
            if len(shapes) == 1:
                stacked = torch.stack(instances)  # type: ignore[arg-type]
                return ImageBatch(stacked, targets, self.spec, self.transform, self.erasing)
            return RaggedImageBatch(instances, targets, self.spec, self.transform, self.erasing)  # type: ignore[arg-type]
        if hasattr(first, "collate"):  # kinds defined elsewhere (e.g. slides) collate themselves
            return type(first).collate(instances, targets, self.spec)  # type: ignore[attr-defined]
        raise TypeError(f"cannot batch dataset items of type {type(first).__name__}")


@dataclass(frozen=True)
class SlideRef:
    """One slide of a dataset: its file and its patch coordinates file (read when the slide's turn comes)."""

    slide: Path
    coords: Path

    @classmethod
    def collate(cls, refs: list[SlideRef], targets: Targets, spec: PatchSpec) -> SlideBatch:
        return SlideBatch(refs, targets, spec)


@dataclass
class SlideBatch:
    """Slides of one step; each is its own group (slides differ in patch count) and its own patch source."""

    refs: list[SlideRef]
    targets: Targets
    spec: PatchSpec
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    read_threads: int = 2
    jitter_seeds: list[int] | None = None  # one HED-jitter draw per slide of the step, set by `augment`

    def __len__(self) -> int:
        return len(self.refs)

    def to(self, device: torch.device, non_blocking: bool = False) -> SlideBatch:
        targets = move_targets(self.targets, device, non_blocking)
        return dataclasses.replace(self, targets=targets, device=device)

    def pin_memory(self) -> SlideBatch:
        return self

    def tensors(self) -> Iterator[Tensor]:
        yield from self.targets.values()

    def augment(self, generator: torch.Generator | None) -> SlideBatch:
        if self.spec.stain_jitter is None:
            return self
        device = generator.device if generator is not None else None
        seeds = torch.randint(0, 2**62, (len(self.refs),), generator=generator, device=device).tolist()
        return dataclasses.replace(self, jitter_seeds=seeds)

    def groups(self, max_size: int) -> Iterator[SlideBatch]:
        for i in range(len(self.refs)):
            part = slice(i, i + 1)
            seeds = self.jitter_seeds[part] if self.jitter_seeds is not None else None
            yield dataclasses.replace(self, refs=self.refs[part], jitter_seeds=seeds,
                                      targets={k: v[part] for k, v in self.targets.items()})




__all__ = [
    "ArmedErasing",
    "Batch",
    "Collate",
    "Erasing",
    "FeatureBag",
    "FeatureBatch",
    "ImageBatch",
    "ImageOverlay",
    "ImageTransform",
    "Level0Overlay",
    "Overlay",
    "PatchSpec",
    "RaggedImageBatch",
    "SlideBatch",
    "SlideRef",
    "SparseImageBatch",
    "Targets",
    "move_targets",
]
