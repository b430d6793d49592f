"""TCFDN: a hybrid Transformer-CNN network for lightweight SR via multi-level (feature) distillation.

Provenance. No official code was found (no repository in the code index, no checkpoints), and the paper text could
not be retrieved here (searches of the stored pages/docs/issues/code corpora for "TCFDB", "ESTL", "Transformer-CNN
feature distillation" and "hybrid Transformer-CNN multi-level distillation" returned other papers). This module is
litesr's reading of the design as described to us, and its state-dict names are litesr's own. Layer counts and
widths below are litesr defaults, not the paper's; there is no published parameter count to check against.

Reading of the design:

- Network: a 3x3 conv (``head``); ``num_blocks`` TCFDBs in sequence; the outputs of all blocks concatenated and
  fused by a 1x1 conv + LeakyReLU (``fuse``, network-level distillation as in IMDN/RFDN); a 3x3 conv (``body_conv``)
  plus the head features (long skip); a conv + PixelShuffle upsampler (``upsampler.0``).
- TCFDB (Transformer-CNN feature distillation block), RFDN's progressive distillation with Transformer refinement:
  at each of ``num_stages`` stages the current features feed a distillation path, a 1x1 conv to
  ``distill_channels`` + LeakyReLU (``distill.j``), and a refinement path, an ESTL (``refine.j``), whose output feeds
  the next stage; a 3x3 conv to ``distill_channels`` + LeakyReLU closes the refinement path (``refine_conv``); the
  distilled features and the refined ones are concatenated and fused by a 1x1 conv (``fuse``), then enhanced spatial
  attention (``esa``, RFDN's full ESA) and a residual connection to the block input.
- ESTL (enhanced Swin Transformer layer): pre-norm (shifted) window self-attention with a relative position bias
  (every second ESTL of a block shifts by half a window), then a convolutional feed-forward network (``mlp``:
  Linear up, GELU, depthwise 3x3 conv on the image layout, GELU, Linear down), each with a residual connection.

Input in [0, 1]. Any size works: the input is reflect-padded to a multiple of the window and to at least the 15
pixels the ESA needs, and the output cropped back.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import ESA, conv, count_indexed, pixelshuffle_block, shifted_window_mask
from .omnisr import pad_for_windows
from .swinir import SwinTransformerBlock, image_to_tokens, tokens_to_image


class ConvFFN(nn.Module):
    """Convolutional feed-forward on tokens: ``fc1`` up, GELU, depthwise 3x3 ``dwconv`` on the image, GELU, ``fc2``."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = tokens_to_image(F.gelu(self.fc1(x)), h, w)
        return self.fc2(F.gelu(image_to_tokens(self.dwconv(x))))


class ESTL(SwinTransformerBlock):
    """Enhanced Swin Transformer layer: (shifted) window attention, then the convolutional feed-forward."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, ffn_ratio: float) -> None:
        super().__init__(dim, num_heads, window_size, shift_size, mlp_ratio=ffn_ratio)
        self.mlp = ConvFFN(dim, int(dim * ffn_ratio))

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        x = x + self.window_attention(self.norm1(x), h, w, mask)
        return x + self.mlp(self.norm2(x), h, w)


class TCFDB(nn.Module):
    """Transformer-CNN feature distillation block (see the module docstring)."""

    def __init__(self, channels: int, distill_channels: int, num_stages: int, num_heads: int, window_size: int,
                 ffn_ratio: float, esa_channels: int) -> None:
        super().__init__()
        self.distill = nn.ModuleList(conv(channels, distill_channels, 1) for _ in range(num_stages))
        self.refine = nn.ModuleList(
            ESTL(channels, num_heads, window_size, 0 if j % 2 == 0 else window_size // 2, ffn_ratio)
            for j in range(num_stages)
        )
        self.refine_conv = conv(channels, distill_channels, 3)
        self.fuse = conv(distill_channels * (num_stages + 1), channels, 1)
        self.esa = ESA(channels, esa_channels)
        self.act = nn.LeakyReLU(0.05, inplace=True)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        h, w = x.shape[-2:]
        distilled, tokens = [], image_to_tokens(x)
        for distill, refine in zip(self.distill, self.refine, strict=True):
            distilled.append(self.act(distill(tokens_to_image(tokens, h, w))))
            tokens = refine(tokens, h, w, mask)
        distilled.append(self.act(self.refine_conv(tokens_to_image(tokens, h, w))))
        return self.esa(self.fuse(torch.cat(distilled, dim=1))) + x


def _detect(sd: StateDict) -> dict[str, Any] | None:
    estl = "blocks.0.refine.0."
    if "head.weight" not in sd or estl + "attn.relative_position_index" not in sd or "body_conv.weight" not in sd:
        return None
    channels, in_channels = sd["head.weight"].shape[:2]
    return {
        "scale": math.isqrt(sd["upsampler.0.weight"].shape[0] // in_channels),
        "in_channels": int(in_channels),
        "channels": int(channels),
        "num_blocks": count_indexed(sd, r"blocks\.(\d+)\."),
        "num_stages": count_indexed(sd, r"blocks\.0\.refine\.(\d+)\."),
        "distill_channels": int(sd["blocks.0.distill.0.weight"].shape[0]),
        "num_heads": int(sd[estl + "attn.relative_position_bias_table"].shape[1]),
        "window_size": math.isqrt(sd[estl + "attn.relative_position_index"].shape[0]),
        "ffn_ratio": sd[estl + "mlp.fc1.weight"].shape[0] / channels,
        "esa_channels": int(sd["blocks.0.esa.conv1.weight"].shape[0]),
    }


@register_arch("tcfdn", scales=(2, 3, 4), detect=_detect,
               paper="hybrid Transformer-CNN network via multi-level distillation (TCFDB/ESTL); litesr reading",
               tiny={"channels": 8, "num_blocks": 1, "num_stages": 2, "distill_channels": 4, "num_heads": 2,
                     "window_size": 4, "esa_channels": 4})
class TCFDN(SRModel):
    """TCFDN: Transformer-CNN feature distillation blocks (1x1 distillation, ESTL refinement, 1x1 fusion, ESA) with
    network-level fusion of all block outputs. litesr's reading of the paper; no official weights exist."""

    def __init__(self, scale: int = 4, in_channels: int = 3, channels: int = 48, num_blocks: int = 4,
                 num_stages: int = 3, distill_channels: int = 24, num_heads: int = 4, window_size: int = 8,
                 ffn_ratio: float = 2.0, esa_channels: int = 12) -> None:
        super().__init__()
        if channels % num_heads:
            raise ConfigError(f"channels {channels} is not divisible by num_heads {num_heads}")
        if num_stages < 1 or num_blocks < 1:
            raise ConfigError(f"num_stages and num_blocks must be >= 1, not {num_stages} and {num_blocks}")
        self.scale, self.window_size = scale, window_size
        self.color_space = "rgb" if in_channels == 3 else "y"
        self.min_size = ESA.min_size
        self.shifted = num_stages > 1
        self.head = conv(in_channels, channels, 3)
        self.blocks = nn.ModuleList(
            TCFDB(channels, distill_channels, num_stages, num_heads, window_size, ffn_ratio, esa_channels)
            for _ in range(num_blocks)
        )
        self.fuse = nn.Sequential(conv(channels * num_blocks, channels, 1), nn.LeakyReLU(0.05, inplace=True))
        self.body_conv = conv(channels, channels, 3)
        self.upsampler = pixelshuffle_block(channels, in_channels, scale)

    def forward(self, x: Tensor) -> Tensor:
        x, h, w = pad_for_windows(x, self.window_size, self.min_size, mode="reflect")
        ws = self.window_size
        mask = shifted_window_mask(*x.shape[-2:], ws, ws // 2, x.device) if self.shifted else None
        fea = self.head(x)
        outs, out = [], fea
        for block in self.blocks:
            out = block(out, mask)
            outs.append(out)
        out = self.upsampler(self.body_conv(self.fuse(torch.cat(outs, dim=1))) + fea)
        return out[..., : h * self.scale, : w * self.scale]


register_variant("tcfdn", "tcfdn", {}, description="TCFDN, litesr reading (48 channels, 4 TCFDBs of 3 ESTLs)")
