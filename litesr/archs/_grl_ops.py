"""GRL's position tables, index tables and shift masks (private helpers of :mod:`litesr.archs.grl`).

GRL's attention compares a window (or stripe) of pixels with itself or with its anchors, the same stripe pooled
``df`` times. The bias of a (query, key) pair comes from an MLP of their log-spaced offset (Swin v2's continuous
position bias), looked up through an index table; shifted windows and stripes get -100 masks. All of it is a pure
function of the sizes, computed here as the official code does (``models/common/ops.py`` in
ofsoundof/GRL-Image-Restoration), so that the numbers agree bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .blocks import shifted_window_mask

# The 13 tables of the official model, by name (old checkpoints store them; they are always recomputed).
TABLE_NAMES = ("table_w", "table_sh", "table_sv", "index_w", "index_sh_a2w", "index_sh_w2a", "index_sv_a2w",
               "index_sv_w2a", "mask_w", "mask_sh_a2w", "mask_sh_w2a", "mask_sv_a2w", "mask_sv_w2a")


def coords_table(size: Sequence[int], down_factor: int = 1) -> Tensor:
    """(1, h + h/df - 1, w + w/df - 1, 2) log-spaced offsets between a size[0] x size[1] window and its anchors."""
    anchor = [s // down_factor for s in size]
    positive = [s - 1 - (s - a) // 2 for s, a in zip(size, anchor, strict=True)]
    negative = [-(a - 1) - (s - a) // 2 for s, a in zip(size, anchor, strict=True)]
    axes = [torch.arange(n, p + 1, dtype=torch.float32) for n, p in zip(negative, positive, strict=True)]
    table = torch.stack(torch.meshgrid(*axes, indexing="ij")).permute(1, 2, 0).contiguous().unsqueeze(0)
    table[..., 0] /= positive[0]
    table[..., 1] /= positive[1]
    table *= 8  # normalise to [-8, 8], then compress logarithmically
    return torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0


def _grid(size: Sequence[int]) -> Tensor:
    return torch.stack(torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")).flatten(1)


def position_index(size: Sequence[int], down_factor: int = 1, window_to_anchor: bool = True) -> Tensor:
    """(N1, N2) index of each (window pixel, anchor) pair into the flattened table (the reverse pairs with
    ``window_to_anchor=False``); with ``down_factor`` 1 it is the window's own Swin index."""
    anchor = [s // down_factor for s in size]
    row_span = anchor[1] + size[1] - 1
    if window_to_anchor:
        rel = _grid(size)[:, :, None] - _grid(anchor)[:, None, :]
        offset = [a - 1 for a in anchor]
    else:
        rel = _grid(anchor)[:, :, None] - _grid(size)[:, None, :]
        offset = [s - 1 for s in size]
    return (rel[0] + offset[0]) * row_span + rel[1] + offset[1]


def _region_ids(height: int, width: int, size: Sequence[int], shift: Sequence[int], down: int = 1) -> Tensor:
    """(nW, prod(size)) region labels of the windows of a shifted map (the official ``_fill_window``). A zero shift
    labels everything alike, as the official slices do (``slice(-0, None)`` covers the whole axis)."""
    def region(n: int, s: int, t: int) -> Tensor:
        pos = torch.arange(n)
        return torch.zeros_like(pos) if t == 0 else (pos >= n - s).long() + (pos >= n - t).long()

    h, w = height // down, width // down
    ids = (region(h, size[0], shift[0])[:, None] * 3 + region(w, size[1], shift[1])[None, :]).float()
    wh, ww = size
    return ids.view(h // wh, wh, w // ww, ww).permute(0, 2, 1, 3).reshape(-1, wh * ww)


def anchor_mask(height: int, width: int, size: Sequence[int], shift: Sequence[int], down_factor: int,
                window_to_anchor: bool) -> Tensor:
    """-100 / 0 mask (nW, N1, N2) between the pixels of each shifted stripe and its anchors (or the reverse)."""
    windows = _region_ids(height, width, size, shift)
    anchors = _region_ids(height, width, [s // down_factor for s in size], [t // down_factor for t in shift],
                          down_factor)
    diff = windows[:, :, None] - anchors[:, None, :] if window_to_anchor else anchors[:, :, None] - windows[:, None, :]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


def tables_for(height: int, width: int, window_size: int, stripe_size: Sequence[int], down_factor: int,
               device: torch.device | str | None = None) -> dict[str, Tensor]:
    """The 13 tables of a (padded) height x width map, by their official names."""
    ss = list(stripe_size)
    shift = [s // 2 for s in ss]
    ws = [window_size, window_size]
    out = {
        "table_w": coords_table(ws), "table_sh": coords_table(ss, down_factor),
        "table_sv": coords_table(ss[::-1], down_factor),
        "index_w": position_index(ws),
        "index_sh_a2w": position_index(ss, down_factor, False), "index_sh_w2a": position_index(ss, down_factor, True),
        "index_sv_a2w": position_index(ss[::-1], down_factor, False),
        "index_sv_w2a": position_index(ss[::-1], down_factor, True),
        "mask_w": shifted_window_mask(height, width, window_size, window_size // 2),
        "mask_sh_a2w": anchor_mask(height, width, ss, shift, down_factor, False),
        "mask_sh_w2a": anchor_mask(height, width, ss, shift, down_factor, True),
        "mask_sv_a2w": anchor_mask(height, width, ss[::-1], shift[::-1], down_factor, False),
        "mask_sv_w2a": anchor_mask(height, width, ss[::-1], shift[::-1], down_factor, True),
    }
    return {k: v.to(device) for k, v in out.items()} if device is not None else out
