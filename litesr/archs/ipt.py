"""IPT: Pre-Trained Image Processing Transformer (Chen et al., CVPR 2021).

One network for several tasks: a head per task (conv + two 5x5 residual blocks), a shared Transformer encoder/decoder
over the 3x3-patch embeddings of a ``patch_size`` x ``patch_size`` feature map (the decoder gets a learned *task
query*), and a tail per task (upsampler + conv). State-dict names follow the official code (huawei-noah/Pretrained-IPT,
``model/ipt.py``): ``sub_mean``/``add_mean``, ``head.i``, ``body.{linear_encoding, mlp_head, query_embed, encoder,
decoder, position_encoding}``, ``tail.i``.

Tasks. ``tasks`` names the heads/tails in order, e.g. the paper's pre-training set ``("sr_x2", "sr_x3", "sr_x4",
"denoise30", "denoise50", "derain")``; ``sr_xN`` tasks upscale N times, all others keep the size. Select one with
``model.set_task("denoise30")`` (or ``model.set_scale(3)`` / ``model(x, scale=3)`` for an SR task); ``model.task``
and ``model.scale`` tell the current one. Task i uses head i, tail i and query i.

Sizes. The Transformer sees exactly ``patch_size`` x ``patch_size`` inputs. ``forward`` runs other sizes the way the
official test code does (``forward_chop``): overlapping tiles at a stride of patch_size / 4, their centres averaged,
edge strips stitched on; inputs smaller than a tile are padded to one and cropped back. Pixels are in [0, rgb_range]
(255 for the released models), which is ``input_range``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import DerivedBuffers, MeanShift, Upsample, conv, count_indexed, upsample_scale
from .edsr import ResBlock

PAPER_TASKS = ("sr_x2", "sr_x3", "sr_x4", "denoise30", "denoise50", "derain")
_RESTORATION_NAMES = ("denoise30", "denoise50", "derain")


def task_scale(name: str) -> int:
    """The upscaling factor of a task name: N for ``sr_xN``, 1 for anything else."""
    m = re.fullmatch(r"sr_x(\d+)", name)
    return int(m.group(1)) if m else 1


def _upsample(scale: int, n_feats: int) -> Upsample:
    try:
        return Upsample(scale, n_feats)
    except ValueError as exc:
        raise ConfigError(f"IPT task scale: {exc}") from None


class LearnedPositionalEncoding(DerivedBuffers):
    derived_buffers = ("position_ids",)

    def __init__(self, seq_length: int, embedding_dim: int) -> None:
        super().__init__()
        self.pe = nn.Embedding(seq_length, embedding_dim)
        self.register_buffer("position_ids", torch.arange(seq_length).expand((1, -1)))

    def forward(self) -> Tensor:
        return self.pe(self.position_ids)


def _with_pos(x: Tensor, pos: Tensor | None) -> Tensor:
    return x if pos is None else x + pos


class TransformerEncoderLayer(nn.Module):
    """Pre-norm encoder layer (bias-free attention, ReLU feed-forward); ``pos`` is added to queries and keys."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, no_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, bias=False)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.Identity() if no_norm else nn.LayerNorm(d_model)
        self.norm2 = nn.Identity() if no_norm else nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        nn.init.kaiming_uniform_(self.self_attn.in_proj_weight, a=math.sqrt(5))

    def forward(self, src: Tensor, pos: Tensor | None = None) -> Tensor:
        src2 = self.norm1(src)
        qk = _with_pos(src2, pos)
        src = src + self.dropout1(self.self_attn(qk, qk, src2, need_weights=False)[0])
        src2 = self.linear2(self.dropout(F.relu(self.linear1(self.norm2(src)))))
        return src + self.dropout2(src2)


class TransformerDecoderLayer(nn.Module):
    """Pre-norm decoder layer: self-attention and cross-attention to the encoder output, queries offset by the task
    query embedding."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int, dropout: float, no_norm: bool) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, bias=False)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, bias=False)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.Identity() if no_norm else nn.LayerNorm(d_model)
        self.norm2 = nn.Identity() if no_norm else nn.LayerNorm(d_model)
        self.norm3 = nn.Identity() if no_norm else nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor | None = None,
                query_pos: Tensor | None = None) -> Tensor:
        tgt2 = self.norm1(tgt)
        qk = _with_pos(tgt2, query_pos)
        tgt = tgt + self.dropout1(self.self_attn(qk, qk, tgt2, need_weights=False)[0])
        tgt2 = self.norm2(tgt)
        tgt2 = self.multihead_attn(_with_pos(tgt2, query_pos), _with_pos(memory, pos), memory, need_weights=False)[0]
        tgt = tgt + self.dropout2(tgt2)
        tgt2 = self.linear2(self.dropout(F.relu(self.linear1(self.norm3(tgt)))))
        return tgt + self.dropout3(tgt2)


class _Stack(nn.Module):
    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class VisionTransformer(nn.Module):
    """The shared body: 3x3 patches of the (patch_size x patch_size) feature map as tokens, encoder, decoder with the
    task query, MLP head, folded back into a feature map."""

    def __init__(self, img_dim: int, patch_dim: int, num_channels: int, num_heads: int, num_layers: int,
                 num_queries: int, dropout_rate: float, mlp: bool, pos_every: bool, no_pos: bool,
                 no_norm: bool) -> None:
        super().__init__()
        self.img_dim, self.patch_dim = img_dim, patch_dim
        self.mlp, self.pos_every, self.no_pos = mlp, pos_every, no_pos
        self.flatten_dim = patch_dim * patch_dim * num_channels
        self.embedding_dim = self.flatten_dim
        self.seq_length = (img_dim // patch_dim) ** 2
        hidden_dim = self.embedding_dim * 4
        if mlp:
            self.linear_encoding = nn.Linear(self.flatten_dim, self.embedding_dim)
            self.mlp_head = nn.Sequential(
                nn.Linear(self.embedding_dim, hidden_dim), nn.Dropout(dropout_rate), nn.ReLU(),
                nn.Linear(hidden_dim, self.flatten_dim), nn.Dropout(dropout_rate),
            )
            self.query_embed = nn.Embedding(num_queries, self.embedding_dim * self.seq_length)
        self.encoder = _Stack([TransformerEncoderLayer(self.embedding_dim, num_heads, hidden_dim, dropout_rate, no_norm)
                               for _ in range(num_layers)])
        self.decoder = _Stack([TransformerDecoderLayer(self.embedding_dim, num_heads, hidden_dim, dropout_rate, no_norm)
                               for _ in range(num_layers)])
        if not no_pos:
            self.position_encoding = LearnedPositionalEncoding(self.seq_length, self.embedding_dim)
        self.dropout_layer1 = nn.Dropout(dropout_rate)
        if no_norm:  # the official initialisation when the LayerNorms are dropped
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, std=1 / m.weight.size(1))

    def forward(self, x: Tensor, query_idx: int) -> Tensor:
        b = x.shape[0]
        x = F.unfold(x, self.patch_dim, stride=self.patch_dim).permute(2, 0, 1)  # L, B, D (sequence first)
        query = None
        if self.mlp:
            x = self.dropout_layer1(self.linear_encoding(x)) + x
            query = self.query_embed.weight[query_idx].view(-1, 1, self.embedding_dim).repeat(1, b, 1)
        pos = None if self.no_pos else self.position_encoding().transpose(0, 1)
        if self.no_pos or not self.pos_every:
            x = _with_pos(x, pos)
            for layer in self.encoder.layers:
                x = layer(x)
            memory = x
            for layer in self.decoder.layers:
                x = layer(x, memory, query_pos=query)
        else:
            for layer in self.encoder.layers:
                x = layer(x, pos=pos)
            memory = x
            for layer in self.decoder.layers:
                x = layer(x, memory, pos=pos, query_pos=query)
        if self.mlp:
            x = self.mlp_head(x) + x
        x = x.permute(1, 2, 0)  # B, D, L
        return F.fold(x, self.img_dim, self.patch_dim, stride=self.patch_dim)


def _detect(sd: StateDict) -> dict[str, Any] | None:
    needed = ("sub_mean.bias", "head.0.0.weight", "body.encoder.layers.0.self_attn.in_proj_weight", "tail.0.1.weight")
    if not all(k in sd for k in needed):
        return None
    n_feats = sd["head.0.0.weight"].shape[0]
    embedding = sd["body.encoder.layers.0.self_attn.in_proj_weight"].shape[1]
    patch_dim = math.isqrt(embedding // n_feats)
    mlp = "body.linear_encoding.weight" in sd
    if "body.position_encoding.pe.weight" in sd:
        seq_length = sd["body.position_encoding.pe.weight"].shape[0]
    elif mlp:
        seq_length = sd["body.query_embed.weight"].shape[1] // embedding
    else:
        seq_length = (48 // patch_dim) ** 2  # nothing in the weights tells; 48 is the official patch size
    scales = [upsample_scale(sd, f"tail.{i}.0") for i in range(count_indexed(sd, r"tail\.(\d+)\.1\.weight$"))]
    tasks = _task_names(scales)
    try:
        rgb_range = float(round(float((-sd["sub_mean.bias"] / torch.tensor((0.4488, 0.4371, 0.4040))).mean())))
    except (RuntimeError, NotImplementedError):  # meta tensors carry no values
        rgb_range = 255.0
    return {
        "scale": scales[0], "tasks": tasks, "n_feats": int(n_feats), "patch_size": math.isqrt(seq_length) * patch_dim,
        "patch_dim": patch_dim,
        "num_layers": count_indexed(sd, r"body\.encoder\.layers\.(\d+)\."),
        "num_queries": sd["body.query_embed.weight"].shape[0] if mlp else len(tasks),
        "rgb_range": rgb_range, "mlp": mlp, "no_pos": "body.position_encoding.pe.weight" not in sd,
        "no_norm": "body.encoder.layers.0.norm1.weight" not in sd,
        # num_heads and pos_every leave no trace in the weights: the official 12 heads (or, for embeddings 12 does
        # not divide, the most heads up to 12 that divide it) and pos_every=False are assumed; pass num_heads= to
        # load_model to override.
        "num_heads": max(d for d in range(1, 13) if embedding % d == 0),
    }


def _task_names(scales: Sequence[int]) -> tuple[str, ...]:
    """Names for tails read off a checkpoint: ``sr_xN`` by scale; size-keeping tails get the paper's restoration
    task names in order (denoise30, denoise50, derain), as nothing in the weights tells them apart."""
    names: list[str] = []
    restoration = iter(_RESTORATION_NAMES)
    for s in scales:
        name = f"sr_x{s}" if s > 1 else next(restoration, f"restore{len(names)}")
        while name in names:
            name += "_"
        names.append(name)
    return tuple(names)


@register_arch(
    "ipt", scales=(2, 3, 4, 1), detect=_detect, paper="Chen et al., CVPR 2021 (IPT)",
    tiny={"tasks": ("sr_x2", "sr_x3", "sr_x4", "denoise30"), "n_feats": 4, "patch_size": 8, "patch_dim": 2,
          "num_heads": 2, "num_layers": 1},
)
class IPT(SRModel):
    """IPT: task-specific heads and tails around a shared Transformer encoder/decoder with task queries.

    ``tasks`` lists the tasks (one head, tail and query each); ``scale`` picks the initial one (the first task of that
    scale). Switch with :meth:`set_task` / :meth:`set_scale`. Defaults are the paper's pre-training configuration.
    """

    multi_scale = True

    def __init__(self, scale: int = 2, tasks: Sequence[str] = PAPER_TASKS, n_feats: int = 64, patch_size: int = 48,
                 patch_dim: int = 3, num_heads: int = 12, num_layers: int = 12, num_queries: int | None = None,
                 rgb_range: float = 255.0, mlp: bool = True, pos_every: bool = False, no_pos: bool = False,
                 no_norm: bool = False, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(f"tasks must be distinct names, at least one; got {self.tasks}")
        if patch_size % 4 or patch_size % patch_dim:
            raise ConfigError(f"patch_size {patch_size} must be a multiple of 4 and of patch_dim {patch_dim}")
        if (n_feats * patch_dim**2) % num_heads:
            raise ConfigError(f"embedding size {n_feats * patch_dim**2} is not divisible by num_heads {num_heads}")
        num_queries = len(self.tasks) if num_queries is None else num_queries
        if mlp and num_queries < len(self.tasks):
            raise ConfigError(f"{len(self.tasks)} tasks need {len(self.tasks)} task queries, not {num_queries}")
        self.task_scales = tuple(task_scale(t) for t in self.tasks)
        self.patch_size = patch_size
        self.input_range = float(rgb_range)
        self.chop_batch = 64  # tiles per Transformer call when chopping (the official crop_batch_size)
        self.sub_mean = MeanShift(rgb_range)
        self.add_mean = MeanShift(rgb_range, sign=1)
        self.head = nn.ModuleList(
            nn.Sequential(conv(3, n_feats, 3), ResBlock(n_feats, 5), ResBlock(n_feats, 5)) for _ in self.tasks
        )
        self.body = VisionTransformer(patch_size, patch_dim, n_feats, num_heads, num_layers, num_queries,
                                      dropout_rate, mlp, pos_every, no_pos, no_norm)
        # Size-keeping tasks get an empty upsampler (Upsample(1) has no stages), as in the official code.
        self.tail = nn.ModuleList(nn.Sequential(_upsample(s, n_feats), conv(n_feats, 3, 3)) for s in self.task_scales)
        self.task_index = 0
        self.set_scale(scale)

    # -- task selection --------------------------------------------------------------------------------------------

    @property
    def task(self) -> str:
        return self.tasks[self.task_index]

    def set_task(self, task: str) -> None:
        """Use the head, tail and query of ``task`` (one of ``self.tasks``) from now on."""
        if task not in self.tasks:
            raise ConfigError(f"IPT has no task {task!r}; its tasks are {', '.join(self.tasks)}")
        self.task_index = self.tasks.index(task)
        self.scale = self.task_scales[self.task_index]

    def set_scale(self, scale: int) -> None:
        """Switch to a task of that scale (the current task if it has it, else the first one)."""
        if self.task_scales[self.task_index] == scale and getattr(self, "scale", None) == scale:
            return
        if scale not in self.task_scales:
            raise ConfigError(f"IPT with tasks {', '.join(self.tasks)} has no x{scale} task")
        self.set_task(self.tasks[self.task_scales.index(scale)])

    # -- forward ---------------------------------------------------------------------------------------------------

    def forward_patch(self, x: Tensor) -> Tensor:
        """The network proper, on (B, 3, patch_size, patch_size) inputs in [0, rgb_range]."""
        i = self.task_index
        x = self.head[i](self.sub_mean(x))
        x = self.tail[i](self.body(x, i) + x)
        return self.add_mean(x)

    def forward(self, x: Tensor, scale: int | None = None) -> Tensor:
        if scale is not None:
            self.set_scale(scale)
        h, w = x.shape[-2:]
        p = self.patch_size
        if h < p or w < p:  # pad up to one tile, crop back
            ph, pw = max(0, p - h), max(0, p - w)
            mode = "reflect" if ph < h and pw < w else "replicate"
            out = self.forward(F.pad(x, (0, pw, 0, ph), mode=mode))
            return out[..., : h * self.scale, : w * self.scale]
        if h == p and w == p:
            return self.forward_patch(x)
        return self.forward_chop(x)

    def _tiles(self, x: Tensor, positions: list[tuple[int, int]]) -> dict[tuple[int, int], Tensor]:
        """Run the network on the tiles at ``positions`` (top-left corners), ``chop_batch`` tiles at a time."""
        p, b = self.patch_size, x.shape[0]
        outs: list[Tensor] = []
        step = max(1, self.chop_batch // b)
        for i in range(0, len(positions), step):
            batch = torch.cat([x[..., r : r + p, c : c + p] for r, c in positions[i : i + step]])
            outs.extend(self.forward_patch(batch).split(b))
        return dict(zip(positions, outs))

    def forward_chop(self, x: Tensor) -> Tensor:
        """The official ``forward_chop``: tiles at stride patch_size / 4; each output pixel is the mean of the tile
        centres covering it (a quarter tile trimmed per side), with the image border taken from strips of tiles
        along the top, left, bottom and right edges. Needs inputs of at least one tile."""
        p, s = self.patch_size, self.scale
        t = p // 4
        ps, m = p * s, t * s
        h, w = x.shape[-2:]
        h_cut, w_cut = (h - p) % t, (w - p) % t
        out_h, out_w = (h - h_cut) * s, (w - w_cut) * s
        rows, cols = range(0, h - p + 1, t), range(0, w - p + 1, t)
        needed = {(r, q) for r in rows for q in cols} | {(h - p, q) for q in cols} | {(r, w - p) for r in rows}
        y = self._tiles(x, sorted(needed | {(h - p, w - p)}))

        def centre_mean(tiles: dict[tuple[int, int], Tensor], size_h: int, size_w: int, mh: int, mw: int) -> Tensor:
            """Mean of the tile centres (``mh``/``mw`` trimmed per side) over a canvas trimmed the same way;
            ``tiles`` maps output offsets to tiles."""
            total = x.new_zeros(x.shape[0], x.shape[1], size_h - 2 * mh, size_w - 2 * mw)
            count = x.new_zeros(1, 1, size_h - 2 * mh, size_w - 2 * mw)
            for (oy, ox), tile in tiles.items():
                total[..., oy : oy + ps - 2 * mh, ox : ox + ps - 2 * mw] += tile[..., mh : ps - mh, mw : ps - mw]
                count[..., oy : oy + ps - 2 * mh, ox : ox + ps - 2 * mw] += 1
            return total / count

        def strip(tiles: dict[tuple[int, int], Tensor], size_h: int, size_w: int, mh: int, mw: int) -> Tensor:
            """A row (mw = m) or column (mh = m) of tiles: their sum, whose ends only the first and the last tile
            cover, with the inside replaced by the mean of the centres."""
            canvas = x.new_zeros(x.shape[0], x.shape[1], size_h, size_w)
            for (oy, ox), tile in tiles.items():
                canvas[..., oy : oy + ps, ox : ox + ps] += tile
            canvas[..., mh : size_h - mh, mw : size_w - mw] = centre_mean(tiles, size_h, size_w, mh, mw)
            return canvas

        def row_strip(r: int) -> Tensor:  # the tiles at input row r, blended along the width
            return strip({(0, q * s): y[(r, q)] for q in cols}, ps, out_w, 0, m)

        def column_strip(q: int) -> Tensor:  # the tiles at input column q, blended along the height
            return strip({(r * s, 0): y[(r, q)] for r in rows}, out_h, ps, m, 0)

        # The official order: top strip, left strip, then the centre means over everything but an m-pixel border.
        out = x.new_zeros(x.shape[0], x.shape[1], out_h, out_w)
        out[..., :ps, :] = row_strip(0)
        out[..., :, :ps] = column_strip(0)
        grid = {(r * s, q * s): y[(r, q)] for r in rows for q in cols}
        out[..., m : out_h - m, m : out_w - m] = centre_mean(grid, out_h, out_w, m, m)
        # Stitch the bottom and right strips (and the corner tile) over the last rows and columns.
        keep_h, skip_h = int((p - h_cut) / 2 * s), int((p - h_cut) / 2 * s + 0.5)
        keep_w, skip_w = int((p - w_cut) / 2 * s), int((p - w_cut) / 2 * s + 0.5)
        out = torch.cat([out[..., : out_h - keep_h, :], row_strip(h - p)[..., skip_h:, :]], dim=2)
        right = torch.cat([column_strip(w - p)[..., : out_h - keep_h, :], y[(h - p, w - p)][..., skip_h:, :]], dim=2)
        return torch.cat([out[..., : out_w - keep_w], right[..., skip_w:]], dim=3)


register_variant("ipt", "ipt", {}, description="IPT pre-training configuration (64 features, 48x48 patches of 3x3, "
                 "12 heads, 12+12 layers, 6 tasks: x2, x3, x4 SR, denoising sigma 30 / 50, deraining)")
