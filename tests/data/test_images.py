"""Decoding every file kind to uint8 C×H×W: modes, 16-bit scaling, alpha, EXIF, truncation, errors, resize."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dbps.data.images import is_image_file, read_image

pytest.importorskip("skimage")
from tests.photo_fixtures import KINDS, photo_crop, save_as


@pytest.fixture(scope="module")
def source() -> Image.Image:
    return photo_crop("coffee.png", np.random.default_rng(0), 90, 130)


def rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB")).astype(np.int16)


def decoded(path, channels: int = 3) -> np.ndarray:
    tensor = read_image(path, channels)
    assert tensor.dtype == torch.uint8 and tensor.dim() == 3 and tensor.shape[0] == channels
    return tensor.permute(1, 2, 0).numpy().astype(np.int16)


def over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    return colour * (alpha / 255.0) + 255 * (1 - alpha / 255.0)


@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind != "palette"])  # palette: its own test
def test_every_kind_decodes_to_the_photo(tmp_path, source, kind) -> None:
    path = save_as(source, tmp_path / "image", kind)
    image = decoded(path)
    alpha = np.asarray(Image.linear_gradient("L").resize(source.size)).astype(float)[..., None]
    grey = np.asarray(source.convert("L")).astype(np.int16)[..., None].repeat(3, axis=2)
    expected = {
        "png16": grey,  # 16-bit scaled back exactly, not clipped to white
        "tiff16": grey,
        "grey": grey,
        "cmyk_tiff": rgb(source),
        "rgba": over_white(rgb(source), alpha),
        "la": over_white(grey, alpha),
        "exif": rgb(source.transpose(Image.Transpose.ROTATE_270)),  # orientation 6: turned 90° clockwise
    }.get(kind, rgb(source))
    assert image.shape == expected.shape
    error = np.abs(image - expected)
    if kind == "truncated":  # the first rows were in the file; the rest is whatever the decoder filled in
        error = error[:20]
    lossy = kind in ("jpeg", "exif", "webp", "cmyk_jpeg", "truncated")
    assert error.mean() < (6 if lossy else 0.51), f"{kind}: mean error {error.mean():.2f}"


def test_palette_transparency_is_composited_onto_white(tmp_path, source) -> None:
    path = save_as(source, tmp_path / "image", "palette")
    indices = np.asarray(Image.open(path))
    image = decoded(path)
    assert (indices == 0).any() and (image[indices == 0] == 255).all()
    assert np.abs(image[indices != 0] - rgb(source)[indices != 0]).mean() < 12  # 32 colours


def test_one_channel_is_the_luma(tmp_path, source) -> None:
    path = save_as(source, tmp_path / "image", "cmyk_tiff")
    assert np.array_equal(decoded(path, 1)[..., 0], np.asarray(source.convert("L")))


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([[0, 257, 32896, 65535]], np.uint16), [0, 1, 128, 255]),  # I;16
        (np.array([[0, 257, 32896, 65535]], np.int32), [0, 1, 128, 255]),  # I holding 16-bit data
        (np.array([[-10, 0, 10, 30]], np.int32), [0, 64, 128, 255]),  # I beyond 16 bits: stretched
        (np.array([[0.0, 0.5, 1.0, 1.0]], np.float32), [0, 128, 255, 255]),  # F in [0, 1]
        (np.array([[-1.0, 0.0, 1.0, 3.0]], np.float32), [0, 64, 128, 255]),  # F elsewhere: stretched
    ],
)
def test_deep_pixels_are_scaled_not_clipped(tmp_path, array, expected) -> None:
    path = tmp_path / "deep.tif"
    Image.fromarray(array).save(path)
    assert read_image(path, 1)[0, 0].tolist() == expected


def test_resize_is_pillow_bilinear_on_the_converted_image(tmp_path, source) -> None:
    path = save_as(source, tmp_path / "image", "rgba")
    with Image.open(path) as image:
        converted = Image.alpha_composite(Image.new("RGBA", image.size, (255,) * 4), image).convert("RGB")
    expected = np.asarray(converted.resize((70, 50), Image.Resampling.BILINEAR))
    assert np.array_equal(read_image(path, 3, (50, 70)).permute(1, 2, 0).numpy(), expected)


@pytest.mark.parametrize(("size", "tolerance"), [((240, 320), 1.5), ((120, 160), 2.5)])
def test_fast_jpeg_path_stays_close_to_the_plain_path(tmp_path, size, tolerance) -> None:
    path = tmp_path / "big.jpg"
    photo_crop("astronaut.png", np.random.default_rng(1), 480, 640).save(path, quality=95)
    plain = read_image(path, 3, size).float()
    fast = read_image(path, 3, size, fast_jpeg=True).float()
    assert fast.shape == plain.shape == (3, *size)
    assert 0 < (fast - plain).abs().mean() < tolerance  # the draft path was taken (2× or 4× reduction), and is close


def test_huge_images_are_allowed_and_pillow_settings_restored(tmp_path, source, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the 90×130 photo is a "decompression bomb" now
    path = save_as(source, tmp_path / "image", "jpeg")
    assert read_image(path).shape == (3, 90, 130)
    assert Image.MAX_IMAGE_PIXELS == 100


@pytest.mark.parametrize(("content", "message"), [(b"", "empty file"), (b"hello", "cannot decode")])
def test_empty_or_non_image_file_is_a_one_line_error_naming_it(tmp_path, content, message) -> None:
    path = tmp_path / "broken.jpg"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        read_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_bad_channels(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nothere\.png"):
        read_image(tmp_path / "nothere.png")
    with pytest.raises(ValueError, match="channels"):
        read_image(tmp_path / "nothere.png", channels=2)


def test_image_extensions() -> None:
    assert is_image_file("a/B.JPG") and is_image_file("x.tiff") and is_image_file("x.webp")
    assert not is_image_file(".hidden.jpg") and not is_image_file("notes.txt") and not is_image_file("x.npy")
