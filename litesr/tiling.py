"""Tiled inference: LR pieces that overlap, blended with cosine ramps, with whole-image statistics for the layers
that squeeze the whole feature map; and the x8 dihedral transforms of the geometric self-ensemble."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .descriptor import describe, whole_image_layers, whole_image_statistics
from .forward import run_prepared

# The 8 elements of the dihedral group as (transpose, flip H, flip W); inverses undo flips first, then transpose.
DIHEDRAL = [(t, fh, fw) for t in (False, True) for fh in (False, True) for fw in (False, True)]


def transform(x: Tensor, transpose: bool, flip_h: bool, flip_w: bool) -> Tensor:
    x = x.transpose(-2, -1) if transpose else x
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    return x.flip(dims) if dims else x


def untransform(y: Tensor, transpose: bool, flip_h: bool, flip_w: bool) -> Tensor:
    dims = [d for d, on in ((-2, flip_h), (-1, flip_w)) if on]
    y = y.flip(dims) if dims else y
    return y.transpose(-2, -1) if transpose else y


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of full-size tiles covering ``[0, length)``, evenly spread so that neighbours overlap by at least
    ``overlap``: the last tile is moved inward rather than cut short, so every tile sees the same amount of context."""
    if length <= tile:
        return [0]
    count = max(2, math.ceil((length - overlap) / (tile - overlap)))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def _ramp(length: int, device: torch.device) -> Tensor:
    """Weights across an overlap of ``length`` samples: 0 over the first quarter, a raised cosine over the middle half,
    1 over the last quarter; ramp(i) + ramp(length-1-i) == 1. Keeping a tile's outermost quarter out of the blend
    matters: pixels near a tile's edge lack context (a random tiny IMDN: 1.6/255 off with a full-width ramp,
    0.004/255 with this one)."""
    position = torch.arange(length, device=device, dtype=torch.float32) + 0.5
    t = ((position - length / 4) / (length / 2)).clamp(0.0, 1.0)
    return 0.5 - 0.5 * torch.cos(math.pi * t)


@dataclass(frozen=True)
class _Axis:
    """How one image axis is cut into tiles: starts, tile length, blend weights (output space) and core ranges."""

    starts: list[int]
    size: int
    weights: list[Tensor]
    # Per tile, the LR range (relative to the tile) that it alone owns: the overlaps are split at their middle.
    # Whole-image statistics sum over these, so every pixel counts once.
    cores: list[tuple[int, int]]

    @classmethod
    def plan(cls, length: int, tile: int, overlap: int, scale: int, device: torch.device) -> _Axis:
        starts = tile_starts(length, tile, overlap)
        size = min(tile, length)
        weights, cores = [], []
        for i, start in enumerate(starts):
            w = torch.ones(size * scale, device=device)
            lo, hi = 0, size
            if i > 0:
                shared = starts[i - 1] + size - start
                w[: shared * scale] *= _ramp(shared * scale, device)
                lo = shared // 2
            if i + 1 < len(starts):
                shared = start + size - starts[i + 1]
                w[(size - shared) * scale :] *= _ramp(shared * scale, device).flip(0)
                hi = size - (shared - shared // 2)
            weights.append(w)
            cores.append((lo, hi))
        return cls(starts, size, weights, cores)

    def total(self, length: int, scale: int, device: torch.device) -> Tensor:
        total = torch.zeros(length * scale, device=device)
        for start, w in zip(self.starts, self.weights):
            total[start * scale : (start + self.size) * scale] += w
        return total


# What a layer's declared ``whole_image_statistics`` means (litesr.descriptor): its squeeze from the per-channel mean
# and standard deviation. Tiled inference feeds such layers whole-image statistics (see _StatisticsHooks).
_SQUEEZES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mean": lambda mean, std: mean,
    "mean+std": lambda mean, std: std + mean,
}
# Official IMDN x2, 64x80 crop, 48-pixel tiles: the attention moves by 7e-3, 3e-3, 1e-4 from pass to pass; the result
# of the third pass (second statistics) is already as close to the untiled one as with exact statistics.
_MAX_STATISTICS_PASSES = 4
_STATISTICS_TOLERANCE = 5e-3


class _StatisticsHooks:
    """Tiles see only part of the image, so layers that squeeze the whole feature map (channel attention) would weigh
    channels differently in every tile: a few 1/255 of difference everywhere for IMDN. With these hooks installed,
    each tiled pass sums every attention layer's input over the tiles' own (non-overlapping) regions, and the next
    pass replaces each layer's squeeze with the whole-image statistics. Layer k's statistics depend on layers < k, so
    the passes are repeated until the attention stops changing (two or three passes in practice)."""

    def __init__(self, model: nn.Module) -> None:
        self.layers = [m for _, m in whole_image_layers(model)]
        self.kinds = [_SQUEEZES[whole_image_statistics(m)] for m in self.layers]
        self.attention: dict[tuple[int, int], Tensor] = {}  # (layer, call within the forward) -> (B, C, 1, 1)
        self.sums: dict[tuple[int, int], list] = {}
        self.calls = [0] * len(self.layers)
        self.core: tuple[int, int, int, int] = (0, 0, 0, 0)
        self.tile_shape = (1, 1)
        self.handles: list = []

    def __bool__(self) -> bool:
        return bool(self.layers)

    def __enter__(self) -> _StatisticsHooks:
        for index, layer in enumerate(self.layers):
            self.handles.append(layer.register_forward_hook(self._hook(index)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def start_tile(self, core: tuple[int, int, int, int], tile_shape: tuple[int, int]) -> None:
        """Before each tile: its own region (y0, y1, x0, x1) and its size as the model sees it (padded)."""
        self.calls = [0] * len(self.layers)
        self.core, self.tile_shape = core, tile_shape

    def _hook(self, index: int) -> Callable:
        def hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor | None:
            key = (index, self.calls[index])
            self.calls[index] += 1
            x = inputs[0]
            self._accumulate(key, x)
            attention = self.attention.get(key)
            return None if attention is None else x * attention.to(x.dtype)

        return hook

    def _accumulate(self, key: tuple[int, int], x: Tensor) -> None:
        # The feature map may be at another resolution than the tile (or padded to a multiple): map proportionally.
        fh, fw = x.shape[-2:]
        y0, y1, x0, x1 = self.core
        ry, rx = fh / self.tile_shape[0], fw / self.tile_shape[1]
        part = x[..., round(y0 * ry) : round(y1 * ry), round(x0 * rx) : round(x1 * rx)].double()
        s1 = part.sum(dim=(-2, -1))
        s2 = part.square().sum(dim=(-2, -1))
        n = part.shape[-2] * part.shape[-1]
        entry = self.sums.get(key)
        if entry is None:
            self.sums[key] = [s1, s2, n]
        else:
            entry[0] += s1
            entry[1] += s2
            entry[2] += n

    def finish_pass(self) -> float:
        """Turn this pass's sums into attention vectors for the next; returns the largest change."""
        change = 0.0 if self.attention or not self.sums else math.inf
        for key, (s1, s2, n) in self.sums.items():
            layer = self.layers[key[0]]
            mean = s1 / n
            std = (s2 / n - mean.square()).clamp_min(0.0).sqrt()
            squeeze = self.kinds[key[0]](mean, std)[..., None, None]
            weight = layer.conv_du[0].weight
            attention = layer.conv_du(squeeze.to(weight.dtype)).float()
            old = self.attention.get(key)
            change = max(change, math.inf if old is None else (attention - old).abs().max().item())
            self.attention[key] = attention
        self.sums.clear()
        return change


def upscale_tiled(model: nn.Module, x: Tensor, tile: int, overlap: int, scale: int, device: torch.device,
                   channels_last: bool, step: Callable[[], None] = lambda: None) -> Tensor:
    """The blended tiles of one image batch, (B, 3, sH, sW) on x's device."""
    h, w = x.shape[-2:]
    overlap = max(0, min(overlap, tile // 2))
    rows = _Axis.plan(h, tile, overlap, scale, x.device)
    cols = _Axis.plan(w, tile, overlap, scale, x.device)
    out = torch.zeros(x.shape[0], 3, h * scale, w * scale, dtype=torch.float32, device=x.device)

    multiple = describe(model).size_multiple
    padded = (math.ceil(rows.size / multiple) * multiple, math.ceil(cols.size / multiple) * multiple)

    def one_pass(statistics: _StatisticsHooks | None) -> None:
        out.zero_()
        for top, wy, (y0, y1) in zip(rows.starts, rows.weights, rows.cores):
            for left, wx, (x0, x1) in zip(cols.starts, cols.weights, cols.cores):
                piece = x[..., top : top + rows.size, left : left + cols.size].to(device)
                if statistics is not None:
                    statistics.start_tile((y0, y1, x0, x1), padded)
                result = run_prepared(model, piece, channels_last).to(x.device)
                region = out[..., top * scale : (top + rows.size) * scale, left * scale : (left + cols.size) * scale]
                region.addcmul_(result, wy[:, None] * wx[None, :])
                step()

    statistics = _StatisticsHooks(model)
    if not statistics:
        one_pass(None)
    else:
        with statistics:
            one_pass(statistics)  # per-tile attention; gathers the first whole-image statistics
            statistics.finish_pass()
            for _ in range(_MAX_STATISTICS_PASSES - 1):
                one_pass(statistics)  # whole-image attention of the last pass; gathers the next statistics
                if statistics.finish_pass() < _STATISTICS_TOLERANCE:
                    break  # the statistics this pass used are those it found: a fixed point
    return out.div_(rows.total(h, scale, x.device)[:, None] * cols.total(w, scale, x.device)[None, :])


def tiled_passes(model: nn.Module, h: int, w: int, tile: int, overlap: int) -> int:
    """Forward passes of one tiled transform at most: tiles times the statistics passes (as upscale_tiled plans)."""
    multiple = describe(model).size_multiple
    ph, pw = math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
    overlap = max(0, min(overlap, tile // 2))
    tiles = len(tile_starts(ph, tile, overlap)) * len(tile_starts(pw, tile, overlap))
    return tiles * (_MAX_STATISTICS_PASSES if whole_image_layers(model) else 1)
