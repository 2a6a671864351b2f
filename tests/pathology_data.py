"""Pathology fixtures from the real H&E region: its tiling, its features, and a small patient cohort of feature bags.

The cohort's bags are drawn from the real slide's patch features: each slide gets its own subset of patches, and
the slides of tumour patients get a few of their patches shifted along one direction (the signal a model can find).
Patients have two slides each, so patient-grouped folds can be checked for leakage. Use with
`pytest_plugins = ["tests.wsi_data", "tests.pathology_data"]`.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from dbps.cli import main
from dbps.wsi.features_io import write_features

PATIENTS = 10  # half of them tumour
SLIDES_PER_PATIENT = 2


@pytest.fixture(scope="session")
def he_tiles(he_pyramid: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real H&E pyramid in `slides/` and its tissue coordinates at 10×, 128-px patches, in `tiles/`."""
    root = tmp_path_factory.mktemp("he-tiles")
    (root / "slides").mkdir()
    (root / "slides" / "cmu.tiff").symlink_to(he_pyramid)
    argv = ["tile", str(root / "slides"), "--out", str(root / "tiles"), "--magnification", "10", "--patch-size",
            "128", "--thumbnail-size", "256", "--no-progress"]
    assert main(argv) == 0
    return root


@pytest.fixture(scope="session")
def he_features(he_tiles: Path) -> np.ndarray:
    """The real slide's patch features (small CNN, random weights, 16 features per patch)."""
    out = he_tiles / "features"
    argv = ["extract-features", str(he_tiles / "slides"), "--coords", str(he_tiles / "tiles"), "--encoder",
            "small_cnn", "--dim", "16", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv) == 0
    with h5py.File(out / "features_small_cnn_dim16" / "cmu.h5") as handle:
        return np.asarray(handle["features"], dtype=np.float32)


@pytest.fixture(scope="session")
def feature_cohort(he_features: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`bags/features_small_cnn_dim16/<slide>.h5` and a CLAM `labels.csv` (`case_id,slide_id,label`)."""
    root = tmp_path_factory.mktemp("cohort")
    folder = root / "bags" / "features_small_cnn_dim16"
    rng = np.random.default_rng(0)
    direction = rng.normal(size=he_features.shape[1]).astype(np.float32)
    direction *= 4 * he_features.std() / np.linalg.norm(direction) * np.sqrt(len(direction))
    rows = ["case_id,slide_id,label"]
    for patient in range(PATIENTS):
        label = "tumor" if patient % 2 else "normal"
        for copy in range(SLIDES_PER_PATIENT):
            slide = f"patient{patient:02d}_slide{copy}"
            take = rng.choice(len(he_features), size=int(rng.integers(12, 20)), replace=False)
            features = he_features[take].copy()
            if label == "tumor":
                features[:3] += direction
            coords = np.stack([take * 128, np.zeros_like(take)], axis=1)
            write_features(folder / f"{slide}.h5", features, coords, encoder="small_cnn_dim16")
            rows.append(f"patient{patient:02d},{slide},{label}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root
