"""Input/output shared by ``litesr zssr``, ``litesr dip`` and ``litesr sr3 sample``: one image in, one image out."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import LitesrError
from ..images import Image, read_image, write_image


def output_path(input_path: Path, output: Path | None, suffix: str, overwrite: bool) -> Path:
    """``output`` or ``<input stem><suffix><input suffix>`` next to the input; refuses to replace without overwrite."""
    out = output if output is not None else input_path.with_name(f"{input_path.stem}{suffix}{input_path.suffix}")
    if out.exists() and not overwrite:
        raise LitesrError(f"{out}: exists (use --overwrite to replace it)")
    if not out.parent.exists():
        raise LitesrError(f"{out.parent}: output folder does not exist")
    return out


def read_input(path: Path) -> Image:
    if not path.is_file():
        raise LitesrError(f"{path}: no such image file")
    return read_image(path)


def write_result(path: Path, image: Image, rgb: np.ndarray, scale: int | float) -> None:
    """Write ``rgb`` with the input's format and bit depth; the alpha plane, if any, is upscaled bicubically."""
    import torch

    from ..imresize import imresize

    alpha = None
    if image.alpha is not None:
        a = torch.from_numpy(image.alpha.astype(np.float32))[None]
        alpha = imresize(a, size=rgb.shape[:2]).clamp(0, 1)[0].numpy()
    write_image(path, image.with_pixels(rgb, alpha))


def positive(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value
