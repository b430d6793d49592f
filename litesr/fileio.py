"""The one way litesr writes a file: to a hidden temporary name beside the target, then an atomic rename.

A crash, a full disk or Ctrl-C never leaves a half-written image, checkpoint, config or report, and readers never see
one. Every writer in litesr (images, safetensors, torch.save, YAML, CSV/JSON reports, caches) goes through here.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Temporary names are ".<target name>.<8 hex>.tmp": hidden, and recognisable to clean up after a kill -9.
TEMP_SUFFIX = ".tmp"


def temporary_name(path: Path) -> Path:
    """A fresh hidden temporary path in the target's folder (same file system, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")


def is_temporary_name(path: Path) -> bool:
    """Whether ``path`` looks like a temporary file left by :func:`atomic_output` (a killed writer)."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary file next to ``path`` for the caller to write; renamed over ``path`` on success, removed on failure.

    The temporary file is created exclusively with ``open(..., "x")``, not ``mkstemp``, so the result gets the usual
    umask permissions (mkstemp's 0600 would make shipped weights, exports and images unreadable to other users).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    with open(tmp, "xb"):
        pass
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


__all__ = ["atomic_output", "atomic_write_bytes", "atomic_write_text", "is_temporary_name", "temporary_name"]
