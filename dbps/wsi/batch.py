"""Many slides: list them from files and folders, run a job on each, skip what is done, log what fails."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

# What OpenSlide opens, one file per slide (DICOM series are folders of files: pass one file of each explicitly)
SLIDE_SUFFIXES = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif")

log = logging.getLogger(__name__)


def list_slides(paths: Iterable[str | Path]) -> list[Path]:
    """Slide files given directly or found (non-recursively) in folders; their stems, which name the outputs, unique."""
    paths = [Path(path) for path in paths]
    slides: list[Path] = []
    for path in paths:
        if path.is_dir():
            slides += sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES)
        elif path.is_file():
            slides.append(path)
        else:
            raise FileNotFoundError(f"slide or folder not found: {path}")
    unique: dict[str, Path] = {}
    for slide in slides:
        other = unique.setdefault(slide.stem, slide)
        if other.resolve() != slide.resolve():
            raise ValueError(f"two slides share the name {slide.stem!r}: {other} and {slide}")
    if not unique:
        raise ValueError(f"no slides found in {', '.join(map(str, paths))} (looked for {', '.join(SLIDE_SUFFIXES)})")
    return list(unique.values())


@dataclass
class BatchSummary:
    """What a run over slides did: finished, skipped (already done) and failed slides (with the reason)."""

    done: list[Path] = field(default_factory=list)
    patches: int = 0  # patches of the finished slides
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def line(self, verb: str, error_log: Path) -> str:
        failed = f", {len(self.failed)} failed (see {error_log})" if self.failed else ""
        done = f"{verb} {len(self.done)} slides ({self.patches:,} patches)"
        return f"{done}, skipped {len(self.skipped)} already done{failed}"


def run_slides(
    slides: list[Path],
    job: Callable[[Path], int],
    *,
    is_done: Callable[[Path], bool],
    error_log: Path,
    desc: str,
    progress: bool = True,
) -> BatchSummary:
    """Run `job` (→ its number of patches) on every slide not `is_done`; a slide that raises is logged, others go on.

    `error_log` is started afresh: one line per failed slide, `path: reason`. It is removed when nothing failed.
    """
    summary = BatchSummary()
    error_log.unlink(missing_ok=True)
    for slide in tqdm(slides, desc=desc, unit="slide", disable=not progress):
        try:
            if is_done(slide):
                summary.skipped.append(slide)
                continue
            patches = job(slide)
        except Exception as exc:  # one bad slide must not stop a batch of thousands: record it and go on
            reason = " ".join(str(exc).split()) or type(exc).__name__
            summary.failed.append((slide, reason))
            log.warning("%s failed: %s", slide, reason)
            error_log.parent.mkdir(parents=True, exist_ok=True)
            with error_log.open("a") as handle:
                handle.write(f"{slide}: {reason}\n")
            continue
        summary.done.append(slide)
        summary.patches += patches
    return summary
