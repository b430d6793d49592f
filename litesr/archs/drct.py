"""DRCT: Dense-residual-connected Transformer (Hsu et al., CVPR NTIRE 2024, "DRCT: Saving Image Super-resolution away
from Information Bottleneck").

SwinIR with dense connections: each residual dense group (``layers.i``) runs five Swin blocks ``swin1..5``, each on the
concatenation of the group input and all earlier growths, with a 1x1 ``adjustK`` conv producing ``gc`` new channels
(``adjust5`` back to ``embed_dim``), and a 0.2-scaled residual. Block widths grow by ``gc``; their head counts are
``num_heads - width % num_heads`` so that they divide the width. Names follow the official code
(ming053l/DRCT, ``drct/archs/DRCT_arch.py``), including each block's ``attn.relative_position_index`` and the
``attn_mask`` of the shifted blocks (swin2, swin4) for the training patch (``img_size``).

Size rule: the official forward needs multiples of the window (16); litesr pads inside ``forward`` (reflect) and
crops, and ``pad_multiple`` declares the window. When ``img_size`` is not larger than the window, the official code
turns every shift off (the checkpoints then carry no ``attn_mask``), and so does litesr. Input range [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .blocks import count_indexed, drop_path_rates, upsample_scale
from .hat import WindowTransformerSR
from .swinir import SwinTransformerBlock, _init_weights, image_to_tokens, tokens_to_image

BLOCKS_PER_GROUP = 5


class RDG(nn.Module):
    """Residual dense group: five Swin blocks on growing concatenations, 1x1 adjust convs, a 0.2 residual."""

    def __init__(self, dim: int, num_heads: int, window_size: int, *, mlp_ratio: float, qkv_bias: bool, gc: int,
                 drop_path: float, img_size: int | None) -> None:
        super().__init__()
        shift = window_size // 2 if img_size is None or img_size > window_size else 0
        for k in range(BLOCKS_PER_GROUP):
            width = dim + k * gc
            heads = num_heads if k == 0 else num_heads - width % num_heads  # the first block keeps num_heads
            setattr(self, f"swin{k + 1}", SwinTransformerBlock(
                width, heads, window_size, shift if k % 2 else 0,
                mlp_ratio=mlp_ratio if k < 3 else 1.0, qkv_bias=qkv_bias, drop_path=drop_path, img_size=img_size))
            setattr(self, f"adjust{k + 1}", nn.Conv2d(width, gc if k < BLOCKS_PER_GROUP - 1 else dim, 1))
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None) -> Tensor:
        features = [x]
        for k in range(1, BLOCKS_PER_GROUP + 1):
            y = getattr(self, f"swin{k}")(torch.cat(features, -1) if k > 1 else x, h, w, mask)
            y = getattr(self, f"adjust{k}")(tokens_to_image(y, h, w))
            features.append(image_to_tokens(self.lrelu(y) if k < BLOCKS_PER_GROUP else y))
        return features[-1] * 0.2 + x


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "layers.0.swin1.attn.relative_position_bias_table" not in sd or "layers.0.adjust5.weight" not in sd:
        return None
    embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
    n_layers = count_indexed(sd, r"layers\.(\d+)\.swin1\.norm1\.weight")
    window_size = (math.isqrt(sd["layers.0.swin1.attn.relative_position_bias_table"].shape[0]) + 1) // 2
    mask = sd.get("layers.0.swin2.attn_mask")
    return {
        "scale": upsample_scale(sd, "upsample"), "in_chans": int(in_chans), "embed_dim": int(embed_dim),
        "num_heads": tuple(sd[f"layers.{i}.swin1.attn.relative_position_bias_table"].shape[1]
                           for i in range(n_layers)),
        "window_size": window_size,
        "mlp_ratio": sd["layers.0.swin1.mlp.fc1.weight"].shape[0] / embed_dim,
        "qkv_bias": "layers.0.swin1.attn.qkv.bias" in sd,
        "gc": int(sd["layers.0.adjust1.weight"].shape[0]),
        "patch_norm": "patch_embed.norm.weight" in sd,
        "ape": "absolute_pos_embed" in sd,
        # No stored mask: the model was built for a patch no larger than the window (no shifts), as spandrel reads it.
        "img_size": math.isqrt(mask.shape[0]) * window_size if mask is not None else window_size,
        "resi_connection": "1conv" if "conv_after_body.weight" in sd else "identity",
    }


@register_arch(
    "drct", scales=(2, 3, 4, 8), paper="Hsu et al., CVPRW 2024 (DRCT)", detect=_detect,
    tiny={"embed_dim": 8, "num_heads": (2,), "window_size": 4, "gc": 4, "img_size": 16},
)
class DRCT(WindowTransformerSR):
    """DRCT: residual dense groups of Swin blocks. Defaults are DRCT (embed 180, 6 groups, 6 heads, window 16, gc 32).

    ``num_heads`` has one entry per group (its length is the number of groups).
    """

    def __init__(self, scale: int = 2, in_chans: int = 3, embed_dim: int = 180,
                 num_heads: Sequence[int] = (6,) * 6, window_size: int = 16, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, gc: int = 32, drop_path_rate: float = 0.1, ape: bool = False,
                 patch_norm: bool = True, img_size: int = 64, img_range: float = 1.0,
                 resi_connection: str = "1conv") -> None:
        super().__init__()
        heads = tuple(int(n) for n in num_heads)
        if img_size > window_size and img_size % window_size:
            raise ConfigError(f"img_size {img_size} must be a multiple of window_size {window_size}")
        self.init_common(scale, in_chans, embed_dim, window_size, img_range, patch_norm, ape, img_size,
                         resi_connection, 64)
        # Each group takes the first stochastic-depth rate of a 6-block slice (the official depths are 6 per group).
        rates = drop_path_rates(drop_path_rate, (6,) * len(heads))
        self.layers = nn.ModuleList(
            RDG(embed_dim, heads[i], window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, gc=gc,
                drop_path=rates[i][0], img_size=img_size)
            for i in range(len(heads))
        )
        self.apply(_init_weights)


register_variant("drct_m", "drct", {}, paper_params={4: 14_130_000},
                 description="DRCT (embed 180, 6 groups, window 16, gc 32), 14.13M; x4 Set5 33.11 / Set14 29.35 /"
                 " B100 28.18 / Urban100 28.06 / Manga109 32.59 (DRCT README, PSNR only)")
register_variant("drct_l", "drct", {"num_heads": (6,) * 12}, paper_params={4: 27_580_000},
                 description="DRCT-L (12 groups), 27.58M; x4 Set5 33.37 / Set14 29.54 / B100 28.16 / Urban100 28.70 /"
                 " Manga109 33.14 (DRCT README, PSNR only)")
