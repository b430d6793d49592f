"""DRSAN: Dynamic Residual Self-Attention Network for Lightweight Single Image Super-Resolution
(Park, Soh, Cho, IEEE TMM 2021).

The official code (saturnian77/DRSAN, ``model.py`` / ``ops.py``) is TensorFlow 1.8 and its checkpoints are TF files,
so there is no PyTorch state dict to match; the names here are litesr's own, one module per TF op group:

- ``head``: conv3x3 3 -> C.
- ``blocks.N`` (DRAG, dynamic residual attention group): ``drm`` (dynamic residual module: 1x1 C -> 16, PReLU,
  1x1 16 -> K, global average -> K residual weights, K = U(U+1)/2 for U units), ``units.U`` (residual block:
  PReLU, conv3x3, PReLU, conv3x3), ``fuse`` (1x1 over the block input and the U unit outputs). Unit u outputs
  f_u = (r_u + sum_j a_{u,j} f_j) * sigmoid(r_u), j < u (f_0 = block input): the DRA-weighted sum of all earlier
  features plus the residual r_u, gated by the parameter-free residual self-attention sigmoid(r_u).
- ``body_conv``: conv3x3 after the groups, plus the long skip from the head.
- ``upsampler``: conv to 4C + PixelShuffle(2) (twice for x4) or conv to 9C + PixelShuffle(3); ``tail``: conv3x3 C -> 3.

PReLUs are per-channel and start at slope 0 (``tf.constant_initializer(0.0)``). Input RGB in [0, 1]; any size.
Variants follow ``build.py``: 32s/32m/32l = 32 channels, 4 units, 4/8/10 groups; 48s/48m = 48 channels, 3 units,
4/8 groups.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import Upsample, conv


class DynamicResidualModule(nn.Module):
    """DRM: per-image weights of every residual path of a group, from the group input's statistics."""

    def __init__(self, channels: int, n_paths: int, hidden: int = 16) -> None:
        super().__init__()
        self.conv_in = conv(channels, hidden, 1)
        self.act = nn.PReLU(hidden, init=0.0)
        self.conv_out = conv(hidden, n_paths, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_out(self.act(self.conv_in(x))).mean(dim=(2, 3), keepdim=True)  # (B, K, 1, 1)


class ResidualUnit(nn.Sequential):
    """RB of a DRAG: PReLU, conv3x3, PReLU, conv3x3 (pre-activation)."""

    def __init__(self, channels: int) -> None:
        super().__init__(nn.PReLU(channels, init=0.0), conv(channels, channels), nn.PReLU(channels, init=0.0),
                         conv(channels, channels))


class DRAG(nn.Module):
    """Dynamic residual attention group: U residual units with dynamic residual self-attention, 1x1 fusion."""

    def __init__(self, channels: int, n_units: int, drm_channels: int = 16) -> None:
        super().__init__()
        self.drm = DynamicResidualModule(channels, n_units * (n_units + 1) // 2, drm_channels)
        self.units = nn.ModuleList([ResidualUnit(channels) for _ in range(n_units)])
        self.fuse = conv(channels * (n_units + 1), channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        weights = self.drm(x)
        feats = [x]
        k = 0
        for unit in self.units:
            residual = unit(feats[-1])
            paths = sum(f * weights[:, k + j : k + j + 1] for j, f in enumerate(feats))
            k += len(feats)
            feats.append((residual + paths) * torch.sigmoid(residual))
        return self.fuse(torch.cat(feats, dim=1))


def _detect(sd: StateDict) -> dict | None:
    if "blocks.0.drm.conv_in.weight" not in sd or "body_conv.weight" not in sd or "head.weight" not in sd:
        return None
    n_feats = sd["head.weight"].shape[0]
    n_blocks = len({m.group(1) for k in sd if (m := re.match(r"blocks\.(\d+)\.", k))})
    n_units = len({m.group(1) for k in sd if (m := re.match(r"blocks\.0\.units\.(\d+)\.", k))})
    first = sd["upsampler.0.weight"].shape[0] // n_feats
    scale = 3 if first == 9 else 2 ** sum(1 for k in sd if re.fullmatch(r"upsampler\.\d+\.weight", k))
    return {"scale": scale, "n_feats": n_feats, "n_blocks": n_blocks, "n_units": n_units,
            "drm_channels": sd["blocks.0.drm.conv_in.weight"].shape[0]}


@register_arch("drsan", scales=(2, 3, 4), detect=_detect, paper="Park, Soh, Cho, IEEE TMM 2021",
               tiny={"n_feats": 8, "n_blocks": 1, "n_units": 2, "drm_channels": 4})
class DRSAN(SRModel):
    """DRSAN: groups of residual units whose skip connections are weighted per image (DRA) and gated (RSA)."""

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1

    def __init__(self, scale: int = 4, n_feats: int = 32, n_blocks: int = 4, n_units: int = 4,
                 drm_channels: int = 16) -> None:
        super().__init__()
        self.scale = scale
        self.head = conv(3, n_feats)
        self.blocks = nn.Sequential(*[DRAG(n_feats, n_units, drm_channels) for _ in range(n_blocks)])
        self.body_conv = conv(n_feats, n_feats)
        self.upsampler = Upsample(scale, n_feats)
        self.tail = conv(n_feats, 3)

    def forward(self, x: Tensor) -> Tensor:
        head = self.head(x)
        return self.tail(self.upsampler(self.body_conv(self.blocks(head)) + head))


# Paper Table (README figures/table.png) prints millions with two decimals; 32l was released for x2 only.
_DRSAN_VARIANTS = {
    "drsan_32s": ({"n_feats": 32, "n_blocks": 4, "n_units": 4}, {2: 0.37, 3: 0.41, 4: 0.41}),
    "drsan_32m": ({"n_feats": 32, "n_blocks": 8, "n_units": 4}, {2: 0.69, 3: 0.74, 4: 0.73}),
    "drsan_32l": ({"n_feats": 32, "n_blocks": 10, "n_units": 4}, {2: 0.85}),
    "drsan_48s": ({"n_feats": 48, "n_blocks": 4, "n_units": 3}, {2: 0.65, 3: 0.75, 4: 0.73}),
    "drsan_48m": ({"n_feats": 48, "n_blocks": 8, "n_units": 3}, {2: 1.19, 3: 1.29, 4: 1.27}),
}
register_variant("drsan", "drsan", {}, description="DRSAN-32s (32 channels, 4 DRAGs of 4 units)",
                 paper_params={s: round(m * 1e6) for s, m in _DRSAN_VARIANTS["drsan_32s"][1].items()})
for _name, (_config, _millions) in _DRSAN_VARIANTS.items():
    register_variant(_name, "drsan", _config, description=f"DRSAN-{_name.split('_')[1]}",
                     paper_params={s: round(m * 1e6) for s, m in _millions.items()})
