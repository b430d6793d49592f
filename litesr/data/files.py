"""Image files of a data set folder, listed and read the same way for training, evaluation and every other reader.

One suffix list (:data:`litesr.images.IMAGE_SUFFIXES`), hidden files skipped, and one reader: uint8 RGB (H, W, 3) with
gray replicated, alpha dropped and 16 bits reduced to 8 by rounding, so a file training accepts is one evaluation
accepts and both see the same pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DatasetError, ImageError
from ..images import IMAGE_SUFFIXES, read_image


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (hidden files skipped), sorted by name; may be empty."""
    try:
        entries = sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    except OSError as exc:
        raise DatasetError(f"{folder}: cannot list folder ({exc.strerror or exc})") from None
    return [p for p in entries if not p.name.startswith(".")]


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder``, sorted by name; a missing or image-less folder is a DatasetError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: no such dataset folder")
    files = list_images(folder)
    if not files:
        raise DatasetError(f"{folder}: contains no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_uint8(path: Path) -> tuple[np.ndarray, bool]:
    """An image file as uint8 (H, W, 3) and whether the file was gray (then its channel is replicated)."""
    try:
        image = read_image(path)
    except ImageError as exc:
        raise DatasetError(str(exc)) from None
    # read_image gives float32 v / 255 (or v / 65535); rounding back recovers the stored 8-bit value exactly.
    pixels = np.floor(image.rgb.astype(np.float64) * 255.0 + 0.5).astype(np.uint8)
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2), True
    return pixels, False


def read_rgb_uint8(path: Path) -> np.ndarray:
    """An image file as uint8 (H, W, 3): gray replicated, alpha dropped, 16 bits reduced to 8 (rounded)."""
    return read_uint8(path)[0]


__all__ = ["IMAGE_SUFFIXES", "find_images", "list_images", "read_rgb_uint8", "read_uint8"]
