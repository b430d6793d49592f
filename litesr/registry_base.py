"""The one registry type of litesr: name -> entry with did-you-mean errors.

Architectures and variants (litesr/registry.py), losses, trainers, metrics and upsamplers are each one
:class:`Registry`; it holds any object, normalises names (case, ``-`` vs ``_``) and lists entries matching a glob.
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

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name``; a second registration of the same name is a bug unless ``replace``."""
        key = normalize_name(name)
        if key in self._entries and not replace and self._entries[key] is not entry:
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

    def find(self, name: str) -> T | None:
        """The entry of ``name``, or None."""
        return self._entries.get(normalize_name(name))

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs sorted by name."""
        return sorted(self._entries.items())

    def as_dict(self) -> dict[str, T]:
        """A copy of the entries by name."""
        return dict(self._entries)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and normalize_name(name) in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
