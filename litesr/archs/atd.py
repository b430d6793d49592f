"""ATD: Adaptive Token Dictionary (Zhang et al., CVPR 2024, "Transcending the Limit of Local Window: Advanced
Super-Resolution Transformer with Adaptive Token Dictionary").

SwinIR's layout (``conv_first``, ``patch_embed.norm``, ``layers.i`` residual groups closed by ``layers.i.conv``,
``norm``, ``conv_after_body`` and the four SwinIR reconstruction heads) with a different block. Each group holds a
learned token dictionary ``layers.i.residual_group.td`` (num_tokens x dim); each block
``layers.i.residual_group.layers.j`` projects the normed tokens once (``wqkv``) and adds three attentions:

- ``attn_win``: (shifted) window self-attention with a relative-position bias table; the one index table is the
  top-level buffer ``relative_position_index_SA``;
- ``attn_atd``: token-dictionary cross-attention (TDCA): cosine similarity of ``wq``-reduced tokens with the
  ``wk``-reduced dictionary, sharpened by ``1 + clamp(scale) * log(num_tokens)``, over ``wv`` of the dictionary;
- ``attn_aca``: category attention (AC-MSA): tokens sorted by their most similar dictionary entry, cut into groups
  of ``category_size`` (the last group filled with the mirrored tail), attention inside each group (cosine-free
  q k^T times ``exp(clamp(logit_scale))``), then ``proj``;

then a ConvFFN (``convffn.fc1``, a depth-wise ``dwconv.depthwise_conv.0`` + GELU added on, ``fc2``). Every block but
the last of a group refines the dictionary from the image (``norm3``: InstanceNorm over the similarity map,
``sigma``: the mixing gate). Names follow the official code (LabShuHangGU/Adaptive-Token-Dictionary,
``basicsr/archs/atd_arch.py``). ``no_norm`` (a buffer) marks models trained without the RGB mean shift.

Size rule: any size. ``forward`` pads to a multiple of the window (16 for the released models) by mirroring the
image including its edge row (the official ``cat([x, flip(x)])``, not reflect) and crops back; ``pad_multiple``
stays 1 because the engine's reflect padding would change the border result. Input range [0, 1].

Tiling: the category groups and the dictionary refinement span the whole input, so a tile's result depends on the
rest of its tile, not only on a window around each pixel: tiled output is close to, not equal to, the whole-image
output (large tiles keep it close). ``category_size`` is not stored in the weights: 256 (ATD) or 128 (ATD-light,
read as embed_dim 48 with the one-step upsampler), the rule spandrel uses too.
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
from .blocks import (
    DerivedBuffers,
    count_indexed,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)
from .swinir import (
    RGB_MEAN,
    PatchEmbed,
    _as_tuple,
    _init_weights,
    build_swin_tail,
    detect_swin_tail,
    image_to_tokens,
    residual_conv,
    run_swin_tail,
    tokens_to_image,
    windowed_attention,
)

UPSAMPLERS = ("pixelshuffle", "pixelshuffledirect", "nearest+conv", "")


def pad_symmetric(x: Tensor, multiple: int) -> Tensor:
    """Pad the bottom/right of an NCHW tensor to a multiple by mirroring with the edge repeated (``abc|cba``), the
    official ATD padding; inputs smaller than the pad mirror again (the official code would fail there)."""
    h, w = x.shape[-2:]
    th, tw = math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
    while x.shape[-2] < th:
        x = torch.cat([x, torch.flip(x, [2])], 2)
    while x.shape[-1] < tw:
        x = torch.cat([x, torch.flip(x, [3])], 3)
    return x[..., :th, :tw]


class QKVWindowAttention(nn.Module):
    """Window attention on projections made outside (the block's shared ``wqkv``): bias table and ``proj`` only."""

    def __init__(self, dim: int, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size, self.num_heads = window_size, num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.proj = nn.Linear(dim, dim)

    def forward(self, qkv: Tensor, index: Tensor, mask: Tensor | None) -> Tensor:
        b_, n, c3 = qkv.shape
        c = c3 // 3
        q, k, v = qkv.reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)
        return self.proj(windowed_attention(q, k, v, bias, mask, self.scale))


class TokenDictionaryAttention(nn.Module):
    """TDCA (``attn_atd``): each token attends to the dictionary; returns the result and the similarity map."""

    def __init__(self, dim: int, num_tokens: int, reducted_dim: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.wq = nn.Linear(dim, reducted_dim, bias=qkv_bias)
        self.wk = nn.Linear(dim, reducted_dim, bias=qkv_bias)
        self.wv = nn.Linear(dim, dim, bias=qkv_bias)
        self.scale = nn.Parameter(torch.ones(num_tokens) * 0.5)

    def forward(self, x: Tensor, td: Tensor) -> tuple[Tensor, Tensor]:
        attn = F.normalize(self.wq(x), dim=-1) @ F.normalize(self.wk(td), dim=-1).transpose(-2, -1)
        attn = (attn * (1 + torch.clamp(self.scale, 0, 1) * math.log(self.num_tokens))).softmax(dim=-1)
        return attn @ self.wv(td), attn


def inverse_permutation(index: Tensor) -> Tensor:
    """Per row of a (B, N) permutation, the index that undoes it."""
    order = torch.arange(index.shape[-1], device=index.device).expand_as(index)
    return torch.empty_like(index).scatter_(-1, index, order)


def gather_tokens(x: Tensor, index: Tensor) -> Tensor:
    return torch.gather(x, 1, index.unsqueeze(-1).expand(x.shape))


class CategoryAttention(nn.Module):
    """AC-MSA (``attn_aca``): attention inside groups of tokens that share their most similar dictionary entry."""

    def __init__(self, dim: int, num_heads: int, category_size: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads, self.category_size = num_heads, category_size
        self.proj = nn.Linear(dim, dim, bias=qkv_bias)
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(1, 1)))

    def forward(self, qkv: Tensor, sim: Tensor) -> Tensor:
        b, n, c3 = qkv.shape
        c, heads = c3 // 3, self.num_heads
        gs = min(n, self.category_size)
        ng = (n + gs - 1) // gs
        pad_n = ng * gs - n
        # The official sort is not stable; on the same device it orders ties as this call does.
        order = torch.sort(torch.argmax(sim, dim=-1), dim=-1, stable=False)[1]
        shuffled = gather_tokens(qkv, order)
        padded = torch.cat((shuffled, torch.flip(shuffled[:, n - pad_n : n], dims=[1])), dim=1)
        q, k, v = padded.reshape(b, ng, gs, 3, heads, c // heads).permute(3, 0, 1, 4, 2, 5)
        logit_scale = torch.clamp(self.logit_scale, max=math.log(1.0 / 0.01)).exp()
        attn = ((q @ k.transpose(-2, -1)) * logit_scale).softmax(dim=-1)
        y = (attn @ v).permute(0, 1, 3, 2, 4).reshape(b, n + pad_n, c)[:, :n]
        return self.proj(gather_tokens(y, inverse_permutation(order)))


class ConvFFN(nn.Module):
    """fc1, GELU, plus a depth-wise conv + GELU of that on the image form, fc2."""

    def __init__(self, dim: int, hidden: int, kernel_size: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.dwconv = nn.Module()
        self.dwconv.depthwise_conv = nn.Sequential(
            nn.Conv2d(hidden, hidden, kernel_size, 1, (kernel_size - 1) // 2, groups=hidden), nn.GELU())
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, h: int, w: int) -> Tensor:
        x = self.act(self.fc1(x))
        return self.fc2(x + image_to_tokens(self.dwconv.depthwise_conv(tokens_to_image(x, h, w))))


class ATDBlock(nn.Module):
    """One ATD transformer layer: window + dictionary + category attention, ConvFFN, dictionary refinement."""

    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, *, category_size: int,
                 num_tokens: int, reducted_dim: int, convffn_kernel_size: int, mlp_ratio: float, qkv_bias: bool,
                 is_last: bool) -> None:
        super().__init__()
        self.window_size, self.shift_size, self.is_last = window_size, shift_size, is_last
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        if not is_last:
            self.norm3 = nn.InstanceNorm1d(num_tokens, affine=True)
            self.sigma = nn.Parameter(torch.zeros(num_tokens, 1))
        self.wqkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.attn_win = QKVWindowAttention(dim, window_size, num_heads)
        self.attn_atd = TokenDictionaryAttention(dim, num_tokens, reducted_dim, qkv_bias)
        self.attn_aca = CategoryAttention(dim, num_heads, category_size, qkv_bias)
        self.convffn = ConvFFN(dim, int(dim * mlp_ratio), convffn_kernel_size)

    def window_attention(self, qkv: Tensor, h: int, w: int, index: Tensor, mask: Tensor | None) -> Tensor:
        b, _, c3 = qkv.shape
        ws, shift = self.window_size, self.shift_size
        qkv = qkv.view(b, h, w, c3)
        if shift:
            qkv = torch.roll(qkv, shifts=(-shift, -shift), dims=(1, 2))
        windows = self.attn_win(window_partition(qkv, ws).reshape(-1, ws * ws, c3), index, mask if shift else None)
        x = window_reverse(windows.view(-1, ws, ws, c3 // 3), ws, h, w)
        if shift:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x.reshape(b, h * w, c3 // 3)

    def forward(self, x: Tensor, td: Tensor, h: int, w: int, index: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        y = self.norm1(x)
        qkv = self.wqkv(y)
        x_atd, sim = self.attn_atd(y, td)
        x_aca = self.attn_aca(qkv, sim)
        x = x + self.window_attention(qkv, h, w, index, mask) + x_atd + x_aca
        x = x + self.convffn(self.norm2(x), h, w)
        if not self.is_last:
            weights = self.norm3(sim.transpose(-1, -2)).softmax(dim=-1)  # b, tokens, n
            gate = torch.sigmoid(self.sigma)
            td = gate * td + (1 - gate) * (weights @ x)
        return x, td


class ATDGroup(nn.Module):
    """The blocks of one residual group and their token dictionary (``residual_group``)."""

    def __init__(self, blocks: list[ATDBlock], dim: int, num_tokens: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(blocks)
        self.td = nn.Parameter(torch.randn(num_tokens, dim))

    def forward(self, x: Tensor, h: int, w: int, index: Tensor, mask: Tensor) -> Tensor:
        td = self.td.repeat(x.shape[0], 1, 1)
        for block in self.layers:
            x, td = block(x, td, h, w, index, mask)
        return x


class ATDB(nn.Module):
    """Residual adaptive-token-dictionary block: a group, a conv on the image form, a residual connection."""

    def __init__(self, dim: int, group: ATDGroup, resi_connection: str) -> None:
        super().__init__()
        self.residual_group = group
        self.conv = residual_conv(dim, resi_connection)

    def forward(self, x: Tensor, h: int, w: int, index: Tensor, mask: Tensor) -> Tensor:
        return image_to_tokens(self.conv(tokens_to_image(self.residual_group(x, h, w, index, mask), h, w))) + x


def light_category_size(embed_dim: int, upsampler: str) -> int:
    """The category size the weights do not record: 128 for ATD-light (embed 48, one-step upsampler), else 256."""
    return 128 if upsampler == "pixelshuffledirect" and embed_dim == 48 else 256


def _detect(sd: StateDict) -> dict[str, Any] | None:
    block0 = "layers.0.residual_group.layers.0."
    if "relative_position_index_SA" not in sd or "layers.0.residual_group.td" not in sd \
            or block0 + "attn_atd.wq.weight" not in sd:
        return None
    embed_dim, in_chans = (int(n) for n in sd["conv_first.weight"].shape[:2])
    n_layers = count_indexed(sd, r"layers\.(\d+)\.residual_group\.td$")
    depths = tuple(count_indexed(sd, rf"layers\.{i}\.residual_group\.layers\.(\d+)\.norm1\.weight")
                   for i in range(n_layers))
    heads = tuple(int(sd[f"layers.{i}.residual_group.layers.0.attn_win.relative_position_bias_table"].shape[1])
                  for i in range(n_layers))
    upsampler, scale = detect_swin_tail(sd, in_chans)
    ape = "absolute_pos_embed" in sd
    return {
        "scale": scale, "in_chans": in_chans, "embed_dim": embed_dim, "depths": depths, "num_heads": heads,
        "window_size": math.isqrt(sd["relative_position_index_SA"].shape[0]),
        "category_size": light_category_size(embed_dim, upsampler),
        "num_tokens": int(sd[block0 + "attn_atd.scale"].shape[0]),
        "reducted_dim": int(sd[block0 + "attn_atd.wq.weight"].shape[0]),
        "convffn_kernel_size": int(sd[block0 + "convffn.dwconv.depthwise_conv.0.weight"].shape[2]),
        "mlp_ratio": sd[block0 + "convffn.fc1.weight"].shape[0] / embed_dim,
        "qkv_bias": block0 + "wqkv.bias" in sd,
        "ape": ape, "img_size": math.isqrt(sd["absolute_pos_embed"].shape[1]) if ape else 64,
        "patch_norm": "patch_embed.norm.weight" in sd,
        "upsampler": upsampler,
        "resi_connection": "1conv" if "layers.0.conv.weight" in sd else "3conv",
        "norm": "no_norm" not in sd,
    }


@register_arch(
    "atd", scales=(2, 3, 4, 8, 1), paper="Zhang et al., CVPR 2024 (ATD)", detect=_detect,
    tiny={"embed_dim": 12, "depths": (2,), "num_heads": (2,), "window_size": 4, "category_size": 16, "num_tokens": 8,
          "reducted_dim": 4},
)
class ATD(DerivedBuffers, SRModel):
    """ATD: residual groups of adaptive-token-dictionary blocks between a conv head and a SwinIR reconstruction.

    Defaults are ATD (classical SR, the official x2/x3/x4 test options): embed 210, 6 groups of 6 blocks, 6 heads,
    window 16, category 256, 128 tokens, reduced dim 20, ConvFFN kernel 5, mlp 2, pixelshuffle.
    """

    derived_buffers = ("relative_position_index_SA",)
    safe_precisions = ("fp32", "bf16")  # as spandrel declares it (supports_half=False): fp16 is not verified

    def __init__(self, scale: int = 2, in_chans: int = 3, embed_dim: int = 210, depths: Sequence[int] = (6,) * 6,
                 num_heads: int | Sequence[int] = (6,) * 6, window_size: int = 16, category_size: int = 256,
                 num_tokens: int = 128, reducted_dim: int = 20, convffn_kernel_size: int = 5, mlp_ratio: float = 2.0,
                 qkv_bias: bool = True, ape: bool = False, img_size: int = 64, patch_norm: bool = True,
                 img_range: float = 1.0, upsampler: str = "pixelshuffle", resi_connection: str = "1conv",
                 norm: bool = True) -> None:
        super().__init__()
        depths = tuple(int(d) for d in depths)
        heads = _as_tuple(num_heads, len(depths), "num_heads")
        if upsampler not in UPSAMPLERS:
            raise ConfigError(f"upsampler must be one of {', '.join(map(repr, UPSAMPLERS))}, not {upsampler!r}")
        if (scale == 1) != (upsampler == ""):
            raise ConfigError(f"upsampler {upsampler!r} does not fit x{scale} ('' is the scale-1 restoration head)")
        if any(embed_dim % n for n in heads):
            raise ConfigError(f"embed_dim {embed_dim} is not divisible by every num_heads entry {heads}")
        self.scale, self.window_size, self.img_range, self.upsampler = scale, window_size, img_range, upsampler
        self.img_size = img_size
        self.color_space = "rgb" if in_chans == 3 else "y"
        mean = torch.tensor(RGB_MEAN).view(1, 3, 1, 1) if in_chans == 3 else torch.zeros(1, 1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        if not norm:
            self.register_buffer("no_norm", torch.zeros(1))  # the official marker of "no mean shift"
        self.norm_input = norm

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm=patch_norm)
        if ape:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, img_size * img_size, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.register_buffer("relative_position_index_SA", relative_position_index(window_size))
        self.layers = nn.ModuleList(
            ATDB(embed_dim, ATDGroup([
                ATDBlock(embed_dim, heads[i], window_size, 0 if j % 2 == 0 else window_size // 2,
                         category_size=category_size, num_tokens=num_tokens, reducted_dim=reducted_dim,
                         convffn_kernel_size=convffn_kernel_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         is_last=j == depth - 1)
                for j in range(depth)
            ], embed_dim, num_tokens), resi_connection)
            for i, depth in enumerate(depths)
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = residual_conv(embed_dim, resi_connection)
        build_swin_tail(self, embed_dim, in_chans, scale, upsampler)
        self.apply(_init_weights)

    def forward_features(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        mask = shifted_window_mask(h, w, self.window_size, self.window_size // 2, device=x.device).to(x.dtype)
        tokens = self.patch_embed(x)
        if hasattr(self, "absolute_pos_embed"):
            if h * w != self.absolute_pos_embed.shape[1]:
                raise ValueError(f"this model has an absolute position embedding for {self.img_size}x{self.img_size} "
                                 f"inputs (padded), not {h}x{w}")
            tokens = tokens + self.absolute_pos_embed
        for layer in self.layers:
            tokens = layer(tokens, h, w, self.relative_position_index_SA, mask)
        return tokens_to_image(self.norm(tokens), h, w)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        x = pad_symmetric(x, self.window_size)
        mean = self.mean.to(x.dtype)
        if self.norm_input:
            x = (x - mean) * self.img_range
        inp = x
        x = self.conv_first(x)
        x = run_swin_tail(self, self.conv_after_body(self.forward_features(x)) + x, inp, self.scale)
        if self.norm_input:
            x = x / self.img_range + mean
        return x[..., : h * self.scale, : w * self.scale]


register_variant("atd_light", "atd",
                 {"embed_dim": 48, "depths": (6,) * 4, "num_heads": (4,) * 4, "category_size": 128,
                  "num_tokens": 64, "reducted_dim": 8, "convffn_kernel_size": 7, "mlp_ratio": 1.0,
                  "upsampler": "pixelshuffledirect"},
                 paper_params={2: 753_000, 3: 760_000, 4: 769_000},
                 paper_psnr={2: {"Set5": (38.29, 0.9616), "Set14": (34.10, 0.9217), "B100": (32.39, 0.9023),
                                 "Urban100": (33.27, 0.9375), "Manga109": (39.52, 0.9789)},
                             3: {"Set5": (34.74, 0.9300), "Set14": (30.68, 0.8485), "B100": (29.32, 0.8109),
                                 "Urban100": (29.17, 0.8709), "Manga109": (34.60, 0.9506)},
                             4: {"Set5": (32.63, 0.8998), "Set14": (28.89, 0.7886), "B100": (27.79, 0.7440),
                                 "Urban100": (26.97, 0.8107), "Manga109": (31.48, 0.9198)}},
                 paper_macs={2: 146.0, 3: 65.0, 4: 39.0},
                 description="ATD-light (embed 48, 4 groups of 6 blocks, 4 heads, window 16, category 128, 64 tokens,"
                 " pixelshuffledirect) [published: SSIU table]")
