"""The model zoo: one module per architecture. Importing this package registers every module in it."""

from __future__ import annotations

import importlib
import pkgutil

_SKIP = {"base", "blocks"}

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name not in _SKIP and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")
