"""A small name -> entry registry with did-you-mean errors, reusable for metrics, losses or anything keyed by name.

Independent of the model zoo's registry (litesr/registry.py): it holds any object, normalises names (case,
``-`` vs ``_``) and lists entries matching a glob pattern.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def normalize_name(name: str) -> str:
    """The lookup key of a name: lower case, ``-`` and spaces read as ``_`` ("MS-SSIM" -> "ms_ssim")."""
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


class Registry(Generic[T]):
    """Entries by name; ``kind`` names what they are in error messages ("metric", "loss")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        key = normalize_name(name)
        if key in self._entries:
            raise ValueError(f"{self.kind} {key!r} is registered twice")
        self._entries[key] = entry
        return entry

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator("name")`` registers the decorated object under ``name``."""
        return lambda entry: self.register(name, entry)

    def get(self, name: str) -> T:
        """The entry of ``name``; an unknown name raises ConfigError with the closest names."""
        key = normalize_name(name)
        if key not in self._entries:
            close = difflib.get_close_matches(key, list(self._entries), n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(close)}?" if close else f"; known: {', '.join(self.names())}"
            raise ConfigError(f"unknown {self.kind} {name!r}{hint}")
        return self._entries[key]

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted names, optionally only those matching a glob ``pattern`` ("lpips*")."""
        names = sorted(self._entries)
        if pattern:
            pat = normalize_name(pattern)
            names = [n for n in names if fnmatch.fnmatchcase(n, pat)]
        return names

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
