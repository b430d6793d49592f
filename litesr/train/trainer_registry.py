"""Which Trainer class a config's ``train.type`` names.

Kept apart from :mod:`litesr.train.trainer` so the config reader can look a trainer up without importing the engine
(and the engine can import the config reader) with no import circle.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..registry_base import Registry

TRAINERS: Registry[Any] = Registry("train.type")  # name -> Trainer subclass


def register_trainer(name: str) -> Callable[[type], type]:
    """Class decorator: make a Trainer subclass selectable with ``train.type: name``."""

    def decorator(cls: type) -> type:
        TRAINERS.register(name, cls)
        return cls

    return decorator


def discover_trainers() -> None:
    """Import every module of ``litesr/train/`` so that its ``@register_trainer`` classes are known."""
    package = __name__.rsplit(".", 1)[0]
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        importlib.import_module(f"{package}.{info.name}")


def trainer_class(name: str, source: str = "config") -> Any:
    """The Trainer registered as ``name`` (raises ConfigError naming ``source``, with a did-you-mean)."""
    if name not in TRAINERS:
        discover_trainers()
    found = TRAINERS.find(name)
    if found is None:
        import difflib

        close = difflib.get_close_matches(name, TRAINERS.names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{source}: unknown train.type {name!r}{hint}; known: {', '.join(TRAINERS.names())}")
    return found
