"""Slide readers: a small protocol, the OpenSlide backend, and patch reads at a requested magnification.

Coordinates are level-0 (x, y) top-left pixels everywhere, as OpenSlide's `read_region` takes them; sizes are
(width, height). Pixels come back as uint8 RGB arrays (H, W, 3), transparent areas composited over white.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType, TracebackType
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

# Microns per pixel → objective, as scanners and TRIDENT label them: below each bound, that magnification.
_MPP_BOUNDS = ((0.16, 80.0), (0.2, 60.0), (0.3, 40.0), (0.6, 20.0), (1.2, 10.0), (2.4, 5.0))


@runtime_checkable
class SlideReader(Protocol):
    """A multi-resolution slide: level 0 is the full resolution, higher levels are downsampled copies."""

    path: Path

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""
        ...

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]: ...

    @property
    def level_downsamples(self) -> tuple[float, ...]: ...

    @property
    def mpp(self) -> float | None:
        """Microns per level-0 pixel, when the file records it."""
        ...

    @property
    def magnification(self) -> float | None:
        """Objective magnification of level 0, recorded or inferred from the microns per pixel."""
        ...

    @property
    def offset(self) -> tuple[int, int]:
        """Level-0 (x, y) of the scanned region's corner, where viewers put their (0, 0) (see `OpenSlideReader`)."""
        ...

    def read_region(self, xy: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 (height, width, 3) pixels of `level`, starting at level-0 point `xy`."""
        ...

    def thumbnail(self, max_side: int) -> np.ndarray:
        """The whole slide as RGB uint8, its longer side `max_side` pixels at most."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> SlideReader: ...

    def __exit__(self, *exc: object) -> None: ...


def magnification_from_mpp(mpp: float) -> float | None:
    """The objective a scan's microns per pixel stands for (0.25 → 40×, 0.5 → 20×); None past 2.4 µm/px."""
    for bound, magnification in _MPP_BOUNDS:
        if mpp < bound:
            return magnification
    return None


def _import_openslide() -> ModuleType:
    try:
        import openslide
    except ImportError as exc:
        raise ImportError(
            f"reading slides needs OpenSlide: pip install openslide-python openslide-bin ({exc})"
        ) from None
    return openslide


def _to_rgb(image: Image.Image) -> np.ndarray:
    """RGBA from OpenSlide → RGB, transparent pixels (outside the scanned area) made white."""
    if image.mode == "RGBA" and image.getchannel("A").getextrema()[0] < 255:
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        background.alpha_composite(image)
        image = background
    return np.asarray(image.convert("RGB"))


class OpenSlideReader:
    """Any slide OpenSlide opens (SVS, NDPI, MRXS, SCN, generic tiled TIFF, DICOM …).

    OpenSlide releases the GIL while decoding, so one reader can serve several threads at once.

    Args:
        path: the slide file.
        magnification: level-0 objective magnification, for files that don't record it (overrides the file).
    """

    def __init__(self, path: str | Path, magnification: float | None = None) -> None:
        openslide = _import_openslide()
        self.path = Path(path)
        self._error = openslide.OpenSlideError
        if not self.path.is_file():
            raise FileNotFoundError(f"slide not found: {self.path}")
        try:
            self._slide = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError:
            raise ValueError(f"{self.path}: not a slide format OpenSlide reads") from None
        except openslide.OpenSlideError as exc:
            raise ValueError(f"{self.path}: cannot open the slide ({_one_line(exc)})") from None
        properties = self._slide.properties
        mpp = properties.get("openslide.mpp-x")
        self._mpp = float(mpp) if mpp else None
        objective = properties.get("openslide.objective-power")
        if magnification is None and objective:
            magnification = float(objective)
        if magnification is None and self._mpp is not None:
            magnification = magnification_from_mpp(self._mpp)
        self._magnification = magnification
        bounds = [properties.get(f"openslide.bounds-{side}") for side in ("x", "y", "width", "height")]
        self._offset = (int(bounds[0]), int(bounds[1])) if all(bounds) else (0, 0)

    @property
    def dimensions(self) -> tuple[int, int]:
        return self._slide.dimensions

    @property
    def offset(self) -> tuple[int, int]:
        """`openslide.bounds-x/-y`: where the scanned region starts in OpenSlide's level-0 plane, (0, 0) for files
        without bounds. QuPath's OpenSlide server shows the slide cropped to the bounds (unless opened with
        `--no-crop`): its (0, 0) is OpenSlide's (bounds-x, bounds-y), so objects for it are drawn this much up-left."""
        return self._offset

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._slide.level_dimensions

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._slide.level_downsamples

    @property
    def mpp(self) -> float | None:
        return self._mpp

    @property
    def magnification(self) -> float | None:
        return self._magnification

    def read_region(self, xy: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        try:
            region = self._slide.read_region((int(xy[0]), int(xy[1])), level, (int(size[0]), int(size[1])))
        except self._error as exc:
            raise ValueError(f"{self.path}: unreadable slide ({_one_line(exc)})") from None
        return _to_rgb(region)

    def thumbnail(self, max_side: int) -> np.ndarray:
        try:
            image = self._slide.get_thumbnail((max_side, max_side))
        except self._error as exc:
            raise ValueError(f"{self.path}: unreadable slide ({_one_line(exc)})") from None
        return _to_rgb(image)

    def close(self) -> None:
        self._slide.close()

    def __enter__(self) -> OpenSlideReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def open_slide(path: str | Path, magnification: float | None = None) -> SlideReader:
    """Open a slide and check that its pixels decode: a missing, unopenable or unreadable file raises one line.

    Args:
        path: the slide file.
        magnification: level-0 magnification for files that don't record it.
    """
    reader = OpenSlideReader(path, magnification)
    try:
        last = len(reader.level_dimensions) - 1
        reader.read_region((0, 0), last, (1, 1))  # a corrupt file often opens fine and fails on the first tile
    except BaseException:
        reader.close()
        raise
    return reader


def best_level(downsamples: tuple[float, ...], downsample: float) -> int:
    """The coarsest level that is still at least as sharp as `downsample` asks (1 % tolerance)."""
    fitting = [level for level, value in enumerate(downsamples) if value <= downsample * 1.01]
    return max(fitting, key=lambda level: downsamples[level]) if fitting else 0


def read_patch(reader: SlideReader, xy: tuple[int, int], size_level0: int, size: int) -> np.ndarray:
    """A square patch covering `size_level0` level-0 pixels from `xy`, as `size`² RGB (best level, then resized).

    Args:
        reader: the slide.
        xy: level-0 top-left (x, y).
        size_level0: side of the patch in level-0 pixels.
        size: side of the returned patch (size_level0 / size is the downsample from level 0).
    """
    level = best_level(reader.level_downsamples, size_level0 / size)
    side = max(1, round(size_level0 / reader.level_downsamples[level]))
    region = reader.read_region(xy, level, (side, side))
    if side == size:
        return region
    return np.asarray(Image.fromarray(region).resize((size, size), Image.Resampling.BILINEAR))
