"""Stain spaces, HED jitter and Macenko / Reinhard normalisation, against references and known mixtures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dbps.choices import hed_sigma
from dbps.data import stain
from dbps.data.stain_augment import HEDJitter, PatchStain, StainNormaliser, read_tile

pytest_plugins = ["tests.wsi_data"]


@pytest.fixture(scope="module")
def he_tile(he_region) -> torch.Tensor:
    """A 96² tissue region of the real H&E slide, float RGB in [0, 1]."""
    from dbps.wsi import open_slide

    with open_slide(he_region) as slide:
        pixels = slide.read_region((1200, 1400), 0, (96, 96))
    return torch.from_numpy(np.asarray(pixels)[..., :3].copy()).permute(2, 0, 1).float() / 255


def test_hed_is_scikit_images_rgb2hed_in_optical_density_units() -> None:
    from skimage.color import rgb2hed

    rgb = torch.rand(3, 8, 8, dtype=torch.float64) * 0.98 + 0.01
    ours = stain.rgb_to_hed(rgb).permute(1, 2, 0).numpy()
    reference = rgb2hed(rgb.permute(1, 2, 0).numpy()) * math.log(1e6)  # scikit-image divides OD by ln 10⁶
    np.testing.assert_allclose(np.maximum(ours, 0), reference, rtol=1e-6, atol=1e-9)  # it clamps at 0; we do not


def test_optical_density_round_trip_is_exact_on_real_h_and_e(he_tile) -> None:
    rgb = he_tile.double().clamp_min(1e-3)
    torch.testing.assert_close(stain.hed_to_rgb(stain.rgb_to_hed(rgb)), rgb)
    torch.testing.assert_close(stain.od_to_rgb(stain.rgb_to_od(rgb)), rgb)
    torch.testing.assert_close(stain.lab_to_rgb(stain.rgb_to_lab(rgb)), rgb)


def test_hed_jitter_is_seeded_bounded_and_the_identity_at_zero(he_tile) -> None:
    images = (he_tile * 255).to(torch.uint8).expand(4, -1, -1, -1).contiguous()
    jitter = HEDJitter(hed_sigma("strong"))
    first = jitter(images, torch.Generator().manual_seed(3))
    assert torch.equal(first, jitter(images, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, jitter(images, torch.Generator().manual_seed(4)))
    assert not torch.equal(first[0], first[1])  # one draw per image
    params = jitter.draw(1000, torch.Generator().manual_seed(0))
    assert params[:, 0].min() >= 0.8 and params[:, 0].max() <= 1.2 and params[:, 1].abs().max() <= 0.2
    extreme = HEDJitter.apply(torch.rand(2, 3, 16, 16), torch.tensor([[[3.0] * 3, [2.0] * 3], [[0.0] * 3, [-2.0] * 3]]))
    assert extreme.min() >= 0 and extreme.max() <= 1
    unchanged = HEDJitter(0.0)(images, torch.Generator().manual_seed(0))
    assert (unchanged.int() - images.int()).abs().max() <= 1  # rounding only
    with pytest.raises(ValueError, match="'light', 'strong'"):
        hed_sigma("medium")


def _mixture(stains: torch.Tensor, generator: torch.Generator, pixels: int = 4000) -> torch.Tensor:
    """Float RGB (3, 1, pixels) of H and E concentrations mixed with the stain vectors (3, 2), 10 % pure each."""
    c = torch.rand(2, pixels, generator=generator, dtype=torch.float64) * torch.tensor([[1.2], [0.8]]) + 0.8
    c[1, : pixels // 10] = 0.0
    c[0, pixels // 10 : pixels // 5] = 0.0
    intensity = stain.MACENKO_IO * torch.exp(-(stains @ c)) - 1
    return (intensity / 255).clamp(0, 1).reshape(3, 1, pixels)


def _unit(*values: float) -> torch.Tensor:
    v = torch.tensor(values, dtype=torch.float64)
    return v / v.norm()


def test_macenko_recovers_known_stain_vectors_from_a_mixture() -> None:
    truth = torch.stack([_unit(0.65, 0.70, 0.29), _unit(0.22, 0.80, 0.56)], dim=1)  # H (Ruifrok), E (Macenko)
    found, max_c = stain.macenko_fit(_mixture(truth, torch.Generator().manual_seed(0)))
    cosines = (found.double() * truth).sum(dim=0)
    assert (cosines > 0.999).all(), cosines  # haematoxylin first, eosin second
    assert 1.9 < max_c[0] < 2.05 and 1.5 < max_c[1] < 1.65  # the 99th percentiles of 0.8 + U(0, 1.2), 0.8 + U(0, 0.8)


def test_macenko_removes_a_change_of_stains() -> None:
    """The same tissue stained two ways: normalised to one reference, both look alike."""
    generator = torch.Generator().manual_seed(1)
    a = torch.stack([_unit(0.65, 0.70, 0.29), _unit(0.22, 0.80, 0.56)], dim=1)
    b = torch.stack([_unit(0.55, 0.80, 0.35), _unit(0.20, 0.90, 0.30)], dim=1)
    tissue = _mixture(a, generator)
    generator.manual_seed(1)
    restained = _mixture(b, generator)
    normaliser = StainNormaliser.from_tile("macenko")
    before = (tissue - restained).abs().mean()
    after = (normaliser.apply(tissue[None])[0] - normaliser.apply(restained[None])[0]).abs().mean()
    assert after < before / 5


def test_macenko_normalisation_to_a_tiles_own_fit_keeps_it(he_tile, tmp_path) -> None:
    from PIL import Image

    path = tmp_path / "reference.png"
    Image.fromarray((he_tile.permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)
    tile = read_tile(path)
    normaliser = StainNormaliser.from_tile("macenko", path, per="image")
    out = normaliser.apply(tile[None])[0]
    assert out.min() >= 0 and out.max() <= 1 and (out - tile).abs().mean() < 0.04  # OD off the H–E plane is lost
    blank = torch.ones(1, 3, 8, 8)
    assert torch.equal(normaliser.apply(blank), blank)  # glass has no stains to fit: left as it is


def test_reinhard_matches_the_reference_statistics(he_tile) -> None:
    reference = he_tile.flip(0).clamp(0.05, 0.95)  # another colouring
    normaliser = StainNormaliser("reinhard", tuple(t.tolist() for t in stain.lab_statistics(reference)), "image")
    out = normaliser.apply(he_tile[None].clamp(0.05, 0.95))[0]
    mean, std = stain.lab_statistics(out)
    ref_mean, ref_std = stain.lab_statistics(reference)
    torch.testing.assert_close(mean, ref_mean, atol=0.02, rtol=0.05)
    torch.testing.assert_close(std, ref_std, atol=0.02, rtol=0.1)
    with pytest.raises(ValueError, match="needs a reference tile"):
        StainNormaliser.from_tile("reinhard")


def test_a_patch_fetched_twice_gets_the_same_jitter_and_per_slide_one_draw() -> None:
    rgb = torch.rand(4, 3, 8, 8)
    idx = torch.tensor([5, 9, 2, 5])
    per_patch = PatchStain(jitter=HEDJitter(0.2, "image"), seed=11)
    out = per_patch(rgb[:1].expand(4, -1, -1, -1), idx, count=20)
    torch.testing.assert_close(out[0], out[3])  # patch 5 twice
    assert not torch.allclose(out[0], out[1])
    again = PatchStain(jitter=HEDJitter(0.2, "image"), seed=11)(rgb[:1].expand(2, -1, -1, -1), idx[[1, 0]], count=20)
    torch.testing.assert_close(again, out[[1, 0]])
    per_slide = PatchStain(jitter=HEDJitter(0.2, "slide"), seed=11)(rgb[:1].expand(4, -1, -1, -1), idx, count=20)
    torch.testing.assert_close(per_slide[0], per_slide[1])
