"""Name → constructor registries with case-insensitive lookup and "did you mean" errors."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from enum import StrEnum
from typing import Generic, TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)


class Registry(Generic[T]):
    """Maps names (case-insensitive) to constructors.

    Example:
        >>> AGGREGATORS = Registry("aggregator")
        >>> @AGGREGATORS.register("CA")
        ... class CrossAttention: ...
        >>> AGGREGATORS.get("ca") is CrossAttention
        True
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., T]] = {}
        self._display: dict[str, str] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        key = name.lower()

        def decorator(constructor: Callable[..., T]) -> Callable[..., T]:
            if key in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[key] = constructor
            self._display[key] = name
            return constructor

        return decorator

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def names(self) -> list[str]:
        return [self._display[key] for key in self._entries]

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name.lower()]
        except KeyError:
            raise ValueError(unknown_name_message(self.kind, name, self.names())) from None

    def create(self, name: str, **kwargs: object) -> T:
        return self.get(name)(**kwargs)


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """One-line error for an unknown name, with the closest known one when there is a likely match."""
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in known], n=1, cutoff=0.5)
    hint = ""
    if close:
        hint = f" (did you mean {next(k for k in known if k.lower() == close[0])!r}?)"
    return f"unknown {kind} {name!r}{hint}; known: {', '.join(known)}"


def parse_enum(enum: type[E], value: str | E, name: str) -> E:
    """Case-insensitive enum lookup whose error names the argument and the allowed values."""
    try:
        return enum(value.lower() if isinstance(value, str) else value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None
