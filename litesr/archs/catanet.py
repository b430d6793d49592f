"""CATANet: Efficient Content-Aware Token Aggregation for Lightweight Image Super-Resolution (Liu, Liu, Tang and Wu,
CVPR 2025).

Each of the 8 stages is a token-aggregation block (TAB) then a local-region self-attention (LRSA), closed by a 3x3
conv with a residual. TAB assigns every token to the nearest of ``num_tokens`` learned centres (cosine similarity),
sorts tokens by centre and attends within groups of ``group_size`` sorted tokens (each group also sees the next
group: keys/values of 2 x group_size), plus a cross-attention from every token to the centres. The centres are a
buffer (``means``) updated by k-means iterations and an EMA while training only; an untrained model (``initted``
false) takes them from the input. LRSA is attention inside overlapping patches (step patch - 2), averaged back,
then SRFormer's ConvFFN. Tail: conv + PixelShuffle (two x2 stages at x4) + LeakyReLU, conv, plus a bilinear base.

State-dict names follow the official code (``EquationWalker/CATANet``, ``basicsr/archs/catanet_arch.py``):
``first_conv``, ``blocks.i.0.{norm,mlp.{norm,fn.*},irca_attn.{to_k,to_v},iasa_attn.{to_q,to_k,to_v,proj},means,
initted,conv1x1}``, ``blocks.i.1.layer.{0,1}.{norm,fn.*}``, ``mid_convs.i``, ``upconv``/``upconv1``/``upconv2``,
``last_conv``. The official class fixes dim 40, 8 stages, qk_dim 36, mlp_dim 96, 4 heads; litesr makes them options.

Size rule: RGB in [0, 1]; LRSA needs sides of at least the largest patch size (28), smaller inputs are padded first.
Patch sizes, group sizes and the head count cannot be read from a checkpoint; they keep the paper's values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import count_indexed, run_at_least
from .srformer import ConvFFN
from .swinir import image_to_tokens, tokens_to_image


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """[..., n, (h d)] -> [..., h, n, d]."""
    *lead, n, c = x.shape
    return x.reshape(*lead, n, heads, c // heads).transpose(-3, -2)


def _merge_heads(x: Tensor) -> Tensor:
    """[..., h, n, d] -> [..., n, (h d)]."""
    *lead, h, n, d = x.shape
    return x.transpose(-3, -2).reshape(*lead, n, h * d)


def center_iter(x: Tensor, means: Tensor) -> Tensor:
    """One k-means step on unit vectors: each centre becomes the normalised sum of its tokens (over the batch);
    centres no token chose keep their value."""
    b, _, d = x.shape
    buckets = torch.einsum("bld,cd->blc", x, means).argmax(-1)
    counts = torch.zeros(b, means.shape[0], dtype=buckets.dtype, device=x.device)
    counts = counts.scatter_add_(-1, buckets, torch.ones_like(buckets)).sum(0)
    sums = x.new_zeros(b, means.shape[0], d).scatter_add_(-2, buckets.unsqueeze(-1).expand(-1, -1, d), x)
    new = F.normalize(sums.sum(0), dim=-1)
    return torch.where((counts == 0).unsqueeze(-1), means, new)


class IASA(nn.Module):
    """Intra-group self-attention on content-sorted tokens, plus cross-attention to the centres' keys and values."""

    def __init__(self, dim: int, qk_dim: int, heads: int, group_size: int) -> None:
        super().__init__()
        self.heads = heads
        self.group_size = group_size
        self.to_q = nn.Linear(dim, qk_dim, bias=False)
        self.to_k = nn.Linear(dim, qk_dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor, order: Tensor, k_global: Tensor, v_global: Tensor) -> Tensor:
        b, n, _ = x.shape
        q, k, v = (torch.gather(f(x), -2, order.expand(-1, -1, f.out_features))
                   for f in (self.to_q, self.to_k, self.to_v))
        gs = min(n, self.group_size)
        ng = (n + gs - 1) // gs
        if 2 * (ng * gs - n) > (ng - 1) * gs:
            # gs < n < 1.5 gs: the official key slice would start before the first token and the official code
            # fails (unfold on too few tokens); litesr attends over all tokens as one group instead
            gs, ng = n, 1
        pad = ng * gs - n
        # the official tail padding: mirrored last tokens (the same slices, negative starts included)
        q = torch.cat((q, torch.flip(q[:, n - pad : n], dims=[-2])), dim=-2)
        q = _split_heads(q.reshape(b, ng, gs, -1), self.heads)
        k, v = (_split_heads(torch.cat((t, torch.flip(t[:, n - pad - gs : n], dims=[-2])), dim=-2)
                             .unfold(-2, 2 * gs, gs).transpose(-1, -2), self.heads) for t in (k, v))
        local = F.scaled_dot_product_attention(q, k, v)
        shared = F.scaled_dot_product_attention(q, k_global.expand(b, ng, -1, -1, -1),
                                                v_global.expand(b, ng, -1, -1, -1))
        out = _merge_heads(local + shared).reshape(b, ng * gs, -1)[:, :n]
        out = out.scatter(-2, order.expand(out.shape), out)  # back to the image order
        return self.proj(out)


class IRCA(nn.Module):
    """Keys and values of the token centres (refined by one more k-means step while training)."""

    def __init__(self, dim: int, qk_dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_k = nn.Linear(dim, qk_dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor, means: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        centres = center_iter(F.normalize(x, dim=-1), F.normalize(means, dim=-1)) if self.training else means
        k, v = (_split_heads(f(centres), self.heads) for f in (self.to_k, self.to_v))
        return k, v, centres.detach()


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor, *size: int) -> Tensor:
        return self.fn(self.norm(x), *size)


class TAB(nn.Module):
    """Token-aggregation block: centre assignment, IASA + IRCA, 1x1 conv, residual; then PreNorm ConvFFN."""

    def __init__(self, dim: int, qk_dim: int, mlp_dim: int, heads: int, n_iter: int, num_tokens: int,
                 group_size: int, ema_decay: float = 0.999) -> None:
        super().__init__()
        self.n_iter = n_iter
        self.ema_decay = ema_decay
        self.num_tokens = num_tokens
        self.norm = nn.LayerNorm(dim)
        self.mlp = PreNorm(dim, ConvFFN(dim, mlp_dim))
        self.irca_attn = IRCA(dim, qk_dim, heads)
        self.iasa_attn = IASA(dim, qk_dim, heads, group_size)
        self.register_buffer("means", torch.randn(num_tokens, dim))
        self.register_buffer("initted", torch.tensor(False))
        self.conv1x1 = nn.Conv2d(dim, dim, 1, bias=False)

    def _initial_means(self, x: Tensor) -> Tensor:
        # on the meta device (MAC counting) the flag has no value: count the trained path, learned centres
        if self.initted.is_meta or bool(self.initted):
            return self.means.detach()
        # untrained: mean of num_tokens contiguous runs of tokens (tail mirrored to a multiple, as the official code)
        b, n, c = x.shape
        pad = self.num_tokens - n % self.num_tokens
        padded = torch.cat((x, torch.flip(x[:, n - pad : n], dims=[-2])), dim=-2)
        return padded.reshape(b, self.num_tokens, -1, c).transpose(0, 1).reshape(self.num_tokens, -1, c).mean(1)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        residual = image_to_tokens(x)
        x = self.norm(residual)
        means = self._initial_means(x).detach()
        if self.training:
            with torch.no_grad():
                for _ in range(self.n_iter - 1):
                    means = center_iter(F.normalize(x, dim=-1), F.normalize(means, dim=-1))
        k_global, v_global, means = self.irca_attn(x, means)
        with torch.no_grad():
            belong = torch.einsum("bic,jc->bij", F.normalize(x, dim=-1), F.normalize(means, dim=-1)).argmax(-1)
            order = torch.argsort(belong, dim=-1).unsqueeze(-1)  # the official (unstable) sort: same ties, same groups
        y = self.iasa_attn(x, order, k_global, v_global)
        x = residual + image_to_tokens(self.conv1x1(tokens_to_image(y, h, w)))
        x = self.mlp(x, h, w) + x
        if self.training:
            with torch.no_grad():
                if not bool(self.initted):
                    self.means.copy_(means)
                    self.initted.fill_(True)
                else:
                    self.means.mul_(self.ema_decay).add_(means, alpha=1 - self.ema_decay)
        return tokens_to_image(x, h, w)


def _patch_starts(size: int, step: int, ps: int) -> list[int]:
    """Top (or left) of each patch: every ``step``, the last one moved back inside the map."""
    return [min(i, size - ps) for i in range(0, size + step - ps, step)]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qk_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_q = nn.Linear(dim, qk_dim, bias=False)
        self.to_k = nn.Linear(dim, qk_dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (_split_heads(f(x), self.heads) for f in (self.to_q, self.to_k, self.to_v))
        return self.proj(_merge_heads(F.scaled_dot_product_attention(q, k, v)))


class LRSA(nn.Module):
    """Self-attention inside overlapping ps x ps patches (step ps - 2, overlaps halved back), then ConvFFN."""

    def __init__(self, dim: int, qk_dim: int, mlp_dim: int, heads: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList([PreNorm(dim, Attention(dim, heads, qk_dim)), PreNorm(dim, ConvFFN(dim, mlp_dim))])

    def forward(self, x: Tensor, ps: int) -> Tensor:
        b, c, h, w = x.shape
        step = ps if (h, w) == (ps, ps) else ps - 2
        tops, lefts = _patch_starts(h, step, ps), _patch_starts(w, step, ps)
        patches = torch.stack([x[:, :, t : t + ps, s : s + ps] for t in tops for s in lefts], dim=1)
        tokens = patches.reshape(-1, c, ps * ps).transpose(1, 2)
        attn, ff = self.layer
        tokens = attn(tokens) + tokens
        patches = tokens.transpose(1, 2).reshape(b, -1, c, ps, ps)
        out = torch.zeros_like(x)
        for index, (t, s) in enumerate((t, s) for t in tops for s in lefts):
            out[:, :, t : t + ps, s : s + ps] += patches[:, index]
        # the official averaging: each band between consecutive patches is halved once (corners twice)
        for i in range(step, h + step - ps, step):
            top = h - ps if i + ps > h else i
            out[:, :, top : i + ps - step] /= 2
        for j in range(step, w + step - ps, step):
            left = w - ps if j + ps > w else j
            out[:, :, :, left : j + ps - step] /= 2
        tokens = image_to_tokens(out)
        return tokens_to_image(ff(tokens, h, w) + tokens, h, w)


def _per_block(values: Sequence[int], count: int) -> list[int]:
    """Per-block settings: the sequence repeated to ``count`` entries (the paper's 8 stages repeat a 4-cycle)."""
    if not values:
        raise ConfigError("CATANet: per-block settings need at least one value")
    return [int(values[i % len(values)]) for i in range(count)]


def _detect(sd: StateDict) -> dict[str, Any] | None:
    if "blocks.0.0.iasa_attn.to_q.weight" not in sd or "blocks.0.0.means" not in sd or "first_conv.weight" not in sd:
        return None
    dim = int(sd["first_conv.weight"].shape[0])
    block_num = count_indexed(sd, r"blocks\.(\d+)\.")
    scale = 4 if "upconv1.weight" in sd else math.isqrt(sd["upconv.weight"].shape[0] // dim)
    return {"scale": scale, "dim": dim, "block_num": block_num,
            "qk_dim": int(sd["blocks.0.0.iasa_attn.to_q.weight"].shape[0]),
            "mlp_dim": int(sd["blocks.0.0.mlp.fn.fc1.weight"].shape[0]),
            "num_tokens": tuple(int(sd[f"blocks.{i}.0.means"].shape[0]) for i in range(block_num))}


@register_arch("catanet", scales=(4, 2, 3), detect=_detect, paper="Liu et al., CVPR 2025",
               tiny={"dim": 8, "block_num": 1, "qk_dim": 8, "mlp_dim": 16, "num_tokens": (4,)})
class CATANet(SRModel):
    """CATANet: TAB (content-aware token groups) + LRSA (local patches) stages, PixelShuffle tail, bilinear base."""

    pad_multiple = 1

    def __init__(self, scale: int = 4, dim: int = 40, block_num: int = 8, qk_dim: int = 36, mlp_dim: int = 96,
                 heads: int = 4, num_tokens: Sequence[int] = (16, 32, 64, 128, 16, 32, 64, 128),
                 group_sizes: Sequence[int] = (256, 128, 64, 32), patch_sizes: Sequence[int] = (16, 20, 24, 28),
                 n_iters: int = 5) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ConfigError(f"CATANet: scale must be 2, 3 or 4, not {scale}")
        self.scale = scale
        self.patch_sizes = _per_block(patch_sizes, block_num)
        self.min_size = max(self.patch_sizes)
        tokens, groups = _per_block(num_tokens, block_num), _per_block(group_sizes, block_num)
        self.first_conv = nn.Conv2d(3, dim, 3, 1, 1)
        self.blocks = nn.ModuleList([
            nn.ModuleList([TAB(dim, qk_dim, mlp_dim, heads, n_iters, tokens[i], groups[i]),
                           LRSA(dim, qk_dim, mlp_dim, heads)]) for i in range(block_num)])
        self.mid_convs = nn.ModuleList([nn.Conv2d(dim, dim, 3, 1, 1) for _ in range(block_num)])
        if scale == 4:
            self.upconv1 = nn.Conv2d(dim, dim * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(dim, dim * 4, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(2)
        else:
            self.upconv = nn.Conv2d(dim, dim * scale**2, 3, 1, 1)
            self.pixel_shuffle = nn.PixelShuffle(scale)
        self.last_conv = nn.Conv2d(dim, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.1)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def _forward(self, x: Tensor) -> Tensor:
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        feat = self.first_conv(x)
        body = feat
        for (tab, lrsa), mid, ps in zip(self.blocks, self.mid_convs, self.patch_sizes):
            body = body + mid(lrsa(tab(body), ps))
        feat = body + feat
        if self.scale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv1(feat)))
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        else:
            out = self.lrelu(self.pixel_shuffle(self.upconv(feat)))
        return self.last_conv(out) + base

    def forward(self, x: Tensor) -> Tensor:
        return run_at_least(self._forward, x, self.min_size, self.scale)


register_variant("catanet", "catanet", {},
                 description="CATANet (dim 40, 8 TAB+LRSA stages), DIV2K [official options/test]")
