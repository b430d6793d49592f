"""ESRT: Transformer for Single Image Super-Resolution (Lu et al., CVPR Workshops 2022; "Efficient SR Transformer").

State-dict names follow the official code (luissen/ESRT, ``model/esrt.py``, ``util/transformer.py``):
``head.0``, ``body.0`` (``Un``: the lightweight CNN backbone ``encoder1..3`` = high-preserving blocks, ``reduce``,
the lightweight Transformer backbone ``attention``, ``alise``, ``weight1/2``), ``reduce``, ``tail`` (upsampler +
conv) and ``up`` (upsampler + bias-free conv + ReLU on the shallow features).

- ARFB (adaptive residual feature block, official ``one_module``): two residual units (``layer1/2``: 3x3 to half the
  channels, PReLU, 3x3 back, each path scaled by a learned scalar ``weightN.scale``), a 1x1 reduction of both, channel
  attention (``atten``), a 3x3 conv, and a scaled residual.
- HPB (high-preserving block, ``Updownblock``): ARFB, then the high-frequency filtering module: 2x2 average pooling,
  bilinear upsampling back and subtraction give the high frequencies (refined by ``decoder_high``), while the pooled
  map goes through ``decoder_low`` five times (one set of weights); both are merged by a 1x1 conv, channel
  attention and an ARFB, plus the input.
- ET (efficient Transformer, ``MLABlock``): every pixel's 3x3 neighbourhood (zero-padded) is one token of
  ``9 * n_feats`` features; pre-norm EMHA and an MLP (hidden = dim / 4, ReLU) with residuals; the tokens are folded
  back (overlaps summed). EMHA (``EffAttention``) reduces the tokens to half the features, projects q, k, v, splits
  the token sequence into chunks of N // 4 tokens that attend within themselves, and projects back to the full
  width. Its softmax scale uses the unreduced head width ((9 * n_feats / heads) ** -0.5), as the official code.

Parameter counts: 677,783 / 770,263 / 751,767 at x2 / x3 / x4 (x3 is the largest: one conv to 9C per upsampler);
the ~751K quoted for the x4 model truncates to thousands.

Input in [0, 1] (the official test feeds ``img / 255``). Any size works; the average pooling and the four token
chunks need at least 2 x 2 pixels, so smaller inputs are padded and the output cropped. A chunk attends over a
quarter of the image, so memory grows with the square of the image area: chunks above 1,024 tokens use the fused
attention kernel (same result to float rounding) instead of materialising the attention matrix. The official test
script runs the model on four overlapping quadrants (``forward_chop``, 10-pixel overlap); litesr's ``forward`` is the
model's own forward on the whole image, so its outputs on large images differ from that script's.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import multistage_scale
from .base import SRModel
from .blocks import CALayer, Mlp, Upsample, conv, count_indexed, run_at_least

TOKEN_CHUNKS = 4  # EMHA attends within N // 4 consecutive tokens
LOW_FREQUENCY_REPEATS = 5  # decoder_low is applied this many times (shared weights)
PATCH = 3  # ET tokens are 3 x 3 neighbourhoods
# Above this many tokens per chunk the attention matrix (chunk^2 per head) is not materialised: the fused kernel
# computes the same softmax(q k^T * scale) v in bounded memory (a 512 x 512 input has 65,536-token chunks).
FUSED_ATTENTION_TOKENS = 1024


class Scale(nn.Module):
    """A learned scalar multiplier (``scale``, initialised to 1 by the official blocks)."""

    def __init__(self, init_value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init_value]))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale


class BasicConv(nn.Module):
    """Bias-free conv followed by ReLU (the official ``BasicConv`` defaults); the conv sits under ``conv``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.conv(x))


class ResidualUnit(nn.Module):
    """Official ``one_conv``: w1 * x + w2 * conv1(PReLU(conv(x))), the inner width ``growth_rate``."""

    def __init__(self, channels: int, growth_rate: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, growth_rate, 3, padding=1)
        self.conv1 = nn.Conv2d(growth_rate, channels, 3, padding=1)
        self.relu = nn.PReLU(growth_rate)
        self.weight1, self.weight2 = Scale(), Scale()

    def forward(self, x: Tensor) -> Tensor:
        return self.weight1(x) + self.weight2(self.conv1(self.relu(self.conv(x))))


class ARFB(nn.Module):
    """Adaptive residual feature block (official ``one_module``)."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.layer1 = ResidualUnit(channels, channels // 2)
        self.layer2 = ResidualUnit(channels, channels // 2)
        self.layer4 = BasicConv(channels, channels, 3)
        self.alise = BasicConv(2 * channels, channels, 1)
        self.atten = CALayer(channels, reduction)
        # weight1 is unused by the official forward but stored in its checkpoints.
        self.weight1, self.weight2, self.weight3, self.weight4, self.weight5 = (Scale() for _ in range(5))

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        x4 = self.layer4(self.atten(self.alise(torch.cat([self.weight2(x2), self.weight3(x1)], 1))))
        return self.weight4(x) + self.weight5(x4)


def _resize(x: Tensor, size: torch.Size) -> Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class HPB(nn.Module):
    """High-preserving block (official ``Updownblock``) with its high-frequency filtering module."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.encoder = ARFB(channels, reduction)
        self.decoder_low = ARFB(channels, reduction)
        self.decoder_high = ARFB(channels, reduction)
        self.alise = ARFB(channels, reduction)
        self.alise2 = BasicConv(2 * channels, channels, 1)
        self.down = nn.AvgPool2d(kernel_size=2)
        self.att = CALayer(channels, reduction)

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.encoder(x)
        low = self.down(x1)
        high = x1 - _resize(low, x.shape[-2:])
        for _ in range(LOW_FREQUENCY_REPEATS):
            low = self.decoder_low(low)
        merged = torch.cat([_resize(low, x.shape[-2:]), self.decoder_high(high)], dim=1)
        return self.alise(self.att(self.alise2(merged))) + x


class EMHA(nn.Module):
    """Efficient multi-head attention (official ``EffAttention``): halve the width, attend within token chunks."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.reduce = nn.Linear(dim, dim // 2, bias=False)
        self.qkv = nn.Linear(dim // 2, dim // 2 * 3, bias=False)
        self.proj = nn.Linear(dim // 2, dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.reduce(x)
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        chunk = n // TOKEN_CHUNKS
        out = [self._attend(qi, ki, vi).transpose(1, 2)
               for qi, ki, vi in zip(q.split(chunk, dim=-2), k.split(chunk, dim=-2), v.split(chunk, dim=-2),
                                     strict=True)]
        return self.proj(torch.cat(out, dim=1).reshape(b, n, c))

    def _attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        if q.shape[-2] > FUSED_ATTENTION_TOKENS:
            return F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1) @ v  # the official operations, in order


class EfficientTransformer(nn.Module):
    """ET (official ``MLABlock``): 3x3-neighbourhood tokens, pre-norm EMHA and MLP; returns tokens (B, N, 9C)."""

    def __init__(self, channels: int, num_heads: int) -> None:
        super().__init__()
        dim = channels * PATCH * PATCH
        self.atten = EMHA(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, dim // 4, act_layer=nn.ReLU)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        x = F.unfold(x, PATCH, padding=PATCH // 2).transpose(1, 2)
        x = x + self.atten(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Un(nn.Module):
    """The ESRT body: HPBs (lightweight CNN backbone), a 3x3 fusion, the ET, folding, a 3x3 conv, scaled residual."""

    def __init__(self, channels: int, n_hpb: int, num_heads: int, reduction: int) -> None:
        super().__init__()
        self.n_hpb = n_hpb
        for i in range(1, n_hpb + 1):
            setattr(self, f"encoder{i}", HPB(channels, reduction))
        self.reduce = conv(n_hpb * channels, channels, 3)
        self.weight2, self.weight1 = Scale(), Scale()
        self.attention = EfficientTransformer(channels, num_heads)
        self.alise = conv(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        feats, out = [], x
        for i in range(1, self.n_hpb + 1):
            out = getattr(self, f"encoder{i}")(out)
            feats.append(out)
        tokens = self.attention(self.reduce(torch.cat(feats, dim=1)))
        folded = F.fold(tokens.transpose(1, 2), x.shape[-2:], PATCH, padding=PATCH // 2)
        return self.weight1(x) + self.weight2(self.alise(folded))


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "head.0.weight" not in sd or "body.0.attention.atten.reduce.weight" not in sd or "up.1.conv.weight" not in sd:
        return None
    n_feats = int(sd["head.0.weight"].shape[0])
    squeezed = int(sd["body.0.encoder1.att.conv_du.0.weight"].shape[0])
    return {
        "scale": multistage_scale(sd, "tail.0"),
        "n_feats": n_feats,
        "n_blocks": count_indexed(sd, r"body\.(\d+)\."),
        "n_hpb": count_indexed(sd, r"body\.0\.encoder(\d+)\."),
        "reduction": n_feats // squeezed,
        # Not stored in the weights: the official 8 heads where they divide the attention width, else the most that do.
        "num_heads": next(h for h in range(8, 0, -1) if (n_feats * PATCH * PATCH // 2) % h == 0),
    }


@register_arch("esrt", scales=(2, 3, 4), detect=_detect, paper="Lu et al., CVPR Workshops 2022 (ESRT)",
               tiny={"n_feats": 8, "n_hpb": 1, "num_heads": 6, "reduction": 4})
class ESRT(SRModel):
    """ESRT: a lightweight CNN backbone of high-preserving blocks and an efficient Transformer, two upsampling paths.

    Defaults are the paper's model (32 channels, one body of three HPBs and one ET with 8 heads). ``num_heads`` is not
    stored in the weights (no tensor depends on it).
    """

    def __init__(self, scale: int = 4, n_feats: int = 32, n_blocks: int = 1, n_hpb: int = 3, num_heads: int = 8,
                 reduction: int = 16) -> None:
        super().__init__()
        dim = n_feats * PATCH * PATCH
        if (dim // 2) % num_heads:
            raise ConfigError(f"9 * n_feats / 2 = {dim // 2} attention features do not split into {num_heads} heads")
        if n_feats // reduction < 1:
            raise ConfigError(f"reduction {reduction} leaves no channel attention features for n_feats {n_feats}")
        self.scale, self.n_blocks = scale, n_blocks
        self.min_size = 2
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.body = nn.Sequential(*(Un(n_feats, n_hpb, num_heads, reduction) for _ in range(n_blocks)))
        self.reduce = conv(n_blocks * n_feats, n_feats, 3)
        self.tail = nn.Sequential(_upsampler(scale, n_feats), conv(n_feats, 3, 3))
        self.up = nn.Sequential(_upsampler(scale, n_feats), BasicConv(n_feats, 3, 3))

    def _forward(self, x: Tensor) -> Tensor:
        x = self.head(x)
        outs, out = [], x
        for block in self.body:
            out = block(out)
            outs.append(out)
        return self.up(x) + self.tail(self.reduce(torch.cat(outs, dim=1)))

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


def _upsampler(scale: int, channels: int) -> Upsample:
    try:
        return Upsample(scale, channels)
    except ValueError as exc:
        raise ConfigError(f"ESRT: {exc}") from None


# Published PSNR/SSIM on Y by scale and test set (the description names the source).
_ESRT_PUBLISHED = {
    2: {"Set5": (38.03, 0.9600), "Set14": (33.75, 0.9184), "B100": (32.25, 0.9001), "Urban100": (32.58, 0.9318)},
    4: {"Set5": (32.19, 0.8947), "Set14": (28.69, 0.7833), "B100": (27.69, 0.7379), "Urban100": (26.39, 0.7962)},
}
register_variant("esrt", "esrt", {}, description="ESRT (32 channels, 3 HPBs, one efficient Transformer)"
                 " [published: ESRT/REV, secondary]",
                 paper_params={4: 751_000},
                 paper_psnr=_ESRT_PUBLISHED)
