"""SeemoRe: "See More Details: Efficient Image Super-Resolution by Experts Mining" (Zamfir, Wu, Mehta, Zhang and
Timofte, ICML 2024).

Residual groups of a local block (RME: a mixture of low-rank experts, routed per image) and a global block (SME:
striped depthwise 1 x k / k x 1 convolutions gating a value branch), each followed by a gated feed-forward; a mean
shift, a LayerNorm and conv after the body, a long skip and a conv + PixelShuffle head.

Mixture of low-rank experts: the input is split in two (after a channel shuffle in SeemoRe-T/B); one half ``x`` goes
through a striped 3-tap conv, the other ``k`` through a recursive 4x4-stride "calibration" (``agg_conv`` applied
``recursive`` times, a conv, bilinear upsampling, residual). A router (global average pool + bias-free linear) picks
the ``topk`` experts of each image by softmax weight; expert i projects both halves to a rank ``low_dim`` (2, 4, 8
... for ``lr_space`` "exp"), multiplies them and projects back, and the weighted outputs are added to ``x``. Only the
chosen experts run (the official eval code does the same for a batch of one; litesr routes every image of a batch
on its own).

State-dict names follow the official code (``eduardzamfir/seemoredetails``, ``basicsr/archs/seemore_arch.py``) and
spandrel's copy: ``conv_1``, ``body.i.local_block.{norm_1,block.{conv_1,agg_conv,conv,conv_2,moe_layer.{experts.j,
gate.body.2},proj},norm_2,ffn}``, ``body.i.global_block.{norm_1,block.{proj,to_qv.0,attn.conv},norm_2,ffn}``,
``norm``, ``conv_2``, ``upsampler.0``. ``use_shuffle``, ``recursive`` and ``topk`` leave no trace in the tensors:
detection takes the official configurations' values (SeemoRe-L: no shuffle, one recursion; otherwise shuffle, two).

Size rule: RGB in [0, 1], any size; the calibration branch needs H and W of at least 4**recursive (16), smaller
inputs are padded inside ``forward``; other sizes run as they are (floor division in the strided convs), as the
official test does. The router pools the whole image: tiles may route to other experts than the whole image would.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import LayerNorm2d, count_indexed, run_at_least

LRSpace = Literal["linear", "exp", "double"]
# rank of expert i in each low-rank space
_LOW_DIM: dict[str, Callable[[int], int]] = {"linear": lambda i: i + 2, "exp": lambda i: 2 ** (i + 1),
                                             "double": lambda i: 2 * i + 2}
RGB_MEAN = (0.4488, 0.4371, 0.4040)


class StripedConv2d(nn.Module):
    """A 1 x k then a k x 1 convolution (depthwise when asked), key ``conv.{0,1}``."""

    def __init__(self, channels: int, kernel_size: int, depthwise: bool = False) -> None:
        super().__init__()
        groups, pad = (channels if depthwise else 1), kernel_size // 2
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, (1, kernel_size), padding=(0, pad), groups=groups),
                                  nn.Conv2d(channels, channels, (kernel_size, 1), padding=(pad, 0), groups=groups))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class GatedFFN(nn.Module):
    """1x1 to ``mlp_ratio`` x channels + GELU, split in value and gate, depthwise 3x3 gate, product, 1x1 + GELU."""

    def __init__(self, channels: int, mlp_ratio: int = 2, kernel_size: int = 3) -> None:
        super().__init__()
        hidden = channels * mlp_ratio
        self.fn_1 = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.GELU())
        self.fn_2 = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.GELU())
        self.gate = nn.Conv2d(hidden // 2, hidden // 2, kernel_size, padding=kernel_size // 2, groups=hidden // 2)

    def forward(self, x: Tensor) -> Tensor:
        x, gate = torch.chunk(self.fn_1(x), 2, dim=1)
        return self.fn_2(x * self.gate(gate))


class Expert(nn.Module):
    """A low-rank expert: ``conv_3(conv_1(x) * conv_2(k))`` with 1x1 convs through ``low_dim`` channels."""

    def __init__(self, channels: int, low_dim: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(channels, low_dim, 1)
        self.conv_2 = nn.Conv2d(channels, low_dim, 1)
        self.conv_3 = nn.Conv2d(low_dim, channels, 1)

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        return self.conv_3(self.conv_2(k) * self.conv_1(x))


class Router(nn.Module):
    """Global average pool and a bias-free linear to one logit per expert (key ``body.2``)."""

    def __init__(self, channels: int, num_experts: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(channels, num_experts, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class MoELayer(nn.Module):
    """``x`` plus the routed experts' outputs weighted by their softmax weights; each image picks its own ``topk``."""

    def __init__(self, experts: list[Expert], gate: Router, num_expert: int = 1) -> None:
        super().__init__()
        self.experts = nn.ModuleList(experts)
        self.gate = gate
        self.num_expert = num_expert

    def forward(self, x: Tensor, k: Tensor) -> Tensor:
        weights = F.softmax(self.gate(x), dim=1, dtype=torch.float).to(x.dtype)
        top_weights, top_experts = torch.topk(weights, self.num_expert)
        out = x
        for i, expert in enumerate(self.experts):
            chosen = top_experts == i  # (B, topk)
            rows = chosen.any(dim=1).nonzero().squeeze(1)
            if rows.numel() == 0:  # no image routed here: the expert costs nothing
                continue
            w = (top_weights * chosen).sum(dim=1)[rows].view(-1, 1, 1, 1)
            if rows.numel() == x.shape[0]:
                out = out + expert(x, k) * w
            else:
                out = out.index_add(0, rows, expert(x[rows], k[rows]) * w)
        return out


def channel_shuffle(x: Tensor, groups: int = 2) -> Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class MoEBlock(nn.Module):
    """The local expert-mining block (see the module docstring)."""

    def __init__(self, channels: int, num_experts: int, topk: int, use_shuffle: bool, lr_space: str,
                 recursive: int) -> None:
        super().__init__()
        if lr_space not in _LOW_DIM:
            raise ConfigError(f"lr_space must be one of {', '.join(_LOW_DIM)}, not {lr_space!r}")
        self.use_shuffle, self.recursive = use_shuffle, recursive
        self.conv_1 = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.GELU(),
                                    nn.Conv2d(channels, 2 * channels, 1))
        self.agg_conv = nn.Sequential(nn.Conv2d(channels, channels, 4, stride=4, groups=channels), nn.GELU())
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
                                  nn.Conv2d(channels, channels, 1))
        self.conv_2 = nn.Sequential(StripedConv2d(channels, 3, depthwise=True), nn.GELU())
        grow = _LOW_DIM[lr_space]
        self.moe_layer = MoELayer([Expert(channels, grow(i)) for i in range(num_experts)],
                                  Router(channels, num_experts), topk)
        self.proj = nn.Conv2d(channels, channels, 1)

    def calibrate(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        y = x
        for _ in range(self.recursive):
            y = self.agg_conv(y)
        y = F.interpolate(self.conv(y), size=(h, w), mode="bilinear", align_corners=False)
        return x + y

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_1(x)
        if self.use_shuffle:
            x = channel_shuffle(x, groups=2)
        x, k = torch.chunk(x, 2, dim=1)
        return self.proj(self.moe_layer(self.conv_2(x), self.calibrate(k)))


class StripedConvFormer(nn.Module):
    """``proj(striped_conv(q) * v)`` with q, v from a 1x1 + GELU."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, channels, 1)
        self.to_qv = nn.Sequential(nn.Conv2d(channels, channels * 2, 1), nn.GELU())
        self.attn = StripedConv2d(channels, kernel_size, depthwise=True)

    def forward(self, x: Tensor) -> Tensor:
        q, v = self.to_qv(x).chunk(2, dim=1)
        return self.proj(self.attn(q) * v)


class _PreNormPair(nn.Module):
    """``x + block(norm_1(x))`` then ``x + ffn(norm_2(x))`` (RME and SME share this frame)."""

    def __init__(self, channels: int, block: nn.Module) -> None:
        super().__init__()
        self.norm_1 = LayerNorm2d(channels)
        self.block = block
        self.norm_2 = LayerNorm2d(channels)
        self.ffn = GatedFFN(channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block(self.norm_1(x)) + x
        return self.ffn(self.norm_2(x)) + x


class ResGroup(nn.Module):
    def __init__(self, channels: int, num_experts: int, global_kernel_size: int, lr_space: str, topk: int,
                 recursive: int, use_shuffle: bool) -> None:
        super().__init__()
        self.local_block = _PreNormPair(channels, MoEBlock(channels, num_experts, topk, use_shuffle, lr_space,
                                                           recursive))
        self.global_block = _PreNormPair(channels, StripedConvFormer(channels, global_kernel_size))

    def forward(self, x: Tensor) -> Tensor:
        return self.global_block(self.local_block(x))


def _lr_space(low_dims: list[int]) -> str | None:
    for name, grow in _LOW_DIM.items():
        if low_dims == [grow(i) for i in range(len(low_dims))]:
            return name
    return None


def _detect(sd: StateDict) -> dict[str, Any] | None:
    prefix = "body.0.local_block.block.moe_layer.experts"
    if "conv_1.weight" not in sd or f"{prefix}.0.conv_1.weight" not in sd or "upsampler.0.weight" not in sd:
        return None
    dim = int(sd["conv_1.weight"].shape[0])
    num_layers = count_indexed(sd, r"body\.(\d+)\.")
    num_experts = count_indexed(sd, rf"{prefix}\.(\d+)\.")
    lr_space = _lr_space([int(sd[f"{prefix}.{i}.conv_1.weight"].shape[0]) for i in range(num_experts)])
    if lr_space is None:
        return None
    large = num_layers == 16 and dim == 48  # SeemoRe-L's configuration (see the module docstring)
    return {"scale": math.isqrt(sd["upsampler.0.weight"].shape[0] // 3), "num_experts": num_experts,
            "num_layers": num_layers, "embedding_dim": dim, "use_shuffle": not large, "recursive": 1 if large else 2,
            "global_kernel_size": int(sd["body.0.global_block.block.attn.conv.0.weight"].shape[3]),
            "lr_space": lr_space, "topk": 1}


@register_arch("seemore", scales=(4, 2, 3), detect=_detect, paper="Zamfir et al., ICML 2024",
               tiny={"embedding_dim": 8, "num_layers": 1, "num_experts": 2})
class SeemoRe(SRModel):
    """SeemoRe (defaults: SeemoRe-T, 6 groups of 36 channels, 3 experts of rank 2 / 4 / 8)."""

    def __init__(self, scale: int = 4, num_experts: int = 3, num_layers: int = 6, embedding_dim: int = 36,
                 img_range: float = 1.0, use_shuffle: bool = True, global_kernel_size: int = 11,
                 recursive: int = 2, lr_space: LRSpace = "exp", topk: int = 1) -> None:
        super().__init__()
        self.scale = scale
        self.img_range = img_range
        self.min_size = 4**recursive
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_1 = nn.Conv2d(3, embedding_dim, 3, padding=1)
        self.body = nn.ModuleList([ResGroup(embedding_dim, num_experts, global_kernel_size, lr_space, topk,
                                            recursive, use_shuffle) for _ in range(num_layers)])
        self.norm = LayerNorm2d(embedding_dim)
        self.conv_2 = nn.Conv2d(embedding_dim, embedding_dim, 3, padding=1)
        self.upsampler = nn.Sequential(nn.Conv2d(embedding_dim, 3 * scale**2, 3, padding=1), nn.PixelShuffle(scale))

    def _forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = self.conv_1((x - mean) * self.img_range)
        res = x
        for layer in self.body:
            x = layer(x)
        x = self.upsampler(self.conv_2(self.norm(x)) + res)
        return x / self.img_range + mean

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


# Published PSNR/SSIM (Y), parameters and GMACs (1280x720 output): paper Table 1 (the official README's
# figures/main_table.png). SeemoRe-B and -L are not in that table.
_SEEMORE_T = {
    2: {"Set5": (38.06, 0.9608), "Set14": (33.65, 0.9186), "B100": (32.23, 0.9004), "Urban100": (32.22, 0.9286),
        "Manga109": (39.01, 0.9777)},
    3: {"Set5": (34.46, 0.9276), "Set14": (30.44, 0.8445), "B100": (29.15, 0.8063), "Urban100": (28.27, 0.8538),
        "Manga109": (33.92, 0.9460)},
    4: {"Set5": (32.31, 0.8965), "Set14": (28.72, 0.7840), "B100": (27.65, 0.7384), "Urban100": (26.23, 0.7883),
        "Manga109": (30.82, 0.9107)},
}
register_variant("seemore", "seemore", {}, description="SeemoRe-T (6 groups, dim 36, 3 experts) [published: paper "
                 "Table 1]", paper_params={2: 220_000, 3: 225_000, 4: 232_000}, paper_psnr=_SEEMORE_T,
                 paper_macs={2: 45, 3: 20, 4: 12})
register_variant("seemore_b", "seemore", {"num_layers": 8, "embedding_dim": 48},
                 description="SeemoRe-B (8 groups, dim 48), the official test configuration")
register_variant("seemore_l", "seemore", {"num_layers": 16, "embedding_dim": 48, "use_shuffle": False,
                                          "recursive": 1},
                 description="SeemoRe-L (16 groups, dim 48, no shuffle, one recursion), the official configuration")
