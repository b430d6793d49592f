"""SAN: Second-order Attention Network for Single Image Super-Resolution (Dai et al., CVPR 2019).

- Second-order channel attention (SOCA): the channel weights come from the covariance of the features (global
  covariance pooling), whose matrix square root is taken by five Newton-Schulz iterations (pre-normalised by the trace,
  post-compensated by its square root), averaged per channel, then squeezed/excited as in RCAN.
- Non-locally enhanced residual group (NLRG): a region-level non-local block (embedded Gaussian, computed separately in
  each quadrant of the feature map) before and after a stack of local-source residual attention groups (LSRAG:
  residual blocks, SOCA, conv, skip), which share the source skip ``gamma * input`` (share-source skip connections).
- The paper model: 20 LSRAGs x 10 residual blocks, 64 channels, reduction 16.

State-dict names follow the official code (daitao/SAN ``TestCode/code/model/san.py``), including tensors that the
official forward never uses (``conv_last`` of the network, ``gamma`` of each group, ``non_local.soca``), so official
checkpoints load with ``strict=True``. A quirk of the official non-local block is kept: for 2-D inputs its
``sub_sample`` flag is overwritten by a class object, so ``g`` and ``phi`` always end in a 2x2 max-pool (keys
``g.0``/``phi.0``). Official weights expect pixels in [0, 255].

Deviations, all outside what the official code can run: the covariance pooling is computed as centred features times
their transpose instead of through an (HW x HW) centring matrix (same value, linear memory); crops for SOCA above
1000 pixels take the centre of each over-long side (the official slicing is off for a side of exactly 1000); a zero
trace yields zero attention input instead of NaN; inputs smaller than 4 pixels are padded (the quadrant max-pool
needs 2 pixels per quadrant) and the output cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import CALayer, MeanShift, Upsample, conv, count_indexed, run_at_least
from .edsr import DIV2K_RGB_MEAN, detect_rgb_range, upsampler_scale

SOCA_MAX_SIDE = 1000  # the official SOCA pools the covariance over at most a 1000 x 1000 centre crop
MIN_SIDE = 4  # each quadrant of the region-level non-local block needs 2 x 2 pixels for its max-pool


def covariance_pool(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, C) covariance of the channels over the H*W positions (divided by H*W, as MPN-COV)."""
    b, c, h, w = x.shape
    feats = x.reshape(b, c, h * w)
    centred = feats - feats.mean(dim=2, keepdim=True)
    return centred @ centred.transpose(1, 2) / (h * w)


def sqrtm_newton_schulz(cov: Tensor, iterations: int = 5) -> Tensor:
    """Matrix square root of a batch of SPD matrices by coupled Newton-Schulz iterations (MPN-COV ``SqrtmLayer``).

    The matrix is divided by its trace first (so the iteration converges) and the result multiplied by the square root
    of the trace.
    """
    c = cov.shape[-1]
    eye3 = 3.0 * torch.eye(c, dtype=cov.dtype, device=cov.device).expand_as(cov)
    trace = cov.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(torch.finfo(cov.dtype).tiny).view(-1, 1, 1)
    a = cov / trace
    if iterations < 2:
        raise ValueError(f"Newton-Schulz square root needs at least 2 iterations, not {iterations}")
    zy = 0.5 * (eye3 - a)
    y, z = a @ zy, zy
    for _ in range(iterations - 2):
        zy = 0.5 * (eye3 - z @ y)
        y, z = y @ zy, zy @ z
    return 0.5 * y @ (eye3 - z @ y) * trace.sqrt()


def _centre_crop(x: Tensor, limit: int) -> Tensor:
    h, w = x.shape[-2:]
    top, left = max(0, (h - limit) // 2), max(0, (w - limit) // 2)
    return x[..., top:top + min(h, limit), left:left + min(w, limit)]


class SOCA(CALayer):
    """Second-order channel attention: ``CALayer``'s squeeze/excite on the covariance-pooled (sqrt) statistics."""

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        cov_sqrt = sqrtm_newton_schulz(covariance_pool(_centre_crop(x, SOCA_MAX_SIDE)), 5)
        return x * self.conv_du(cov_sqrt.mean(dim=1).view(b, c, 1, 1))


class NonLocalBlock2D(nn.Module):
    """Embedded-Gaussian non-local block (Wang et al.) as the official SAN builds it: ``g``/``phi`` max-pooled by 2."""

    def __init__(self, in_channels: int, inter_channels: int) -> None:
        super().__init__()
        self.inter_channels = inter_channels
        self.g = nn.Sequential(nn.Conv2d(in_channels, inter_channels, 1), nn.MaxPool2d(2))
        self.theta = nn.Conv2d(in_channels, inter_channels, 1)
        self.phi = nn.Sequential(nn.Conv2d(in_channels, inter_channels, 1), nn.MaxPool2d(2))
        self.W = nn.Conv2d(inter_channels, in_channels, 1)
        nn.init.zeros_(self.W.weight)  # as the official block: it starts as the identity
        nn.init.zeros_(self.W.bias)

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        g_x = self.g(x).flatten(2).transpose(1, 2)  # (B, N/4, C')
        theta_x = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, C')
        phi_x = self.phi(x).flatten(2)  # (B, C', N/4)
        attention = F.softmax(theta_x @ phi_x, dim=-1)
        y = (attention @ g_x).transpose(1, 2).reshape(b, self.inter_channels, h, w)
        return self.W(y) + x


class RegionNonLocal(nn.Module):
    """The official ``Nonlocal_CA``: the non-local block applied to each quadrant of the feature map on its own.

    It also owns a SOCA (``soca``) that the official forward never calls; it is kept for the checkpoint keys.
    """

    def __init__(self, in_feat: int, inter_feat: int, reduction: int = 8) -> None:
        super().__init__()
        self.soca = SOCA(in_feat, reduction)
        self.non_local = NonLocalBlock2D(in_feat, inter_feat)

    def forward(self, x: Tensor) -> Tensor:
        h1, w1 = x.shape[2] // 2, x.shape[3] // 2
        top = torch.cat([self.non_local(x[:, :, :h1, :w1]), self.non_local(x[:, :, :h1, w1:])], dim=3)
        bottom = torch.cat([self.non_local(x[:, :, h1:, :w1]), self.non_local(x[:, :, h1:, w1:])], dim=3)
        return torch.cat([top, bottom], dim=2)


class ResidualBlock(nn.Module):
    """SAN's residual block (official ``RB``): conv-ReLU-conv plus the input, no attention."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.conv_first = nn.Sequential(conv(n_feats, n_feats, 3), nn.ReLU(inplace=True), conv(n_feats, n_feats, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv_first(x) + x


class LSRAG(nn.Module):
    """Local-source residual attention group: residual blocks, SOCA, conv, plus the group input."""

    def __init__(self, n_feats: int, reduction: int, n_resblocks: int) -> None:
        super().__init__()
        self.rcab = nn.ModuleList(ResidualBlock(n_feats) for _ in range(n_resblocks))
        self.soca = SOCA(n_feats, reduction)
        self.conv_last = conv(n_feats, n_feats, 3)
        self.gamma = nn.Parameter(torch.zeros(1))  # in the official checkpoints, unused by the official forward

    def forward(self, x: Tensor) -> Tensor:
        out = x
        for block in self.rcab:
            out = block(out)
        return self.conv_last(self.soca(out)) + x


def _detect(sd: StateDict) -> dict | None:
    if "RG.0.rcab.0.conv_first.0.weight" not in sd or "non_local.non_local.theta.weight" not in sd:
        return None
    n_feats, n_colors = sd["head.0.weight"].shape[:2]
    return {
        "scale": upsampler_scale(sd, "tail.0", n_feats),
        "n_resgroups": count_indexed(sd, r"RG\.(\d+)\.conv_last\.weight$"),
        "n_resblocks": count_indexed(sd, r"RG\.0\.rcab\.(\d+)\.conv_first\.0\.weight$"),
        "n_feats": n_feats,
        "reduction": n_feats // sd["RG.0.soca.conv_du.0.weight"].shape[0],
        "n_colors": n_colors,
        "rgb_range": detect_rgb_range(sd, 255.0),
    }


@register_arch("san", scales=(2, 3, 4, 8), detect=_detect, paper="Dai et al., CVPR 2019",
               tiny={"n_resgroups": 2, "n_resblocks": 2, "n_feats": 16, "reduction": 4})
class SAN(SRModel):
    """SAN: non-locally enhanced groups of LSRAGs with second-order channel attention (paper: 20 x 10, 64 ch)."""

    def __init__(self, scale: int = 4, n_resgroups: int = 20, n_resblocks: int = 10, n_feats: int = 64,
                 reduction: int = 16, n_colors: int = 3, rgb_range: float = 255.0) -> None:
        super().__init__()
        self.scale = scale
        self.input_range = rgb_range
        self.sub_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN)
        self.head = nn.Sequential(conv(n_colors, n_feats, 3))
        self.gamma = nn.Parameter(torch.zeros(1))  # weight of the share-source skip
        self.RG = nn.ModuleList(LSRAG(n_feats, reduction, n_resblocks) for _ in range(n_resgroups))
        self.conv_last = conv(n_feats, n_feats, 3)  # in the official checkpoints, unused by the official forward
        self.tail = nn.Sequential(Upsample(scale, n_feats), conv(n_feats, n_colors, 3))
        self.add_mean = MeanShift(rgb_range, DIV2K_RGB_MEAN, sign=1)
        self.non_local = RegionNonLocal(n_feats, n_feats // 8, reduction=8)

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, MIN_SIDE, self.scale)

    def _forward(self, x: Tensor) -> Tensor:
        feat = self.head(self.sub_mean(x))
        source = self.non_local(feat)
        out = source
        for group in self.RG:
            out = group(out) + self.gamma * source
        out = self.non_local(out) + feat
        return self.add_mean(self.tail(out))


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_SAN_PUBLISHED = {
    2: {"Set5": (38.31, 0.9620), "Set14": (34.07, 0.9213), "B100": (32.42, 0.9028), "Urban100": (33.10, 0.9370),
        "Manga109": (39.32, 0.9792)},
    3: {"Set5": (34.75, 0.9300), "Set14": (30.59, 0.8476), "B100": (29.33, 0.8112), "Urban100": (28.93, 0.8671),
        "Manga109": (34.30, 0.9494)},
    4: {"Set5": (32.64, 0.9003), "Set14": (28.92, 0.7888), "B100": (27.78, 0.7436), "Urban100": (26.79, 0.8068),
        "Manga109": (31.18, 0.9169)},
}
register_variant("san", "san", {}, description="SAN (20 LSRAGs x 10 residual blocks, 64 channels, reduction 16)"
                 " [published: SwinIR T2/CSNLN]",
                 paper_params={2: 15_700_000, 3: 15_700_000, 4: 15_700_000},
                 paper_psnr=_SAN_PUBLISHED)
