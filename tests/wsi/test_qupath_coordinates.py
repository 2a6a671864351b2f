"""Slide outputs line up in QuPath on slides whose scanned region does not start at OpenSlide's (0, 0).

QuPath's OpenSlide server (qupath-extension-openslide, `OpenslideImageServer`) crops a slide to its
`openslide.bounds-*` and reads its tile (x, y) at OpenSlide's (x + bounds-x, y + bounds-y). The test slide is a real
H&E region written as a Leica SCN that OpenSlide opens with bounds (300, 200): the GeoJSON polygons must cover, in
that cropped image, exactly the pixels the model read at the coordinate file's points.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dbps.cli import main

pytest_plugins = ["tests.wsi_data"]

OFFSET, MARGIN, SIDE = (300, 200), (700, 500), 1024


def write_leica_scn(pixels: np.ndarray, path: Path, offset: tuple[int, int], margin: tuple[int, int],
                    mpp: float) -> Path:
    """`pixels` (H × W × 3 uint8) as a Leica SCN slide (BigTIFF, levels 1 and 1/2) whose scanned region lies
    `offset` pixels inside a collection `margin` pixels larger on each axis: OpenSlide reports openslide.bounds-x/-y
    = `offset` and reads the region at that offset in its level-0 plane (a layout written by hand, as scanners do).
    """
    import tifffile

    height, width = pixels.shape[:2]
    nm = round(mpp * 1000)  # Leica positions are in nanometres
    xml = f"""<?xml version="1.0" encoding="utf-8"?>
<scn xmlns="http://www.leica-microsystems.com/scn/2010/10/01">
 <collection name="dbps" uuid="c" sizeX="{(width + margin[0]) * nm}" sizeY="{(height + margin[1]) * nm}">
  <barcode>dbps</barcode>
  <image name="main" uuid="m">
   <creationDate>2024-01-01T00:00:00Z</creationDate>
   <device model="SCN400" version="1.0"/>
   <pixels sizeX="{width}" sizeY="{height}">
    <dimension sizeX="{width}" sizeY="{height}" r="0" ifd="0"/>
    <dimension sizeX="{width // 2}" sizeY="{height // 2}" r="1" ifd="1"/>
   </pixels>
   <view sizeX="{width * nm}" sizeY="{height * nm}" offsetX="{offset[0] * nm}" offsetY="{offset[1] * nm}"
         spacingZ="0"/>
   <scanSettings>
    <objectiveSettings><objective>20</objective></objectiveSettings>
    <illuminationSettings><illuminationSource>brightfield</illuminationSource></illuminationSettings>
   </scanSettings>
  </image>
 </collection>
</scn>"""
    per_cm = 1e4 / (nm / 1000)
    with tifffile.TiffWriter(path, bigtiff=True) as tiff:
        tiff.write(pixels, tile=(256, 256), photometric="rgb", compression="zlib", description=xml, metadata=None,
                   resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
        tiff.write(pixels[::2, ::2], tile=(256, 256), photometric="rgb", compression="zlib", metadata=None)
    return path


SLIDES = {"normal_001": "normal", "normal_002": "normal", "tumor_001": "tumor", "tumor_002": "tumor",
          "test_001": "tumor"}


@pytest.fixture(scope="module")
def scanned(he_region, tmp_path_factory):
    """The H&E region's pixels (what QuPath shows) and five copies of it as SCN slides, tiled into 128-px patches."""
    from dbps.wsi import open_slide

    root = tmp_path_factory.mktemp("scn")
    with open_slide(he_region) as reader:
        pixels = reader.read_region((600, 800), 0, (SIDE, SIDE))
    slide = write_leica_scn(pixels, root / "region.scn", OFFSET, MARGIN, mpp=reader.mpp)
    (root / "slides").mkdir()
    for name in SLIDES:
        shutil.copy(slide, root / "slides" / f"{name}.scn")
    rows = ["slide_id,label", *(f"{name},{label}" for name, label in SLIDES.items())]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    assert main(["tile", str(root / "slides"), "--out", str(root / "tiles"), "--magnification", "20",
                 "--patch-size", "128", "--thumbnail-size", "256", "--no-progress"]) == 0
    return root, pixels


def test_openslide_reports_the_bounds_and_reads_the_region_there(scanned) -> None:
    from dbps.wsi import open_slide

    root, pixels = scanned
    with open_slide(root / "slides" / "test_001.scn") as reader:
        assert reader.offset == OFFSET and reader.dimensions == (SIDE + MARGIN[0], SIDE + MARGIN[1])
        assert np.array_equal(reader.read_region(OFFSET, 0, (64, 64)), pixels[:64, :64])


@pytest.mark.slow
def test_geojson_and_scores_csv_address_the_pixels_qupath_shows(scanned, tmp_path) -> None:
    from dbps.config import load_config
    from dbps.engine.build import Run
    from dbps.engine.predictions import predict_rows
    from dbps.wsi import open_slide, read_coords

    root, pixels = scanned
    config, _ = load_config("quickstart", [
        "data.name=slides", f"data.root={root / 'slides'}",
        f"data.coords={root / 'tiles'}", f"data.labels={root / 'labels.csv'}", "data.generate=null", "tasks=[]",
        "model.encoder=small_cnn", "selection.method=ips", "S=null", "M=3", "I=8", "B=1", "data.num_workers=0",
        "log.progress=false", "train.device=cpu",
    ])
    run = Run.from_config(config, progress=False, generate=False)  # untrained weights do: only the places matter
    (row,) = predict_rows(run, run.data.test, tmp_path, prefix="test")
    coords = read_coords(root / "tiles" / "patches" / "test_001.h5").coords
    assert coords[:, 0].min() >= OFFSET[0] and coords[:, 1].min() >= OFFSET[1]  # tissue lies inside the bounds
    scores = list(csv.DictReader((tmp_path / row["scores"]).open()))
    assert [(int(r["x"]), int(r["y"])) for r in scores] == [tuple(xy) for xy in coords.tolist()]
    assert all((int(r["qupath_x"]), int(r["qupath_y"])) == (int(r["x"]) - OFFSET[0], int(r["y"]) - OFFSET[1])
               for r in scores)
    salient = [r for r in scores if r["role"] == "salient"]
    polygons = json.loads((tmp_path / row["geojson"]).read_text())["features"]
    assert len(polygons) == len(salient) == 3
    with open_slide(root / "slides" / "test_001.scn") as reader:
        for polygon in polygons:
            ring = np.array(polygon["geometry"]["coordinates"][0])
            (left, top), (right, bottom) = ring.min(axis=0), ring.max(axis=0)
            assert right - left == bottom - top == 128
            openslide_xy = (left + OFFSET[0], top + OFFSET[1])
            assert any((int(r["x"]), int(r["y"])) == openslide_xy for r in salient)
            shown = pixels[top:bottom, left:right]  # the cropped image QuPath displays (a patch may overhang it)
            read = reader.read_region(openslide_xy, 0, (128, 128))[: shown.shape[0], : shown.shape[1]]
            assert shown.size and np.array_equal(shown, read)
            assert shown.std() > 0  # real tissue, not the blank margin
