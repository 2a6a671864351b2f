"""Feature extraction: a patch encoder over each slide's tiled patches, written as TRIDENT-style h5 bags.

Patches are read by a thread pool one batch ahead of the encoder (`SlidePatches.prefetch`); on a GPU the
encoder runs channels-last under bf16 autocast. Features are written batch by batch into a temporary file that
replaces the output only when complete, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dbps.data.stain_augment import StainNormaliser, slide_stain
from dbps.models import ENCODERS, PatchEncoder, create_encoder
from dbps.models.encoders import PretrainedWeightsUnavailable
from dbps.wsi.batch import BatchSummary, run_slides
from dbps.wsi.coords_io import count_coords, list_coord_files, read_attributes, read_coords
from dbps.wsi.features_io import features_complete, write_features
from dbps.wsi.reader import open_slide
from dbps.wsi.source import SlidePatches

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def build_feature_encoder(
    name: str,
    *,
    weights: str | Path | None = None,
    pretrained: bool = False,
    stages: int | None = None,
    dim: int | None = None,
) -> PatchEncoder:
    """An RGB patch encoder in eval mode: random weights unless `weights` (a local file) or `pretrained` (timm's).

    Pretrained weights that cannot be had stop with a message naming both ways out; random weights are never
    used in their place.
    """
    if weights is not None and pretrained:
        raise ValueError("give --weights or --pretrained, not both")
    if pretrained:
        import timm

        if name in ENCODERS or not timm.is_model_pretrained(name):
            raise ValueError(f"encoder {name!r} has no pretrained weights in timm: pass --weights PATH (a local file)")
    try:
        encoder = create_encoder(name, in_chans=3, dim=dim, stages=stages, weights=weights, pretrained=pretrained)
    except PretrainedWeightsUnavailable:
        raise ValueError(
            f"pretrained weights of {name!r} are not available offline: pass --weights PATH "
            "to a local file, or download them once with network access (unset HF_HUB_OFFLINE) so they are cached"
        ) from None
    return encoder.eval()


def encoder_tag(name: str, stages: int | None = None, dim: int | None = None, stain: str | None = None) -> str:
    """The name features are filed under: `features_<tag>/` (stain-normalised ones apart from the others)."""
    return (name + (f"_stages{stages}" if stages is not None else "") + (f"_dim{dim}" if dim is not None else "")
            + (f"_{stain}" if stain is not None else ""))


def normalisation(encoder: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std the encoder's timm weights expect (ImageNet's when it has none)."""
    for module in encoder.modules():
        config = getattr(module, "pretrained_cfg", None)
        if isinstance(config, dict) and "mean" in config and "std" in config:
            return tuple(config["mean"]), tuple(config["std"])
    return IMAGENET_MEAN, IMAGENET_STD


def _embed(source: SlidePatches, encoder: torch.nn.Module, batch_size: int, progress: bool) -> Iterator[np.ndarray]:
    """Features of all patches, batch by batch, the next batch read while this one is encoded."""
    count = source.num_patches
    device_type = source.device.type
    chunks = [torch.arange(start, min(start + batch_size, count)).unsqueeze(0) for start in range(0, count, batch_size)]
    if chunks:
        source.prefetch(chunks[0])
    with tqdm(total=count, unit="patch", leave=False, disable=not progress) as bar:
        for i, chunk in enumerate(chunks):
            patches = source.fetch(chunk)[0]
            if i + 1 < len(chunks):
                source.prefetch(chunks[i + 1])
            with torch.inference_mode(), torch.autocast(device_type, torch.bfloat16, enabled=device_type == "cuda"):
                features = encoder(patches).float().cpu().numpy()
            bar.update(len(features))
            yield features


def extract_slide(
    slide: Path, coords_path: Path, encoder: PatchEncoder, out_path: Path, *, tag: str, batch_size: int = 64,
    patch_size: int | None = None, num_workers: int = 2, progress: bool = False,
    stain_norm: StainNormaliser | None = None,
) -> int:
    """Encode the patches of one slide listed in `coords_path` into `out_path`; returns the number of patches.

    With `stain_norm`, patches are stain-normalised (on the device, fitted per slide or per patch) before the
    encoder's normalisation; the features' attributes name the method and the reference.
    """
    device = next(encoder.parameters()).device
    with open_slide(slide) as reader:
        found = read_coords(coords_path, reader)
        inferred = {
            "patch_size": found.patch_size, "patch_size_level0": found.patch_size_level0, "overlap": found.overlap,
            "target_magnification": found.target_magnification, "level0_magnification": found.level0_magnification,
        }
        attrs = read_attributes(coords_path)[1] | {key: value for key, value in inferred.items() if value is not None}
        mean, std = normalisation(encoder)
        with SlidePatches(
            reader, found.coords, found.patch_size_level0, patch_size or found.patch_size, mean=mean, std=std,
            device=device, num_workers=num_workers,
        ) as source:
            stain, name = {}, tag
            if stain_norm is not None:
                name = tag.removesuffix(f"_{stain_norm.method}")  # the folder says how; the attribute names the encoder
                source.transform = slide_stain(source, stain_norm)
                stain = {"stain_norm": stain_norm.method, "stain_reference": stain_norm.name,
                         "stain_fit": stain_norm.per}
            batches = _embed(source, encoder, batch_size, progress)
            write_features(out_path, batches, found.coords, encoder=name, dim=encoder.embed_dim, coords_attrs=attrs,
                           feature_attrs=stain)
    return len(found.coords)


def extract_features(
    slides: list[Path], coords_dir: Path, encoder: PatchEncoder, out_dir: Path, *, tag: str, batch_size: int = 64,
    patch_size: int | None = None, num_workers: int = 2, progress: bool = True,
    stain_norm: StainNormaliser | None = None,
) -> BatchSummary:
    """Write `out_dir/features_<tag>/<slide>.h5` for every slide with coordinates in `coords_dir`.

    Slides whose complete output exists are skipped; failures go to `out_dir/features_<tag>/errors.log`.
    """
    coord_files = list_coord_files(coords_dir)
    folder = out_dir / f"features_{tag}"
    if next(encoder.parameters()).device.type == "cuda":
        encoder.to_channels_last()

    def coords_of(slide: Path) -> Path:
        if slide.stem not in coord_files:
            raise ValueError(f"no coordinates for slide {slide.stem!r} in {coords_dir}")
        return coord_files[slide.stem]

    def is_done(slide: Path) -> bool:
        path = folder / f"{slide.stem}.h5"
        return slide.stem in coord_files and path.is_file() and features_complete(path, count_coords(coords_of(slide)))

    def job(slide: Path) -> int:
        out_path = folder / f"{slide.stem}.h5"
        options = {"batch_size": batch_size, "patch_size": patch_size, "num_workers": num_workers, "progress": progress,
                   "stain_norm": stain_norm}
        return extract_slide(slide, coords_of(slide), encoder, out_path, tag=tag, **options)

    return run_slides(slides, job, is_done=is_done, error_log=folder / "errors.log", desc="features", progress=progress)
