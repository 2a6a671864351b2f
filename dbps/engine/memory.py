"""Peak memory of a device: CUDA peak allocated, or the process's peak resident set on a CPU."""

from __future__ import annotations

import contextlib
import resource
import sys
from pathlib import Path

import torch


def _proc_status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status (Linux), in bytes."""
    status = Path("/proc/self/status")
    if not status.is_file():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    return None


def reset_peak_memory(device: torch.device) -> None:
    """Start a new peak-memory window (on Linux CPUs, by resetting the process's resident high-water mark)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):  # elsewhere the window starts at process start
        Path("/proc/self/clear_refs").write_text("5")


def peak_memory_bytes(device: torch.device) -> int:
    """Peak since the last reset: CUDA max allocated, else peak resident set size of this process."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def current_memory_bytes(device: torch.device) -> int:
    """Memory in use now: CUDA allocated, else resident set size."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return _proc_status_bytes("VmRSS") or peak_memory_bytes(device)


def keep_freed_host_memory() -> bool:
    """Stop glibc from returning freed blocks to the OS after every step (Linux only; returns whether it applied).

    Training allocates and frees the same large buffers every step; by default glibc serves blocks above
    128 KiB with mmap and trims the heap on free, so each step pays page faults and munmap calls. On a
    2-core CPU that kernel time was a third of the wall time of the quickstart; raising both thresholds
    removes it at the cost of keeping the peak heap mapped.
    """
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_trim_threshold, 1 << 30)) and bool(libc.mallopt(m_mmap_threshold, 1 << 25))
    except (OSError, AttributeError):  # not glibc
        return False
