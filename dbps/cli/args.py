"""Argument types shared by the sub-commands: numbers in range, lists of them, devices.

Each is an argparse `type=`: a bad value ends as `dbps: error: <command>: argument --flag: <why>, got <value>`.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def _number(text: str, kind: type) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
            from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _ranged(kind: type, low: float, *, inclusive: bool = True, high: float | None = None) -> Callable[[str], float]:
    """A parser of `kind` values ≥ low (> low unless `inclusive`) and ≤ high when given."""
    bound = f"{'≥' if inclusive else '>'} {low}" if high is None else f"in [{low}, {high}]"

    def parse(text: str) -> float:
        value = _number(text, kind)
        if value < low or (not inclusive and value == low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    return parse


positive_int = _ranged(int, 1)
non_negative_int = _ranged(int, 0)
fold_count = _ranged(int, 2)
positive_float = _ranged(float, 0, inclusive=False)
fraction = _ranged(float, 0, high=1)


def positive_ints(text: str) -> list[int]:
    """Comma-separated integers ≥ 1, at least one (e.g. image sides `1500,3000`)."""
    values = [positive_int(part.strip()) for part in text.split(",") if part.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers ≥ 1, got {text!r}")
    return values  # type: ignore[return-value]


def device(text: str) -> torch.device:
    """A device torch knows and this machine has: cpu, cuda or cuda:N."""
    from dbps.engine.build import parse_device

    try:
        return parse_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

