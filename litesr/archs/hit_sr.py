"""HiT-SR: Hierarchical Transformer for Efficient Image Super-Resolution (Zhang, Zhang and Yu, ECCV 2024), its three
models: HiT-SIR (SwinIR-light made hierarchical), HiT-SNG (SwinIR-NG) and HiT-SRF (SRFormer-light).

The SwinIR frame (conv, residual groups of blocks closed by a conv, LayerNorm, conv, reconstruction head) with
hierarchical blocks: block j of every group works on windows of ``base_win_size * hier_win_ratios[j]`` (4, 8, 16,
32, 48, 64 for the released models) and replaces attention by spatial-channel correlation (SCC):

- q and v come from a dual feature extraction (``qv``: a 1x1 -> 3x3 -> 1x1 bottleneck times a 1x1), split per head;
- spatial self-correlation: v is pooled inside each window to at most base x base tokens by a learned linear map
  (``spatial_linear``), then ``(q v^T / head_dim + bias) v`` with no softmax; the bias comes from a dynamic
  position MLP (``pos``, DAT's form) averaged over each pooled cell;
- channel self-correlation: one head, ``(q^T v / N) v^T`` over the window's tokens;
- both halves concatenated, ``proj``; each block is post-normalised: ``x + norm1(SCC(x))``, ``x + norm2(FFN(x))``.

HiT-SRF's FFN adds a depthwise 5x5 + GELU branch on the hidden tokens (``mlp.dwconv.depthwise_conv.0``); HiT-SNG
adds an N-gram context to every window before SCC (``correlation.ngram_window_partition.ngram_context``: a
window-sized conv pools channel pairs to one "unigram" per window, 2 x 2 window attention over each unigram's
forward and backward neighbours, the two averaged contexts merged by a 1x1 and added to the window's tokens).

State-dict names follow the official code (``XiangZ-0/HiT-SR``, ``basicsr/archs/hit_{sir,sng,srf}_arch.py``). The
window ratios and the base window leave no trace in the tensors (the position bias is computed, not stored):
detection takes the released values (8, and 0.5 / 1 / 2 / 4 / 6 / 8), checked against the spatial-linear sizes.

Size rule: any input size. Every block reflect-pads its input to a multiple of its own window (twice the window in
HiT-SNG) and crops back, as the official code does, so the model pads nothing up front (``pad_multiple = 1``); the
official code reflect-pads at most twice the size, litesr repeats the reflection for any size. RGB in [0, 1].
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
from .blocks import DropPath, Mlp, count_indexed, drop_path_rates, window_partition, window_reverse
from .dat import DynamicPosBias
from .srformer import ConvFFN  # fc1, GELU, + depthwise 5x5 + GELU of the hidden map, fc2: same layer in HiT-SRF
from .swinir import RSTB, SwinIR, WindowAttention, detect_swin_tail

HIER_WIN_RATIOS = (0.5, 1.0, 2.0, 4.0, 6.0, 8.0)
NGRAM = 2


def reflect_pad_to(x: Tensor, multiple: int) -> Tensor:
    """Reflect-pad the bottom/right of an NCHW tensor to a multiple, reflecting again where one reflection is not
    enough (the official blocks do it once more when the pad reaches the size); 1-pixel sides are replicated."""
    ph, pw = (-x.shape[-2]) % multiple, (-x.shape[-1]) % multiple
    while ph or pw:
        h, w = x.shape[-2:]
        if h == 1 or w == 1:
            return F.pad(x, (0, pw, 0, ph), mode="replicate")
        sh, sw = min(ph, h - 1), min(pw, w - 1)
        x = F.pad(x, (0, sw, 0, sh), mode="reflect")
        ph, pw = ph - sh, pw - sw
    return x


class DFE(nn.Module):
    """Dual feature extraction on NHWC maps: ``conv(x) * linear(x)`` (1x1 to C/5, LeakyReLU, 3x3, LeakyReLU, 1x1)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        mid = in_features // 5
        self.conv = nn.Sequential(nn.Conv2d(in_features, mid, 1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(mid, mid, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(mid, out_features, 1))
        self.linear = nn.Conv2d(in_features, out_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 3, 1, 2)
        return (self.conv(x) * self.linear(x)).permute(0, 2, 3, 1)


class NGramContext(nn.Module):
    """HiT-SNG's context of every window from its forward and backward 2 x 2 neighbourhood of window unigrams."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.unigram_embed = nn.Conv2d(2, 1, window_size, stride=window_size)
        self.ngram_attn = WindowAttention(dim // 2, NGRAM, num_heads)
        self.merge = nn.Conv2d(dim, dim, 1)

    @staticmethod
    def _pad(u: Tensor, back: bool) -> Tensor:
        """Extend by NGRAM - 1 unigrams (bottom/right, or top/left when ``back``) with the official 'sequential
        reflection': the copied rows and columns skip the edge one."""
        n = NGRAM
        if back:
            u = torch.cat([u[:, :, 1:n], u], dim=2)
            return torch.cat([u[..., 1:n], u], dim=3)
        u = torch.cat([u, u[:, :, -n:-1]], dim=2)
        return torch.cat([u, u[..., -n:-1]], dim=3)

    def _slide(self, p: Tensor) -> Tensor:
        """Attention among each window's n x n neighbours (window attention over 2 x 2 tokens), then their mean."""
        b, c, h, w = p.shape
        wh, ww = h - NGRAM + 1, w - NGRAM + 1
        tokens = torch.stack([p[:, :, i:i + wh, j:j + ww] for i in range(NGRAM) for j in range(NGRAM)], dim=-1)
        tokens = tokens.permute(0, 2, 3, 4, 1).reshape(b * wh * ww, NGRAM * NGRAM, c)
        out = self.ngram_attn(tokens).view(b, wh, ww, NGRAM * NGRAM, c)
        return out.mean(dim=3).permute(0, 3, 1, 2)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, D) with H, W multiples of the window; returns (B, H/ws, W/ws, D)."""
        b, ph, pw, d = x.shape
        u = self.unigram_embed(x.permute(0, 3, 1, 2).reshape(b * (d // 2), 2, ph, pw))
        u = u.view(b, d // 2, ph // self.window_size, pw // self.window_size)
        context = torch.cat([self._slide(self._pad(u, back=False)), self._slide(self._pad(u, back=True))], dim=1)
        return self.merge(context).permute(0, 2, 3, 1)


class NGramWindowPartition(nn.Module):
    """Window partition with every window's N-gram context added to its tokens (no shift, as in HiT-SNG)."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.ngram_context = NGramContext(dim, window_size, num_heads)

    def forward(self, x: Tensor) -> Tensor:
        context = self.ngram_context(x)  # B, nh, nw, D
        windows = window_partition(x, self.window_size)
        return windows + context.reshape(-1, 1, 1, x.shape[-1])


class SCC(nn.Module):
    """Spatial-channel correlation inside ``window_size`` windows (see the module docstring)."""

    def __init__(self, dim: int, base_win_size: int, window_size: int, num_heads: int, ngram: bool) -> None:
        super().__init__()
        if dim % (2 * num_heads):
            raise ConfigError(f"HiT-SR: embed_dim {dim} must be a multiple of 2 * num_heads ({2 * num_heads})")
        self.window_size, self.num_heads = window_size, num_heads
        self.base = min(window_size, base_win_size)
        if window_size % self.base:
            raise ConfigError(f"HiT-SR: window {window_size} is not a multiple of the base window {base_win_size}")
        self.qv = DFE(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.scale = dim // (2 * num_heads)  # the official normalisation: head_dim itself, not its square root
        self.spatial_linear = nn.Linear(window_size**2 // self.base**2, 1)
        if ngram:
            self.ngram_window_partition = NGramWindowPartition(dim, window_size, num_heads)
        self.pos = DynamicPosBias(dim // 4, num_heads)
        # Derived tables computed on the CPU (index arithmetic under ``torch.device("meta")`` is slow), then put on
        # the device the model is being built on, as the parameters are.
        here = torch.empty(0).device
        span = torch.arange(1 - window_size, window_size, device="cpu")
        offsets = torch.stack(torch.meshgrid(span, span, indexing="ij"))
        self.register_buffer("rpe_biases", offsets.flatten(1).transpose(0, 1).float().to(here), persistent=False)
        # The official code gathers an (N, N) bias and averages it over each pooled cell; averaging the table with an
        # s x s box first and gathering (N, cells) of it is the same sum without the N x N tensor (N = 4096 for the
        # 64-pixel windows: 134 MB of indices per block). Token (y, x), cell (a, b): row y - a*s + ws - s of the box.
        cell = window_size // self.base
        k = (torch.arange(window_size, device="cpu")[:, None] - torch.arange(self.base, device="cpu")[None, :] * cell
             + window_size - cell)
        index = k[:, None, :, None] * (2 * window_size - cell) + k[None, :, None, :]  # y, x, a, b
        self.register_buffer("pooled_index", index.reshape(window_size**2, self.base**2).to(here), persistent=False)

    def position_bias(self) -> Tensor:
        """(heads, N, cells): the dynamic bias of each token to each pooled cell (mean over the cell's tokens)."""
        side, cell = 2 * self.window_size - 1, self.window_size // self.base
        table = self.pos(self.rpe_biases).view(side, side, -1).permute(2, 0, 1)
        if cell > 1:
            table = F.avg_pool2d(table, cell, stride=1)
        return table.flatten(1)[:, self.pooled_index]

    def _pool_values(self, v: Tensor) -> Tensor:
        b, nh, _, c = v.shape
        ws, mb = self.window_size, self.base
        v = v.view(b, nh, mb, ws // mb, mb, ws // mb, c).permute(0, 1, 2, 4, 6, 3, 5).reshape(b, nh, mb * mb, c, -1)
        return self.spatial_linear(v).view(b, nh, mb * mb, c)

    def forward(self, x: Tensor) -> Tensor:
        """x: (B, H, W, C), H and W multiples of the window."""
        _, h, w, c = x.shape
        ws = self.window_size
        qv = self.qv(x)
        part = self.ngram_window_partition if hasattr(self, "ngram_window_partition") else None
        windows = part(qv) if part is not None else window_partition(qv, ws)
        b, n = windows.shape[0], ws * ws
        q, v = windows.reshape(b, n, 2, self.num_heads, c // (2 * self.num_heads)).permute(2, 0, 3, 1, 4)

        pooled = self._pool_values(v)
        corr = (q @ pooled.transpose(-2, -1)) / self.scale + self.position_bias().unsqueeze(0)
        spatial = (corr @ pooled).permute(0, 2, 1, 3).reshape(b, n, -1)

        qc, vc = (t.permute(0, 2, 1, 3).reshape(b, n, -1) for t in (q, v))
        channel = ((qc.transpose(-2, -1) @ vc) / n @ vc.transpose(-2, -1)).permute(0, 2, 1)

        halves = [window_reverse(t.reshape(-1, ws, ws, c // 2), ws, h, w) for t in (spatial, channel)]
        return self.proj(torch.cat(halves, dim=-1))


class HierarchicalBlock(nn.Module):
    """``x + norm1(SCC(pad(x)))`` cropped back, then ``x + norm2(FFN(x))``."""

    def __init__(self, dim: int, num_heads: int, base_win_size: int, window_size: int, mlp_ratio: float,
                 drop_path: float, conv_ffn: bool, ngram: bool) -> None:
        super().__init__()
        self.pad_to = window_size * (2 if ngram else 1)  # HiT-SNG needs two windows' unigrams per side
        self.norm1 = nn.LayerNorm(dim)
        self.correlation = SCC(dim, base_win_size, window_size, num_heads, ngram)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = ConvFFN(dim, hidden) if conv_ffn else Mlp(dim, hidden)

    def forward(self, x: Tensor, h: int, w: int, mask: Tensor | None = None) -> Tensor:
        b, n, c = x.shape
        image = reflect_pad_to(x.view(b, h, w, c).permute(0, 3, 1, 2), self.pad_to).permute(0, 2, 3, 1)
        y = self.correlation(image)[:, :h, :w, :].reshape(b, n, c)
        x = x + self.drop_path(self.norm1(y))
        y = self.mlp(x, h, w) if isinstance(self.mlp, ConvFFN) else self.mlp(x)
        return x + self.drop_path(self.norm2(y))


class HiTSIR(SwinIR):
    """HiT-SIR (defaults: the released model, embed 60, 4 groups of 6 blocks, 6 heads, base window 8)."""

    conv_ffn = False
    ngram = False
    pad_multiple = 1

    def __init__(self, scale: int = 4, in_chans: int = 3, embed_dim: int = 60, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: int | Sequence[int] = (6, 6, 6, 6), base_win_size: int = 8,
                 hier_win_ratios: Sequence[float] = HIER_WIN_RATIOS, mlp_ratio: float = 2.0, patch_norm: bool = True,
                 drop_path_rate: float = 0.0, img_range: float = 1.0, upsampler: str = "pixelshuffledirect",
                 resi_connection: str = "1conv") -> None:
        self.base_win_size = base_win_size  # read by make_layers, which SwinIR's constructor calls
        self.hier_win_ratios = tuple(float(r) for r in hier_win_ratios)
        if max(int(d) for d in depths) > len(self.hier_win_ratios):
            raise ConfigError(f"HiT-SR: a group of {max(depths)} blocks needs as many hier_win_ratios "
                              f"(got {len(self.hier_win_ratios)})")
        super().__init__(scale=scale, in_chans=in_chans, embed_dim=embed_dim, depths=depths, num_heads=num_heads,
                         window_size=base_win_size, mlp_ratio=mlp_ratio, patch_norm=patch_norm,
                         drop_path_rate=drop_path_rate, img_range=img_range, upsampler=upsampler,
                         resi_connection=resi_connection, img_size=None)

    def make_layers(self, dim: int, depths: tuple[int, ...], heads: tuple[int, ...], window_size: int,
                    mlp_ratio: float, qkv_bias: bool, drop_path_rate: float, resi_connection: str,
                    img_size: int | None) -> nn.ModuleList:
        rates = drop_path_rates(drop_path_rate, depths)
        windows = [int(self.base_win_size * r) for r in self.hier_win_ratios]
        return nn.ModuleList(
            RSTB(dim, [HierarchicalBlock(dim, heads[i], self.base_win_size, windows[j], mlp_ratio, rates[i][j],
                                         self.conv_ffn, self.ngram) for j in range(depth)], resi_connection)
            for i, depth in enumerate(depths)
        )

    def shift_mask(self, h: int, w: int, device: torch.device) -> Tensor | None:
        return None

    def forward(self, x: Tensor) -> Tensor:
        mean = self.mean.to(x.dtype)
        x = (x - mean) * self.img_range
        return self.reconstruct(x, x) / self.img_range + mean


class HiTSRF(HiTSIR):
    """HiT-SRF: HiT-SIR with a depthwise-conv feed-forward."""

    conv_ffn = True


class HiTSNG(HiTSIR):
    """HiT-SNG: HiT-SIR with N-gram window context."""

    ngram = True


def _windows(sd: StateDict, depth: int, ngram: bool) -> tuple[int, tuple[float, ...]]:
    """(base window, window ratios) of the first group. HiT-SNG's unigram convs are as large as their windows, so
    its windows are read off; HiT-SIR / HiT-SRF keep only (window / base)^2 in the spatial linears, so the released
    base 8 and ratios are taken (a file of another configuration then fits no model and is reported, not misread)."""
    if not ngram:
        return 8, HIER_WIN_RATIOS[:depth]
    prefix = "layers.0.residual_group.blocks.{}.correlation."
    windows = [int(sd[prefix.format(j) + "ngram_window_partition.ngram_context.unigram_embed.weight"].shape[-1])
               for j in range(depth)]
    cells = [int(sd[prefix.format(j) + "spatial_linear.weight"].shape[-1]) for j in range(depth)]
    pooled = [(w, c) for w, c in zip(windows, cells) if c > 1]
    base = pooled[0][0] // math.isqrt(pooled[0][1]) if pooled else max(8, *windows)
    return base, tuple(w / base for w in windows)


def _detect_for(kind: str):  # noqa: ANN202 - returns a Detector
    def detect(sd: StateDict) -> dict[str, Any] | None:
        block0 = "layers.0.residual_group.blocks.0."
        if "conv_first.weight" not in sd or block0 + "correlation.qv.linear.weight" not in sd:
            return None
        has_dwconv = block0 + "mlp.dwconv.depthwise_conv.0.weight" in sd
        has_ngram = block0 + "correlation.ngram_window_partition.ngram_context.merge.weight" in sd
        if (has_dwconv, has_ngram) != {"sir": (False, False), "srf": (True, False), "sng": (False, True)}[kind]:
            return None
        embed_dim, in_chans = sd["conv_first.weight"].shape[:2]
        n_layers = count_indexed(sd, r"layers\.(\d+)\.residual_group\.blocks\.0\.norm1\.weight")
        depths = tuple(count_indexed(sd, rf"layers\.{i}\.residual_group\.blocks\.(\d+)\.norm1\.weight")
                       for i in range(n_layers))
        heads = tuple(int(sd[f"layers.{i}.residual_group.blocks.0.correlation.pos.pos3.2.weight"].shape[0])
                      for i in range(n_layers))
        base, ratios = _windows(sd, depths[0], kind == "sng")
        upsampler, scale = detect_swin_tail(sd, in_chans)
        return {"scale": scale, "in_chans": int(in_chans), "embed_dim": int(embed_dim), "depths": depths,
                "num_heads": heads, "base_win_size": base, "hier_win_ratios": ratios,
                "mlp_ratio": sd[block0 + "mlp.fc1.weight"].shape[0] / embed_dim,
                "patch_norm": "patch_embed.norm.weight" in sd, "upsampler": upsampler,
                "resi_connection": "3conv" if "conv_after_body.0.weight" in sd else "1conv"}

    return detect


_TINY = {"embed_dim": 16, "depths": (2,), "num_heads": (2,), "hier_win_ratios": (0.5, 1.0)}
_PAPER = "Zhang et al., ECCV 2024"
register_arch("hit_sir", scales=(4, 2, 3), detect=_detect_for("sir"), paper=_PAPER, tiny=_TINY)(HiTSIR)
register_arch("hit_srf", scales=(4, 2, 3), detect=_detect_for("srf"), paper=_PAPER, tiny=_TINY)(HiTSRF)
register_arch("hit_sng", scales=(4, 2, 3), detect=_detect_for("sng"), paper=_PAPER, tiny=_TINY)(HiTSNG)


def _table(*rows: tuple[float, float]) -> dict[str, tuple[float, float]]:
    return dict(zip(("Set5", "Set14", "B100", "Urban100", "Manga109"), rows))


# Published PSNR/SSIM (Y), parameters and FLOPs (G, 1280x720 output): paper Table 2 (the official README's
# figs/quantitative-comparison.png; the HiT-SRF row is also in the published-numbers reference of the SSIU table).
_PUBLISHED = {
    "hit_sir": ({2: 772_000, 3: 780_000, 4: 792_000}, {2: 209.9, 3: 94.2, 4: 53.8}, {
        2: _table((38.22, 0.9613), (33.91, 0.9213), (32.35, 0.9019), (33.02, 0.9365), (39.38, 0.9782)),
        3: _table((34.72, 0.9298), (30.62, 0.8474), (29.27, 0.8101), (28.93, 0.8673), (34.40, 0.9496)),
        4: _table((32.51, 0.8991), (28.84, 0.7873), (27.73, 0.7424), (26.71, 0.8045), (31.23, 0.9176))}),
    "hit_sng": ({2: 1_013_000, 3: 1_021_000, 4: 1_032_000}, {2: 213.9, 3: 99.5, 4: 57.7}, {
        2: _table((38.21, 0.9612), (34.00, 0.9217), (32.35, 0.9020), (33.01, 0.9360), (39.32, 0.9782)),
        3: _table((34.74, 0.9297), (30.62, 0.8474), (29.26, 0.8100), (28.91, 0.8671), (34.38, 0.9495)),
        4: _table((32.55, 0.8991), (28.83, 0.7873), (27.74, 0.7426), (26.75, 0.8053), (31.24, 0.9176))}),
    "hit_srf": ({2: 847_000, 3: 855_000, 4: 866_000}, {2: 226.5, 3: 101.6, 4: 58.0}, {
        2: _table((38.26, 0.9615), (34.01, 0.9214), (32.37, 0.9023), (33.13, 0.9372), (39.47, 0.9787)),
        3: _table((34.75, 0.9300), (30.61, 0.8475), (29.29, 0.8106), (28.99, 0.8687), (34.53, 0.9502)),
        4: _table((32.55, 0.8999), (28.87, 0.7880), (27.75, 0.7432), (26.80, 0.8069), (31.26, 0.9171))}),
}
for _name, (_params, _macs, _psnr) in _PUBLISHED.items():
    register_variant(_name, _name, {}, description=f"{_name.replace('_', '-').upper().replace('HIT', 'HiT')} "
                     "(embed 60, 4 x 6 blocks, windows 4-64), DIV2K [published: paper Table 2]",
                     paper_params=_params, paper_macs=_macs, paper_psnr=_psnr)
# HiT-SRF retrained on DF2K (official README, 2025); same architecture, its own checkpoint and numbers.
register_variant("hit_srf_df2k", "hit_srf", {}, description="HiT-SRF trained on DF2K [published: official README]",
                 paper_params={2: 847_000, 3: 855_000, 4: 866_000}, paper_psnr={
                     2: _table((38.30, 0.9615), (34.06, 0.9217), (32.41, 0.9027), (33.30, 0.9387), (39.67, 0.9793)),
                     3: _table((34.79, 0.9301), (30.68, 0.8486), (29.33, 0.8113), (29.16, 0.8717), (34.71, 0.9510)),
                     4: _table((32.63, 0.8993), (28.96, 0.7899), (27.78, 0.7442), (27.00, 0.8119), (31.55, 0.9203))})
