"""SR-LUT (Jo and Kim, "Practical Single-Image Super-Resolution Using Look-Up Table", CVPR 2021).

Two forms of one model:

- ``srlut`` (variants ``srlut_s``, ``srlut_v``, ``srlut_f``): the small receptive-field network of the official
  ``1_Train_deep_model/Train_Model_S.py``. Each colour plane is processed alone; ``conv1`` sees 2x2 (S), 1x2 (V) or
  1x3 (F) pixels, then five 1x1 convolutions (64 channels, ReLU) give r*r values and a PixelShuffle. ``forward`` is the
  official training form: the rotation ensemble ``sum_k rot_k^-1(clamp(net(pad(rot_k(x))), -1, 1) * 127) / 255``,
  so ``litesr train --model srlut_s`` trains exactly what the table will hold. State-dict names are the official ones
  (``conv1`` .. ``conv6``).
- ``srlut_table``: inference by look-up in the int8 table (:mod:`litesr.lut`), no network. Its state dict is one
  int8 tensor ``lut`` of the official shape (L**D, 1, r, r), so an official ``Model_S_x4_4bit_int8.npy`` loads with
  ``litesr eval --weights Model_S_x4_4bit_int8.npy`` and ``litesr export --lut`` writes one from a trained network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..lut import DEFAULT_BITS, KERNELS, PADDING, levels, lut_upscale, transfer_to_lut
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel

_NET_KEYS = {f"conv{i}.{p}" for i in range(1, 7) for p in ("weight", "bias")}
_KERNEL_OF_SHAPE = {(2, 2): "s", (1, 2): "v", (1, 3): "f"}


def _check_kind(kind: str) -> str:
    if kind not in KERNELS:
        raise ConfigError(f"srlut: kind must be one of {', '.join(KERNELS)} (Model S, V, F), not {kind!r}")
    return kind


def _kernel_size(kind: str) -> tuple[int, int]:
    taps = KERNELS[kind]
    return max(dy for dy, _ in taps) + 1, max(dx for _, dx in taps) + 1


def _detect_net(sd: StateDict) -> dict | None:
    if set(sd) != _NET_KEYS or sd["conv1.weight"].ndim != 4 or sd["conv1.weight"].shape[1] != 1:
        return None
    kind = _KERNEL_OF_SHAPE.get(tuple(sd["conv1.weight"].shape[2:]))
    scale = math.isqrt(sd["conv6.weight"].shape[0])
    if kind is None or scale * scale != sd["conv6.weight"].shape[0]:
        return None
    return {"scale": scale, "kind": kind, "channels": sd["conv1.weight"].shape[0]}


@register_arch("srlut", scales=(2, 3, 4), detect=_detect_net, paper="Jo and Kim, CVPR 2021",
               tiny={"channels": 8})
class SRLUTNet(SRModel):
    """SR-LUT's network (Model S/V/F): per plane, receptive field 2x2 / 1x2 / 1x3, rotation-ensemble output."""

    safe_precisions = ("fp32",)  # the table keeps 8-bit input levels and int8 outputs: train and transfer in fp32

    def __init__(self, scale: int = 4, kind: str = "s", channels: int = 64) -> None:
        super().__init__()
        self.scale = scale
        self.kind = _check_kind(kind)
        self.conv1 = nn.Conv2d(1, channels, _kernel_size(kind))
        for i in range(2, 6):
            setattr(self, f"conv{i}", nn.Conv2d(channels, channels, 1))
        self.conv6 = nn.Conv2d(channels, scale * scale, 1)
        self.pixel_shuffle = nn.PixelShuffle(scale)
        for m in self.modules():  # the official initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_plane(self, x: Tensor) -> Tensor:
        """(N, 1, H, W) -> (N, 1, r(H - kh + 1), r(W - kw + 1)): the network alone, on one plane, no padding."""
        x = self.conv1(x)
        for i in range(2, 7):
            x = getattr(self, f"conv{i}")(F.relu(x))
        return self.pixel_shuffle(x)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        planes = x.reshape(b * c, 1, h, w)
        bottom, right = PADDING[self.kind]
        total = x.new_zeros(b * c, 1, h * self.scale, w * self.scale)
        for k in range(4):  # rotation ensemble, as the official training and test
            rotated = torch.rot90(planes, k, dims=(2, 3))
            out = self.forward_plane(F.pad(rotated, (0, right, 0, bottom), mode="reflect"))
            total = total + torch.rot90(out.clamp(-1, 1) * 127, (4 - k) % 4, dims=(2, 3))
        return (total / 255.0).reshape(b, c, h * self.scale, w * self.scale)

    @torch.no_grad()
    def to_lut(self, bits: int = DEFAULT_BITS) -> SRLUTTable:
        """The table form (a ``srlut_table`` model) at sampling interval 2**bits."""
        from ..registry import create_model

        table = create_model("srlut_table", scale=self.scale, kind=self.kind, bits=bits)
        table.lut.copy_(torch.from_numpy(transfer_to_lut(self, self.kind, bits)))
        return table


def _detect_table(sd: StateDict) -> dict | None:
    if set(sd) != {"lut"} or sd["lut"].dtype != torch.int8 or sd["lut"].ndim != 4 or sd["lut"].shape[1] != 1:
        return None
    entries, scale = sd["lut"].shape[0], sd["lut"].shape[2]
    found = [(kind, bits) for kind in KERNELS for bits in range(9) if levels(bits) ** len(KERNELS[kind]) == entries]
    if not found or sd["lut"].shape[3] != scale:
        return None
    kind, bits = found[0]  # 81 entries (S at 7 bits or V at 5) is the one ambiguous count: S, as the official files
    return {"scale": scale, "kind": kind, "bits": bits}


@register_arch("srlut_table", scales=(2, 3, 4), detect=_detect_table, paper="Jo and Kim, CVPR 2021",
               tiny={"bits": 6})
class SRLUTTable(SRModel):
    """SR-LUT by table look-up with simplex interpolation and the rotation ensemble; no network."""

    safe_precisions = ("fp32",)

    def __init__(self, scale: int = 4, kind: str = "s", bits: int = DEFAULT_BITS) -> None:
        super().__init__()
        self.scale = scale
        self.kind = _check_kind(kind)
        self.bits = bits
        entries = levels(bits) ** len(KERNELS[kind])
        if entries > 2**24:
            raise ConfigError(f"srlut_table: Model {kind.upper()} at 2**{bits} has {entries} entries; use bits >= 3")
        self.register_buffer("lut", torch.zeros(entries, 1, scale, scale, dtype=torch.int8))

    def forward(self, x: Tensor) -> Tensor:
        return lut_upscale(self.lut, x.float(), self.kind, self.bits).to(x.dtype)


register_variant("srlut_s", "srlut", {"kind": "s"}, description="SR-LUT Model S network: 2x2 receptive field (4-D LUT)")
register_variant("srlut_v", "srlut", {"kind": "v"}, description="SR-LUT Model V network: 1x2 receptive field (2-D LUT)")
register_variant("srlut_f", "srlut", {"kind": "f"}, description="SR-LUT Model F network: 1x3 receptive field (3-D LUT)")
