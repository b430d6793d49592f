"""SR-LUT (Jo and Kim, CVPR 2021): look-up tables that replace a small receptive-field SR network.

A network that sees D input pixels (Model S: the 2x2 square, V: a 1x2 pair, F: a 1x3 row) is evaluated once on every
input in a grid of sampling interval ``q = 2**bits`` (``L = 2**(8 - bits) + 1`` levels per pixel: 0, 16, ..., 240,
255 for 4 bits) and its r x r output patch is stored as int8: ``round(clamp(out, -1, 1) * 127)``. Inference reads the
``D + 1`` vertices of the simplex the input falls in (the paper's tetrahedral interpolation, generalised to 4-D for
Model S) and blends them; four rotations of the image are averaged (rotation ensemble), giving
``sum_rot(LUT value) / 255`` as the [0, 1] output. No network runs.

File layout (the official ``Model_S_x4_4bit_int8.npy``): int8 of shape ``(L**D, 1, r, r)``, row
``a * L**3 + b * L**2 + c * L + d`` for taps a = (0, 0), b = (0, 1), c = (1, 0), d = (1, 1) of the 2x2 square
(first tap most significant). The image is reflect-padded at the bottom/right so the output is r * (H, W).

    from litesr.lut import read_lut, lut_upscale
    table = read_lut("Model_S_x4_4bit_int8.npy")            # LUTFile(kind="s", bits=4, scale=4, values=int8 array)
    sr = lut_upscale(table.values, rgb, kind="s", bits=4)    # (B, 3, 4H, 4W) in [0, 1]
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import CheckpointError, ConfigError

# Taps (dy, dx) of each receptive field and the reflect padding (bottom, right) the official code adds.
KERNELS: dict[str, tuple[tuple[int, int], ...]] = {
    "s": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "v": ((0, 0), (0, 1)),
    "f": ((0, 0), (0, 1), (0, 2)),
}
PADDING: dict[str, tuple[int, int]] = {"s": (1, 1), "v": (0, 1), "f": (0, 2)}
# The sampling intervals of the paper's table 6 (2**0 .. 2**8); 4 bits is the paper's default.
DEFAULT_BITS = 4


def levels(bits: int) -> int:
    """Samples per input pixel at interval 2**bits: 0, q, 2q, ..., 255 (the last one is 256 - 1)."""
    if not 0 <= bits <= 8:
        raise ConfigError(f"LUT sampling interval must be 2**0 .. 2**8, not 2**{bits}")
    return 2 ** (8 - bits) + 1


def lut_shape(kind: str, bits: int, scale: int) -> tuple[int, int, int, int]:
    """The official file shape: (L**D, 1, r, r)."""
    return (levels(bits) ** len(KERNELS[kind]), 1, scale, scale)


def sample_inputs(kind: str, bits: int) -> Tensor:
    """Every grid input of the table, in its row order, as (N, 1, kh, kw) in [0, 1] (the official transfer's input)."""
    base = torch.arange(0, 257, 2**bits, dtype=torch.float32)
    base[-1] -= 1  # 256 -> 255: the top level is the brightest 8-bit value
    taps = KERNELS[kind]
    grid = torch.cartesian_prod(*[base] * len(taps)) if len(taps) > 1 else base[:, None]
    kh = max(dy for dy, _ in taps) + 1
    kw = max(dx for _, dx in taps) + 1
    return grid.reshape(-1, 1, kh, kw) / 255.0


@torch.no_grad()
def transfer_to_lut(net: torch.nn.Module, kind: str, bits: int = DEFAULT_BITS, *, batch: int = 16384) -> np.ndarray:
    """Evaluate ``net`` (a single-plane SR-LUT network, see ``SRLUTNet.forward_plane``) on the whole grid: int8
    ``(L**D, 1, r, r)``, values ``round(clamp(out, -1, 1) * 127)`` as the official ``Transfer_Model_S.py``."""
    inputs = sample_inputs(kind, bits)
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    parts = []
    for start in range(0, inputs.shape[0], batch):
        out = net.forward_plane(inputs[start:start + batch].to(device))
        parts.append(torch.round(out.clamp(-1, 1) * 127).to(torch.int8).cpu())
    net.train(was_training)
    return torch.cat(parts).numpy()


def simplex_lookup(table: Tensor, planes: Tensor, kind: str, bits: int, out_hw: tuple[int, int]) -> Tensor:
    """Interpolated table rows for every pixel: ``planes`` (P, H + pad, W + pad) of 8-bit levels (float or int),
    ``table`` (L**D, r*r) float -> (P, H, W, r*r), in LUT units times 1 (the weights sum to one).

    The input's position inside its grid cell, sorted in decreasing order (f1 >= f2 >= ... >= fD), picks the simplex:
    vertices O, O + e(1), O + e(1) + e(2), ..., O + 1, weights q - f1, f1 - f2, ..., fD (Table 3 of the paper; the
    official code spells out the 24 orderings of the 4-D case as nested if/else; ties give equal results since the
    vertex they disagree on has weight zero)."""
    q = 2**bits
    side = levels(bits)
    h, w = out_hw
    taps = torch.stack([planes[:, dy:dy + h, dx:dx + w] for dy, dx in KERNELS[kind]], dim=-1).to(torch.int64)
    msb, lsb = taps // q, (taps % q).to(table.dtype)
    dims = taps.shape[-1]
    strides = side ** torch.arange(dims - 1, -1, -1, device=planes.device)
    frac, order = lsb.sort(dim=-1, descending=True, stable=True)
    step = strides[order]
    index = (msb * strides).sum(-1)
    out = (q - frac[..., 0, None]) * table[index]
    for k in range(dims):
        index = index + step[..., k]
        weight = frac[..., k] - frac[..., k + 1] if k + 1 < dims else frac[..., k]
        out = out + weight[..., None] * table[index]
    return out / q


def lut_upscale(values: np.ndarray | Tensor, x: Tensor, kind: str, bits: int, *, device: torch.device | None = None,
                rotations: int = 4) -> Tensor:
    """SR by table look-up: RGB (or any channels) in [0, 1], (B, C, H, W) -> (B, C, rH, rW), unclamped.

    The input is read as 8-bit levels (round(x * 255)); each of ``rotations`` (4: the paper's ensemble) rotates the
    image, reflect-pads it bottom/right, looks up, and rotates back; the output is sum(LUT value) / 255."""
    table = torch.as_tensor(values)
    table = table.reshape(table.shape[0], -1).to(device or x.device, torch.float32)
    scale = int(round(table.shape[1] ** 0.5))
    b, c, h, w = x.shape
    levels8 = torch.round(x.clamp(0, 1) * 255.0).reshape(b * c, h, w)
    pad_bottom, pad_right = PADDING[kind]
    total = None
    for k in range(rotations):
        img = torch.rot90(levels8, k, dims=(1, 2))
        hh, ww = img.shape[1:]
        if pad_bottom or pad_right:
            img = torch.nn.functional.pad(img[:, None], (0, pad_right, 0, pad_bottom), mode="reflect")[:, 0]
        rows = simplex_lookup(table, img, kind, bits, (hh, ww))  # P, hh, ww, r*r
        out = rows.reshape(b * c, hh, ww, scale, scale).permute(0, 1, 3, 2, 4).reshape(b * c, hh * scale, ww * scale)
        out = torch.rot90(out, (4 - k) % 4, dims=(1, 2))
        total = out if total is None else total + out
    assert total is not None
    # Four rotations of 127-scaled values: their sum / 255 is the image (the official training's normalisation).
    return (total * (4 / rotations) / 255.0).reshape(b, c, h * scale, w * scale)


@dataclass(frozen=True)
class LUTFile:
    kind: str
    bits: int
    scale: int
    values: np.ndarray  # int8 (L**D, 1, r, r)


def _kinds_for(entries: int) -> list[tuple[str, int]]:
    return [(kind, bits) for kind, taps in KERNELS.items() for bits in range(9) if levels(bits) ** len(taps) == entries]


def _name_hint(path: Path) -> str | None:
    match = re.search(r"model_([svf])(?:_|$)", path.stem.lower())
    return match.group(1) if match else None


def read_lut(path: str | os.PathLike, kind: str | None = None, bits: int | None = None) -> LUTFile:
    """Read an SR-LUT table (.npy, int8, ``(L**D, 1, r, r)`` or ``(L**D, r*r)``; never unpickles).

    ``kind``/``bits`` are read off the entry count when not given (an official name like ``Model_V_...`` settles the
    one ambiguous count, 81 = 3**4 = 9**2). A file of any other shape is refused with one line naming the expected
    shape."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such LUT file")
    try:
        values = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CheckpointError(f"{path}: not a readable .npy LUT ({str(exc).splitlines()[0][:160]})") from None
    want_kind = kind or "s"
    want_bits = DEFAULT_BITS if bits is None else bits
    expected = f"int8 ({levels(want_bits) ** len(KERNELS[want_kind])}, 1, r, r) for Model {want_kind.upper()} at " \
               f"{want_bits} bits (17**4 x r*r entries for the official 4-bit Model S)"
    if values.dtype != np.int8:
        raise CheckpointError(f"{path}: LUT values are {values.dtype}, expected {expected}")
    if values.ndim == 2:
        scale = int(round(values.shape[1] ** 0.5))
        ok = scale * scale == values.shape[1]
    elif values.ndim == 4:
        scale = values.shape[2]
        ok = values.shape[1] == 1 and values.shape[3] == scale
    else:
        ok, scale = False, 0
    candidates = [(k, b) for k, b in _kinds_for(values.shape[0]) if (kind is None or k == kind)
                  and (bits is None or b == bits)] if ok and scale >= 1 else []
    if not candidates:
        raise CheckpointError(f"{path}: LUT has shape {tuple(values.shape)}, expected {expected}")
    hint = _name_hint(path)
    chosen = next((c for c in candidates if c[0] == hint), candidates[0])
    return LUTFile(chosen[0], chosen[1], scale, values.reshape(values.shape[0], 1, scale, scale))


def write_lut(path: str | os.PathLike, values: np.ndarray) -> None:
    """Write an int8 table as .npy (the official format), atomically."""
    from .fileio import atomic_write_bytes

    if values.dtype != np.int8:
        raise ConfigError(f"{path}: LUT values must be int8, not {values.dtype}")
    buf = io.BytesIO()
    np.save(buf, values, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def lut_file_name(kind: str, scale: int, bits: int) -> str:
    """The official naming: Model_S_x4_4bit_int8.npy."""
    return f"Model_{kind.upper()}_x{scale}_{bits}bit_int8.npy"


__all__ = ["DEFAULT_BITS", "KERNELS", "LUTFile", "PADDING", "levels", "lut_file_name", "lut_shape", "lut_upscale",
           "read_lut", "sample_inputs", "simplex_lookup", "transfer_to_lut", "write_lut"]
