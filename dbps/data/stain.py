"""H&E stain spaces on the device: optical density, HED colour deconvolution, Reinhard's lαβ, Macenko's stain fit.

Float RGB images are (..., 3, H, W) in [0, 1]. Optical density is OD = −ln(max(I, 10⁻⁶)); HED concentrations are
OD unmixed by Ruifrok & Johnston's stain matrix (scikit-image's `rgb2hed` times ln 10⁶, without its clamp at zero,
so that RGB → HED → RGB is exact).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

FLOOR = 1e-6
# rows: the optical densities of haematoxylin, eosin and DAB in R, G, B (Ruifrok & Johnston 2001, as scikit-image)
RGB_FROM_HED = ((0.65, 0.70, 0.29), (0.07, 0.99, 0.11), (0.27, 0.57, 0.78))
# Macenko's reference H and E vectors (columns) and 99th-percentile concentrations, used when no tile is given
MACENKO_REFERENCE = (((0.5626, 0.2159), (0.7201, 0.8012), (0.4062, 0.5581)), (1.9705, 1.0308))
MACENKO_IO = 240  # background intensity of Macenko's OD: −ln((I + 1) / Io), I in 0..255
# Reinhard et al. 2001: RGB → LMS, and log10 LMS → lαβ
RGB_TO_LMS = ((0.3811, 0.5783, 0.0402), (0.1967, 0.7244, 0.0782), (0.0241, 0.1288, 0.8444))
LOG_LMS_TO_LAB = ((1 / math.sqrt(3),) * 3, (1 / math.sqrt(6), 1 / math.sqrt(6), -2 / math.sqrt(6)),
                  (1 / math.sqrt(2), -1 / math.sqrt(2), 0.0))


def _matrix(rows: tuple, like: Tensor) -> Tensor:
    return torch.tensor(rows, dtype=torch.float64).to(like.device, torch.promote_types(like.dtype, torch.float32))


def _mix(x: Tensor, matrix: Tensor) -> Tensor:
    """out[c] = Σ_k matrix[c, k] · x[k] over the channel axis (−3) of (..., 3, H, W)."""
    return torch.einsum("ck,...khw->...chw", matrix.to(x.dtype), x)


def rgb_to_od(rgb: Tensor) -> Tensor:
    return -torch.log(rgb.clamp_min(FLOOR))


def od_to_rgb(od: Tensor) -> Tensor:
    return torch.exp(-od).clamp(0, 1)


def rgb_to_hed(rgb: Tensor) -> Tensor:
    """Haematoxylin, eosin and DAB concentrations (..., 3, H, W) of float RGB in [0, 1]."""
    od = rgb_to_od(rgb.to(torch.promote_types(rgb.dtype, torch.float32)))
    return _mix(od, torch.linalg.inv(_matrix(RGB_FROM_HED, od)).T)


def hed_to_rgb(hed: Tensor) -> Tensor:
    """Float RGB in [0, 1] of HED concentrations (the inverse of `rgb_to_hed` where RGB ≥ 10⁻⁶)."""
    return od_to_rgb(_mix(hed, _matrix(RGB_FROM_HED, hed).T))


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """Reinhard's lαβ of float RGB in [0, 1]."""
    rgb = rgb.to(torch.promote_types(rgb.dtype, torch.float32))
    lms = _mix(rgb, _matrix(RGB_TO_LMS, rgb)).clamp_min(FLOOR)
    return _mix(torch.log10(lms), _matrix(LOG_LMS_TO_LAB, rgb))


def lab_to_rgb(lab: Tensor) -> Tensor:
    lms = torch.pow(10.0, _mix(lab, torch.linalg.inv(_matrix(LOG_LMS_TO_LAB, lab))))
    return _mix(lms, torch.linalg.inv(_matrix(RGB_TO_LMS, lab))).clamp(0, 1)


def macenko_od(rgb: Tensor) -> Tensor:
    """Macenko's optical density −ln((255·I + 1) / 240) of float RGB in [0, 1], (..., 3, H, W)."""
    rgb = rgb.to(torch.promote_types(rgb.dtype, torch.float32))
    return -torch.log((rgb * 255 + 1) / MACENKO_IO)


def macenko_fit(rgb: Tensor, beta: float = 0.15, alpha: float = 1.0) -> tuple[Tensor, Tensor]:
    """Macenko et al. (2009): the H and E vectors (3, 2) and their 99th-percentile concentrations (2,) of the
    pixels of `rgb` (..., 3, H, W), pooled.

    Pixels with OD < `beta` in any channel (glass) are left out; the OD of the others is projected on the plane of
    its two main directions, and the stain vectors are the directions at the `alpha` and 100 − `alpha` percentiles
    of the angle in that plane, haematoxylin the one with the larger red OD.

    Raises:
        ValueError: fewer than 10 pixels are tissue (a blank image has no stains to fit).
    """
    od = macenko_od(rgb).movedim(-3, -1).reshape(-1, 3).double()
    od = od[(od >= beta).all(dim=1)]
    if len(od) < 10:
        raise ValueError(f"only {len(od)} tissue pixels (OD ≥ {beta} in every channel): no stains to fit")
    _, vectors = torch.linalg.eigh(torch.cov(od.T))
    plane = vectors[:, 1:]  # the two largest eigenvalues
    plane = plane * torch.where(plane.sum(dim=0) < 0, -1.0, 1.0)  # optical densities are positive
    projected = od @ plane
    angle = torch.atan2(projected[:, 1], projected[:, 0])
    low, high = torch.quantile(angle, torch.tensor([alpha / 100, 1 - alpha / 100], dtype=angle.dtype))
    ends = torch.stack([plane @ torch.stack([torch.cos(a), torch.sin(a)]) for a in (low, high)], dim=1)
    stains = ends if ends[0, 0] >= ends[0, 1] else ends.flip(1)
    concentrations = torch.linalg.lstsq(stains, od.T).solution
    return stains.float(), torch.quantile(concentrations, 0.99, dim=1).float()


def macenko_normalise(rgb: Tensor, fit: tuple[Tensor, Tensor], reference: tuple[Tensor, Tensor]) -> Tensor:
    """`rgb` (..., 3, H, W) unmixed with its fitted stains and remixed with the reference stains and scale."""
    (stains, max_c), (ref_stains, ref_max) = fit, reference
    od = macenko_od(rgb)
    shape = od.shape
    flat = od.movedim(-3, -1).reshape(-1, 3).T.double()
    concentrations = torch.linalg.lstsq(stains.double().to(flat.device), flat).solution
    concentrations *= (ref_max.double() / max_c.double()).to(flat.device).unsqueeze(1)
    mixed = (ref_stains.double().to(flat.device) @ concentrations).T.reshape(*shape[:-3], *shape[-2:], 3)
    intensity = MACENKO_IO * torch.exp(-mixed.movedim(-1, -3)) - 1
    return (intensity / 255).clamp(0, 1).to(od.dtype)


def lab_statistics(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation (3,), (3,) of the lαβ pixels of `rgb` (..., 3, H, W), pooled."""
    lab = rgb_to_lab(rgb).movedim(-3, 0).reshape(3, -1)
    return lab.mean(dim=1), lab.std(dim=1).clamp_min(1e-6)


def reinhard_normalise(rgb: Tensor, fit: tuple[Tensor, Tensor], reference: tuple[Tensor, Tensor]) -> Tensor:
    """Reinhard et al. (2001): lαβ channels shifted and scaled from the fitted statistics to the reference's."""
    (mean, std), (ref_mean, ref_std) = fit, reference
    lab = rgb_to_lab(rgb)
    view = (3, 1, 1)
    lab = (lab - mean.to(lab).view(view)) / std.to(lab).view(view) * ref_std.to(lab).view(view)
    return lab_to_rgb(lab + ref_mean.to(lab).view(view)).to(lab.dtype)
