"""Speed options of a device: bf16 autocast where the hardware has it, channels-last, BatchNorm folding, compile."""

from __future__ import annotations

from pathlib import Path

import torch

from dbps.models import PatchEncoder

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX-BF16) instead of emulating it in float32."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)
    if get_capabilities is not None:
        capabilities = get_capabilities()
        return any(capabilities.get(flag, False) for flag in NATIVE_BF16_FLAGS)
    cpuinfo = Path("/proc/cpuinfo")  # older torch: Linux only
    flags = cpuinfo.read_text().split() if cpuinfo.is_file() else []
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def autocast_dtype(device: torch.device, *, amp: bool, amp_cpu: bool) -> torch.dtype | None:
    """bf16 when `amp` is set and the device computes in bf16 natively (CUDA; a CPU only with `amp_cpu`), else None.

    Without native support a CPU would emulate bf16 at float32 speed or worse, so it keeps full precision.
    """
    if not amp:
        return None
    if device.type == "cuda" or (device.type == "cpu" and amp_cpu and cpu_has_native_bf16()):
        return torch.bfloat16
    return None


def speed_up_encoder(
    encoder: PatchEncoder, device: torch.device, *, channels_last: bool, fold_batchnorm: bool, compile: bool
) -> None:
    """Apply the encoder's speed options in place, on an encoder already on `device`.

    Args:
        encoder: the patch encoder.
        device: where it runs.
        channels_last: channels-last weights and inputs (oneDNN on a CPU and tensor cores on CUDA prefer it).
        fold_batchnorm: run no-gradient eval forwards with BatchNorm folded into the convolutions.
        compile: torch.compile the encoder; on a CPU only its folded no-gradient pass (selection and evaluation),
            where it pays: there, compiling the gradient pass made training steps slower.
    """
    if channels_last:
        encoder.to_channels_last()
    if fold_batchnorm:
        encoder.fold_batchnorm()
    if not compile:
        return
    if device.type == "cpu" and encoder.folded is not None:
        encoder.folded.compile()
    else:
        encoder.compile()
