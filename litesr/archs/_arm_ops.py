"""ARM's operations: width-sliceable convolutions, the patch edge score, the edge-to-PSNR lookup table and the
per-patch subnet choice (official code: chenbong/ARM-Net ``models/archs/arch_util.py``, ``utils/util.py``,
``models/USSR_model.py``). Used by :mod:`litesr.archs.arm`.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError


class SlimConv2d(nn.Conv2d):
    """The official ``USConv2d``: a conv that runs on the first channels of its weight.

    ``slim_in``: the input channels are those of the tensor it gets (``weight[:, :C_in]``); ``slim_out``: it computes
    ``int(out_channels * width_mult)`` filters (``weight[:C_out]``). Grouped convs keep their number of groups.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, bias: bool = True, *, slim_in: bool = False, slim_out: bool = False) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups,
                         bias=bias)
        self.slim_in, self.slim_out = slim_in, slim_out
        self.width_mult = 1.0

    def forward(self, x: Tensor) -> Tensor:
        cin = (x.shape[1] if self.slim_in else self.in_channels) // self.groups
        cout = int(self.out_channels * self.width_mult) if self.slim_out else self.out_channels
        bias = self.bias[:cout] if self.bias is not None else None
        return F.conv2d(x, self.weight[:cout, :cin], bias, self.stride, self.padding, self.dilation, self.groups)


class SlimConvTranspose2d(nn.ConvTranspose2d):
    """The official ``USConvTranspose2d`` with ``us=[True, False]``: ``int(in_channels * width_mult)`` inputs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 output_padding: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, output_padding=output_padding)
        self.width_mult = 1.0

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        cin = int(self.in_channels * self.width_mult)
        return F.conv_transpose2d(x, self.weight[:cin], self.bias, self.stride, self.padding, self.output_padding,
                                  self.groups, self.dilation)


def slim(layer: nn.Conv2d, *, slim_in: bool, slim_out: bool) -> SlimConv2d:
    """``layer`` as a :class:`SlimConv2d` of the same geometry, holding the same parameters."""
    new = SlimConv2d(layer.in_channels, layer.out_channels, layer.kernel_size[0], layer.stride[0], layer.padding[0],
                     layer.groups, layer.bias is not None, slim_in=slim_in, slim_out=slim_out)
    new.weight, new.bias = layer.weight, layer.bias
    return new


def slim_all(module: nn.Module) -> nn.Module:
    """Every conv of ``module`` (a litesr block reused as is) sliced on both sides, in place: ``us=[True, True]``."""
    for name, child in list(module.named_children()):
        if type(child) is nn.Conv2d:
            setattr(module, name, slim(child, slim_in=True, slim_out=True))
        else:
            slim_all(child)
    return module


def set_width_mult(module: nn.Module, mult: float) -> None:
    for m in module.modules():
        if isinstance(m, (SlimConv2d, SlimConvTranspose2d)):
            m.width_mult = mult


# ---------------------------------------------------------------------------------------------------------------------
# Edge score, lookup table, subnet choice


def edge_scores(patches: Tensor) -> Tensor:
    """The official patch score ``laplacian(tensor2img(patch)).mean()``, (N, 3, h, w) RGB in [0, 1] -> (N,) float64.

    As OpenCV does it: 8-bit pixels (clamp, x255, round), ``COLOR_BGR2GRAY`` in 14-bit fixed point, ``Laplacian``
    with ``ksize=3`` (taps [[2, 0, 2], [0, -8, 0], [2, 0, 2]], reflect-101 border) into int16, ``convertScaleAbs``
    (|v| saturated to 255), the mean. All integer arithmetic, so the scores are exact.
    """
    q = (patches.detach().float().clamp(0, 1) * 255).round().to(torch.int64)
    gray = (q[:, 0] * 4899 + q[:, 1] * 9617 + q[:, 2] * 1868 + 8192) >> 14
    if min(gray.shape[-2:]) < 2:  # reflect-101 needs 2 pixels; a 1-pixel side has no Laplacian worth scoring
        return torch.zeros(len(patches), dtype=torch.float64)
    p = F.pad(gray[:, None].double(), (1, 1, 1, 1), mode="reflect")[:, 0]
    lap = 2 * (p[:, :-2, :-2] + p[:, :-2, 2:] + p[:, 2:, :-2] + p[:, 2:, 2:]) - 8 * p[:, 1:-1, 1:-1]
    return lap.abs().clamp(max=255).flatten(1).mean(1).cpu()


@dataclass
class LookupTable:
    """The edge-to-PSNR table of one supernet: per subnet (width_list order, 0 = bicubic) the bin centres of the
    edge score and the mean validation PSNR of the patches in each bin (official ``hmap_x_list``,
    ``hmap_y_mean_list``), and the official ``cost_list`` (FLOPs on a 32x32 patch) kept for reference."""

    edge_centers: np.ndarray  # (K, bins)
    psnr: np.ndarray  # (K, bins)
    official_costs: np.ndarray | None = None

    def predict(self, scores: Tensor) -> np.ndarray:
        """(N, K) predicted PSNR: each subnet's mean PSNR at the bin centre nearest the score (official
        ``hmap_y_mean_to_pred_psnr``: ``argmin |centre - score|``, the first on a tie)."""
        s = scores.numpy()[:, None, None]
        idx = np.abs(self.edge_centers[None] - s).argmin(-1)  # (N, K)
        return np.take_along_axis(self.psnr[None].repeat(len(s), 0), idx[..., None], -1)[..., 0]


def _numpy_pickle_globals() -> list:
    """What the official ``.state`` pickles besides tensors: numpy arrays (under numpy 1's module name) and dtypes."""
    from numpy._core.multiarray import _reconstruct

    dtypes = {type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool", "U8", "O")}
    return [(_reconstruct, "numpy.core.multiarray._reconstruct"), _reconstruct, np.ndarray, np.dtype,
            codecs.encode, *dtypes]


def load_lookup_table(path: str | os.PathLike) -> LookupTable:
    """The lookup table of an official ARM training-state file (``ckpt/arm-*.state``, key ``hmap``), read with
    ``torch.load(weights_only=True)`` (numpy arrays allow-listed, nothing else)."""
    try:
        with torch.serialization.safe_globals(_numpy_pickle_globals()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such ARM lookup-table file") from None
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise CheckpointError(f"{path}: not an ARM training-state file ({str(exc).splitlines()[0][:200]})") from None
    hmap = state.get("hmap") if isinstance(state, dict) else None
    if not isinstance(hmap, dict) or not hmap.get("hmap_x_list") or not hmap.get("hmap_y_mean_list"):
        raise CheckpointError(f"{path}: holds no ARM edge-to-PSNR table (an 'hmap' with hmap_x_list, "
                              "hmap_y_mean_list)")
    centers = np.stack([np.asarray(v, dtype=np.float64) for v in hmap["hmap_x_list"]])
    psnr = np.stack([np.asarray(v, dtype=np.float64) for v in hmap["hmap_y_mean_list"]])
    costs = hmap.get("cost_list")
    return LookupTable(centers, psnr, None if costs is None else np.asarray(costs, dtype=np.float64))


def choose_official(pred: np.ndarray, costs: np.ndarray, eta: float | str | int) -> np.ndarray:
    """The official per-patch choice (``USSR_Model.test_image``): ``"best"``: the highest predicted PSNR; an int:
    that subnet everywhere; a float ``k``: ``argmax(k * psnr - cost / cost_full)``, the official
    ``argmax(eta * psnr - cost_list)`` with ``eta = k * cost_list[-1]`` (the README's sweep writes ``eta`` so)."""
    if eta == "best":
        return pred.argmax(1)
    if isinstance(eta, int) and not isinstance(eta, bool):
        return np.full(len(pred), eta)
    return (float(eta) * pred - costs[None] / costs[-1]).argmax(1)


def choose_for_budget(pred: np.ndarray, costs: np.ndarray, budget_macs: float) -> tuple[np.ndarray, float]:
    """The official Lagrangian choice ``argmax(k * psnr - cost / cost_full)`` at the largest ``k`` whose total cost
    stays within ``budget_macs`` (the total is non-decreasing in ``k``, so a binary search over the ``k`` where a
    patch's choice can change finds it). Returns the choices and ``k``."""
    dp = pred[:, :, None] - pred[:, None, :]
    dc = (costs[:, None] - costs[None, :])[None].repeat(len(pred), 0) / costs[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        ks = dc / dp
    ks = np.unique(ks[np.isfinite(ks) & (ks > 0)])
    # Probe between breakpoints (no ties there); spent(k) is a step function of k, non-decreasing.
    probes = np.concatenate([[ks[0] / 2] if len(ks) else [1.0], np.sqrt(ks[:-1] * ks[1:]), [ks[-1] * 2]]) \
        if len(ks) else np.array([1.0])

    def spent(k: float) -> float:
        return float(costs[choose_official(pred, costs, float(k))].sum())

    lo, hi = -1, len(probes) - 1  # invariant: probes[lo] feasible (lo = -1: only k -> 0, all cheapest), hi unknown
    if spent(probes[hi]) <= budget_macs:
        lo = hi
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if spent(probes[mid]) <= budget_macs:
                lo = mid
            else:
                hi = mid
    if lo < 0:
        return np.full(len(pred), int(costs.argmin())), 0.0
    return choose_official(pred, costs, float(probes[lo])), float(probes[lo])


def patch_starts(size: int, patch: int, step: int) -> list[int]:
    """Official ``crop_cpu`` offsets (``arange(0, size - patch + 1, step)``) plus one flush with the far edge, which
    the official code leaves out (it crops the image to the patches instead); one patch when the side is short."""
    if size <= patch:
        return [0]
    starts = list(range(0, size - patch + 1, step))
    if starts[-1] + patch < size:
        starts.append(size - patch)
    return starts


def parse_budget(text: str | float) -> tuple[str, float]:
    """``--budget``: ``("fraction", f)`` for a number in [0, 1] or ``"N%"``, ``("macs", n)`` for ``"1.5G"``/
    ``"1.5GMACs"``/``"800M"``. Anything else is a :class:`ConfigError` naming the option."""
    raw = str(text).strip()
    s = raw.lower().removesuffix("macs").removesuffix("mac")
    try:
        if s.endswith("%"):
            kind, value = "fraction", float(s[:-1]) / 100
        elif s.endswith("g") or s.endswith("m"):
            kind, value = "macs", float(s[:-1]) * (1e9 if s.endswith("g") else 1e6)
        else:
            kind, value = "fraction", float(s)
    except ValueError:
        raise ConfigError(f"--budget: {raw!r} is not a fraction (0.5, 50%) or a MAC count (1.5G, 800M)") from None
    if not np.isfinite(value) or value < 0:
        raise ConfigError(f"--budget: {raw!r} must be a non-negative number")
    if kind == "fraction" and value > 1:
        raise ConfigError(f"--budget: {raw!r} is over 1; a fraction is in [0, 1] (or 0-100%); write a MAC count "
                          "with its unit (e.g. 1.5G)")
    return kind, value
