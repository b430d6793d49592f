"""SR3-style diffusion super-resolution (Saharia et al. 2021): a conditional DDPM whose U-Net sees the bicubic upscale.

The U-Net takes ``concat(bicubic(lr), x_t)`` (6 channels) and the noise level ``gamma = sqrt(alpha_bar)`` and predicts
the noise. Layout as Janspiry/Image-Super-Resolution-via-Iterative-Refinement ``sr3_modules/unet.py`` (whose
``sr_sr3_16_128.json`` is the :data:`SR3_X4` size: 64 channels, multipliers 1, 2, 4, 8, 8, attention at 16 pixels, 2
residual blocks per level, dropout 0.2, GroupNorm 32, Swish): a sinusoidal embedding of the continuous noise level,
an MLP, and a per-block bias ("feature-wise affine"). Training draws ``gamma`` uniformly between two neighbouring
levels of the schedule (SR3's continuous conditioning, after WaveGrad), images in [-1, 1], L1 loss on the noise.
Sampling: ancestral DDPM over every step, or deterministic DDIM (eta = 0) over ``steps`` evenly spaced ones.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, LitesrError
from ..imresize import imresize


@dataclass
class UNetConfig:
    inner_channel: int = 64
    channel_multiplier: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 8])
    attn_res: list[int] = field(default_factory=lambda: [16])  # feature sides (in pixels) that get self-attention
    res_blocks: int = 2
    dropout: float = 0.2
    norm_groups: int = 32
    image_size: int = 128  # training patch side: where attn_res is measured


SR3_X4 = UNetConfig()  # the official 16 -> 128 configuration (for a GPU)
SR3_TINY = UNetConfig(inner_channel=32, channel_multiplier=[1, 2, 2], attn_res=[8], res_blocks=1, dropout=0.0,
                      norm_groups=8, image_size=32)  # trains on a CPU in minutes


class _NoiseEmbedding(nn.Module):
    """Sinusoidal code of the noise level (scaled by 5000 like SR3's PositionalEncoding), then Linear-Swish-Linear."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), nn.SiLU(), nn.Linear(dim * 4, dim))

    def forward(self, gamma: Tensor) -> Tensor:
        half = self.dim // 2
        freq = torch.exp(-math.log(10000) * torch.arange(half, device=gamma.device, dtype=torch.float32) / half)
        angles = 5000 * gamma.float().view(-1, 1) * freq.view(1, -1)
        return self.mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=1))


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.noise = nn.Linear(emb, cout)
        self.block1 = nn.Sequential(nn.GroupNorm(groups, cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.block2 = nn.Sequential(nn.GroupNorm(groups, cout), nn.SiLU(), nn.Dropout(dropout),
                                    nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.block1(x) + self.noise(emb)[:, :, None, None]
        return self.block2(h) + self.skip(x)


class _Attention(nn.Module):
    """One-head self-attention over all positions (SR3's SelfAttention), residual."""

    def __init__(self, channels: int, groups: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, channels * 3, 1, bias=False)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return x + self.out(y.transpose(1, 2).reshape(b, c, h, w))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int, groups: int, dropout: float, attention: bool) -> None:
        super().__init__()
        self.res = _ResBlock(cin, cout, emb, groups, dropout)
        self.attn = _Attention(cout, groups) if attention else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = self.res(x, emb)
        return self.attn(x) if self.attn is not None else x


class SR3UNet(nn.Module):
    """The conditional U-Net; ``forward(cond, x_t, gamma)`` -> predicted noise. Sides must be multiples of
    :attr:`multiple` (one halving per level after the first)."""

    def __init__(self, config: UNetConfig | None = None, channels: int = 3) -> None:
        super().__init__()
        cfg = config or UNetConfig()
        self.config, self.channels = cfg, channels
        inner, g = cfg.inner_channel, cfg.norm_groups
        mults = list(cfg.channel_multiplier)
        self.multiple = 2 ** (len(mults) - 1)
        self.embed = _NoiseEmbedding(inner)
        self.head = nn.Conv2d(2 * channels, inner, 3, padding=1)
        self.downs = nn.ModuleList()
        skips, ch, res = [inner], inner, cfg.image_size
        for level, mult in enumerate(mults):
            for _ in range(cfg.res_blocks):
                self.downs.append(_Block(ch, inner * mult, inner, g, cfg.dropout, res in cfg.attn_res))
                ch = inner * mult
                skips.append(ch)
            if level < len(mults) - 1:
                self.downs.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
                res //= 2
        self.mid = nn.ModuleList([_Block(ch, ch, inner, g, cfg.dropout, True), _Block(ch, ch, inner, g, cfg.dropout,
                                                                                       False)])
        self.ups = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for _ in range(cfg.res_blocks + 1):
                self.ups.append(_Block(ch + skips.pop(), inner * mult, inner, g, cfg.dropout, res in cfg.attn_res))
                ch = inner * mult
            if level > 0:
                self.ups.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                              nn.Conv2d(ch, ch, 3, padding=1)))
                res *= 2
        self.tail = nn.Sequential(nn.GroupNorm(g, ch), nn.SiLU(), nn.Conv2d(ch, channels, 3, padding=1))

    def forward(self, cond: Tensor, x_t: Tensor, gamma: Tensor) -> Tensor:
        emb = self.embed(gamma)
        h = self.head(torch.cat([cond, x_t], 1))
        feats = [h]
        for layer in self.downs:
            h = layer(h, emb) if isinstance(layer, _Block) else layer(h)
            feats.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.ups:
            h = layer(torch.cat([h, feats.pop()], 1), emb) if isinstance(layer, _Block) else layer(h)
        return self.tail(h)


# --------------------------------------------------------------------------------------------------------- diffusion


def make_betas(schedule: str, steps: int, linear_start: float = 1e-6, linear_end: float = 1e-2) -> np.ndarray:
    """``linear`` (SR3's config: 1e-6 .. 1e-2 over 2000 steps) or ``cosine`` (Nichol and Dhariwal 2021)."""
    if steps < 2:
        raise ConfigError(f"the noise schedule needs at least 2 steps, not {steps}")
    if schedule == "linear":
        return np.linspace(linear_start, linear_end, steps, dtype=np.float64)
    if schedule == "cosine":
        s = 0.008
        t = np.linspace(0, steps, steps + 1, dtype=np.float64) / steps
        alpha_bar = np.cos((t + s) / (1 + s) * math.pi / 2) ** 2
        return np.clip(1 - alpha_bar[1:] / alpha_bar[:-1], 0, 0.999)
    raise ConfigError(f"noise schedule {schedule!r} is not linear or cosine")


class Diffusion:
    """The forward process and its samplers for one noise schedule."""

    def __init__(self, betas: np.ndarray) -> None:
        self.betas = betas
        self.num_steps = len(betas)
        self.alpha_bar = np.cumprod(1.0 - betas)
        # sqrt(alpha_bar) at t = 0 .. T (t = 0: the clean image), the continuous noise levels SR3 samples between.
        self.gammas = np.sqrt(np.append(1.0, self.alpha_bar))

    def training_pair(self, x0: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """(x_noisy, gamma, noise) with gamma ~ U(gamma_t, gamma_{t-1}) for t uniform in 1..T."""
        b = x0.shape[0]
        t = torch.randint(1, self.num_steps + 1, (b,), generator=generator)
        lo, hi = torch.from_numpy(self.gammas[t.numpy()]), torch.from_numpy(self.gammas[t.numpy() - 1])
        gamma = (lo + (hi - lo) * torch.rand(b, generator=generator, dtype=torch.float64)).float().to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0)
        g = gamma.view(-1, 1, 1, 1)
        return g * x0 + (1 - g * g).sqrt() * noise, gamma, noise

    @torch.no_grad()
    def sample(self, net: SR3UNet, cond: Tensor, *, sampler: str = "ddim", steps: int | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """x_0 given ``cond`` (the bicubic upscale in [-1, 1]); DDPM walks all steps, DDIM ``steps`` of them."""
        if sampler not in ("ddpm", "ddim"):
            raise ConfigError(f"sampler {sampler!r} is not ddpm or ddim")
        x = torch.randn(cond.shape, generator=generator).to(cond)
        if sampler == "ddpm":
            times = list(range(self.num_steps, 0, -1))
        else:
            n = min(int(steps or 50), self.num_steps)
            if n < 1:
                raise ConfigError(f"DDIM steps must be >= 1, not {steps}")
            times = sorted({int(round(v)) for v in np.linspace(self.num_steps, 1, n)}, reverse=True)
        for i, t in enumerate(times):
            ab = float(self.alpha_bar[t - 1])
            gamma = torch.full((x.shape[0],), math.sqrt(ab), device=x.device)
            eps = net(cond, x, gamma)
            x0 = ((x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)).clamp(-1, 1)
            if sampler == "ddim":
                ab_prev = float(self.alpha_bar[times[i + 1] - 1]) if i + 1 < len(times) else 1.0
                eps = (x - math.sqrt(ab) * x0) / math.sqrt(1 - ab)  # the noise consistent with the clipped x0
                x = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
            else:
                ab_prev = float(self.alpha_bar[t - 2]) if t > 1 else 1.0
                beta = float(self.betas[t - 1])
                c0, ct = math.sqrt(ab_prev) * beta / (1 - ab), math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)
                mean = c0 * x0 + ct * x
                if t > 1:
                    var = beta * (1 - ab_prev) / (1 - ab)
                    x = mean + math.sqrt(max(var, 1e-20)) * torch.randn(x.shape, generator=generator).to(x)
                else:
                    x = mean
        return x


# ---------------------------------------------------------------------------------------------------------- helpers


def check_size(height: int, width: int, scale: int, multiple: int) -> None:
    """One line with the minimum size when the HR output is too small for the U-Net's levels."""
    if min(height, width) * scale < multiple:
        need = math.ceil(multiple / scale)
        raise LitesrError(f"image {width}x{height} is too small for this SR3 U-Net at x{scale}: its "
                          f"{int(math.log2(multiple)) + 1} levels need an output of at least {multiple}x{multiple}, "
                          f"i.e. an input of at least {need}x{need} pixels")


def condition(lr: Tensor, scale: int, multiple: int) -> tuple[Tensor, int, int]:
    """Bicubic (MATLAB) upscale of ``lr`` in [-1, 1], replicate-padded to a multiple; returns it and the HR size."""
    h, w = lr.shape[-2] * scale, lr.shape[-1] * scale
    up = imresize(lr, scale).clamp(0, 1) * 2 - 1
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        up = F.pad(up, (0, pw, 0, ph), mode="replicate")
    return up, h, w


def super_resolve(net: SR3UNet, diffusion: Diffusion, image: np.ndarray, scale: int, *, sampler: str = "ddim",
                  steps: int | None = 50, seed: int = 0, device: str | torch.device = "cpu") -> np.ndarray:
    """Sample an HR image ((H*s, W*s, C) float in [0, 1]) for ``image`` ((H, W, C) float in [0, 1]), seeded."""
    check_size(image.shape[0], image.shape[1], scale, net.multiple)
    from .common import to_array, to_tensor

    net.eval()
    cond, h, w = condition(to_tensor(image, device), scale, net.multiple)
    generator = torch.Generator().manual_seed(seed)
    x = diffusion.sample(net, cond, sampler=sampler, steps=steps, generator=generator)
    return to_array((x[..., :h, :w] + 1) / 2)


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def unet_from_options(options: dict | None, base: UNetConfig = SR3_TINY) -> UNetConfig:
    """A UNetConfig from a dict of its fields (unknown keys are an error, not ignored)."""
    options = dict(options or {})
    known = set(asdict(base))
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown SR3 U-Net option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    merged = {**asdict(base), **options}
    if merged["inner_channel"] % merged["norm_groups"]:
        raise ConfigError(f"SR3 inner_channel {merged['inner_channel']} must be a multiple of norm_groups "
                          f"{merged['norm_groups']}")
    return UNetConfig(**merged)
