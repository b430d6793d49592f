"""SMSR: Exploring Sparsity in Image Super-Resolution for Efficient Inference (Wang et al., CVPR 2021).

State-dict names follow the official code (LongguangWang/SMSR, ``model/smsr.py``, EDSR-PyTorch framework):
``sub_mean``/``add_mean`` (frozen mean shifts), ``head``, five sparse mask modules ``body.N`` (``spa_mask`` predicts a
spatial mask, ``body`` the sparse mask block with its channel-mask logits ``ch_mask`` and four bias-free 3x3 convs,
``collect`` a 1x1 fusion, ``ca`` channel attention), ``collect`` and ``tail``.

Training (``model.train()``): spatial and channel masks are relaxed with Gumbel softmax (temperature ``tau``, see
:meth:`SMSR.set_tau`); the forward returns the SR image and keeps the sparsity map of the official training loss in
``model.sparsity``. Inference (``model.eval()``): masks are hard (spatial: argmax of two logits; channel: rounded
softmax); each conv layer splits its channels into dense ones (computed everywhere) and sparse ones (computed only at
the masked pixels). ``inference_mode = "sparse"`` (default, the official test path) computes the sparse channels on
the gathered masked pixels only; ``"dense"`` computes the same function with masked dense convolutions (any batch
size; the two agree to float rounding).

Input: RGB in [0, 255] (EDSR ``rgb_range`` 255, mean shift inside); H and W must be even (2x average pooling and a
stride-2 transposed conv in the mask branch).
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from .base import SRModel
from .blocks import CALayer, MeanShift, conv

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
InferenceMode = Literal["sparse", "dense"]


def gumbel_softmax(logits: Tensor, dim: int, tau: float) -> Tensor:
    """Softmax of (logits + Gumbel noise) / tau (noise drawn from U(0, 1), zeros redrawn as in the official code)."""
    u = torch.rand_like(logits)
    while bool((u == 0).any()):
        u = torch.rand_like(logits)
    return ((logits - torch.log(-torch.log(u))) / tau).softmax(dim)


def _conv_or_zeros(x: Tensor, weight: Tensor, padding: int = 0) -> Tensor:
    """``F.conv2d`` that also accepts zero input or output channels (a layer whose channels are all sparse)."""
    if weight.shape[0] and weight.shape[1]:
        return F.conv2d(x, weight, padding=padding)
    return x.new_zeros(x.shape[0], weight.shape[0], x.shape[2], x.shape[3])


class SparseMaskBlock(nn.Module):
    """SMB: ``n_layers`` bias-free 3x3 convs + ReLU whose outputs are concatenated and fused by a 1x1 ``collect``.

    ``ch_mask`` (1, C, n_layers, 2) holds per-layer, per-channel logits for (dense, sparse).
    """

    def __init__(self, channels: int, n_layers: int = 4) -> None:
        super().__init__()
        self.channels = channels
        self.n_layers = n_layers
        self.tau = 1.0
        self.relu = nn.ReLU(inplace=True)
        self.ch_mask = nn.Parameter(torch.rand(1, channels, n_layers, 2))
        self.body = nn.Sequential(*[nn.Conv2d(channels, channels, 3, 1, 1, bias=False) for _ in range(n_layers)])
        self.collect = nn.Conv2d(channels * n_layers, channels, 1)

    # -- training: soft masks, dense computation (official formulation) ----------------------------------------------
    def forward_train(self, x: Tensor, spa_mask: Tensor) -> tuple[Tensor, Tensor]:
        ch_mask = gumbel_softmax(self.ch_mask, 3, self.tau)
        outs = []
        fea = x
        for i in range(self.n_layers):
            dense, sparse = ch_mask[:, :, i : i + 1, :1], ch_mask[:, :, i : i + 1, 1:]
            if i == 0:
                fea = self.body[0](fea)
                fea = fea * sparse * spa_mask + fea * dense
            else:
                # As in the official code, the input split uses this layer's channel mask.
                fea_d = self.body[i](fea * dense)
                fea_s = self.body[i](fea * sparse)
                fea = (fea_d * sparse * spa_mask + fea_d * dense + fea_s * sparse * spa_mask
                       + fea_s * dense * spa_mask)
            fea = self.relu(fea)
            outs.append(fea)
        return self.collect(torch.cat(outs, 1)), ch_mask

    # -- inference: hard masks ---------------------------------------------------------------------------------------
    def hard_channel_masks(self) -> tuple[Tensor, Tensor]:
        """(dense, sparse) boolean masks of shape (n_layers, C); a channel may be neither on an exact 0.5 tie."""
        rounded = self.ch_mask.softmax(3).round()[0].transpose(0, 1)  # (n_layers, C, 2)
        return rounded[..., 0] == 1, rounded[..., 1] == 1

    def forward_dense(self, x: Tensor, spa_mask: Tensor) -> Tensor:
        """Hard-mask inference computed densely: sparse channels are zero outside the spatial mask, and a sparse
        input contributes to any output only at masked pixels (as the sparse path computes them)."""
        dense, sparse = self.hard_channel_masks()
        view = (1, -1, 1, 1)
        outs = []
        fea = x
        for i in range(self.n_layers):
            out_gate = dense[i].view(view).to(x.dtype) + sparse[i].view(view).to(x.dtype) * spa_mask
            if i == 0:
                fea = self.body[0](fea) * out_gate
            else:
                from_dense = self.body[i](fea * dense[i - 1].view(view).to(x.dtype))
                from_sparse = self.body[i](fea * sparse[i - 1].view(view).to(x.dtype))
                fea = from_dense * out_gate + from_sparse * spa_mask
            fea = self.relu(fea)
            outs.append(fea)
        return self.collect(torch.cat(outs, 1))

    def forward_sparse(self, x: Tensor, spa_mask: Tensor) -> Tensor:
        """Hard-mask inference that computes sparse channels only at the masked pixels (batch of 1)."""
        dense, sparse = self.hard_channel_masks()
        _, _, h, w = x.shape
        rows, cols = torch.nonzero(spa_mask[0, 0] > 0, as_tuple=True)
        n = rows.numel()
        if n == 0:  # nothing to gather: only dense channels contribute, which the dense path computes alike
            return self.forward_dense(x, spa_mask)
        offsets = torch.arange(3, device=x.device)
        # (9, N) coordinates of the 3x3 neighbourhood of each masked pixel in the 1-padded map, kernel order (ky, kx)
        nb_rows = (rows.view(1, 1, -1) + offsets.view(3, 1, 1)).expand(3, 3, n).reshape(9, n)
        nb_cols = (cols.view(1, 1, -1) + offsets.view(1, 3, 1)).expand(3, 3, n).reshape(9, n)
        # position of each neighbour in the sparse list, 1-based; 0 for neighbours outside the mask (read as zeros)
        slot = torch.zeros(h + 2, w + 2, dtype=torch.long, device=x.device)
        slot[rows + 1, cols + 1] = torch.arange(1, n + 1, device=x.device)
        nb_slot = slot[nb_rows, nb_cols]

        def gather_dense(fea: Tensor) -> Tensor:  # (1, C, H, W) -> (C * 9, N)
            return F.pad(fea, (1, 1, 1, 1))[0][:, nb_rows, nb_cols].reshape(-1, n)

        def gather_sparse(vals: Tensor) -> Tensor:  # (C, N) -> (C * 9, N)
            return F.pad(vals, (1, 0))[:, nb_slot].reshape(-1, n)

        all_channels = torch.ones(self.channels, dtype=torch.bool, device=x.device)
        fea_d, fea_s = x, x.new_zeros(0, n)
        in_d, in_s = all_channels, ~all_channels
        dense_outs, sparse_outs = [], []
        for i in range(self.n_layers):
            weight = self.body[i].weight
            w_dd, w_sd = weight[dense[i]][:, in_d], weight[sparse[i]][:, in_d]
            out_d = _conv_or_zeros(fea_d, w_dd, padding=1)
            out_s = w_sd.flatten(1) @ gather_dense(fea_d)
            if fea_s.shape[0]:
                w_from_s = weight[:, in_s]
                from_s = w_from_s.flatten(1) @ gather_sparse(fea_s)
                out_d[0][:, rows, cols] += from_s[dense[i]]
                out_s = out_s + from_s[sparse[i]]
            fea_d, fea_s = self.relu(out_d), self.relu(out_s)
            in_d, in_s = dense[i], sparse[i]
            dense_outs.append(fea_d)
            sparse_outs.append(fea_s)
        # 1x1 collect: the concatenation is layer-major, so the same flattening selects its dense / sparse columns
        w_collect = self.collect.weight[:, :, 0, 0]
        out = _conv_or_zeros(torch.cat(dense_outs, 1), w_collect[:, dense.reshape(-1)][..., None, None])
        out = out + self.collect.bias.view(1, -1, 1, 1)
        out[0][:, rows, cols] += w_collect[:, sparse.reshape(-1)] @ torch.cat(sparse_outs, 0)
        return out


class SMM(nn.Module):
    """Sparse mask module: spatial-mask branch, sparse mask block, channel attention, residual."""

    def __init__(self, channels: int, n_layers: int = 4) -> None:
        super().__init__()
        quarter = channels // 4
        self.spa_mask = nn.Sequential(
            nn.Conv2d(channels, quarter, 3, 1, 1), nn.ReLU(inplace=True), nn.AvgPool2d(2),
            nn.Conv2d(quarter, quarter, 3, 1, 1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(quarter, 2, 3, 2, 1, output_padding=1),
        )
        self.body = SparseMaskBlock(channels, n_layers)
        self.ca = CALayer(channels)
        self.tau = 1.0
        self.full_mask = False
        self.kept_pixels = 0

    def forward_train(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        spa_mask = gumbel_softmax(self.spa_mask(x), 1, self.tau)[:, 1:]
        out, ch_mask = self.body.forward_train(x, spa_mask)
        return self.ca(out) + x, spa_mask, ch_mask

    def forward_eval(self, x: Tensor, mode: InferenceMode) -> Tensor:
        logits = self.spa_mask(x)
        spa_mask = (logits[:, 1:] > logits[:, :1]).to(x.dtype)
        if self.full_mask:  # SMSR.full_cost(): every pixel kept, the cost the masks save is measured against
            spa_mask = torch.ones_like(spa_mask)
        self.kept_pixels = int(spa_mask.sum())
        if mode == "dense":
            out = self.body.forward_dense(x, spa_mask)
        else:  # one image at a time: the gathered pixel lists differ per image
            out = torch.cat([self.body.forward_sparse(x[b : b + 1], spa_mask[b : b + 1]) for b in range(x.shape[0])])
        return self.ca(out) + x


def _detect(sd: StateDict) -> dict | None:
    if "body.0.body.ch_mask" not in sd or "body.0.spa_mask.0.weight" not in sd or "head.0.weight" not in sd:
        return None
    n_feats, n_colors = sd["head.0.weight"].shape[:2]
    n_blocks = len({m.group(1) for k in sd if (m := re.match(r"body\.(\d+)\.", k))})
    return {"scale": math.isqrt(sd["tail.0.weight"].shape[0] // n_colors), "n_feats": n_feats, "n_colors": n_colors,
            "n_blocks": n_blocks, "n_layers": sd["body.0.body.ch_mask"].shape[2]}


@register_arch("smsr", scales=(2, 3, 4), detect=_detect, paper="Wang et al., CVPR 2021",
               tiny={"n_feats": 16, "n_blocks": 2, "n_layers": 2})  # CA reduction 16 needs >= 16
class SMSR(SRModel):
    """SMSR: sparse mask modules that skip computation on masked-out pixels and channels; bicubic global skip."""

    color_space = "rgb"
    pad_multiple = 2

    def __init__(self, scale: int = 4, n_feats: int = 64, n_colors: int = 3, n_blocks: int = 5, n_layers: int = 4,
                 rgb_range: float = 255.0) -> None:
        super().__init__()
        self.scale = scale
        self.input_range = rgb_range
        self.inference_mode: InferenceMode = "sparse"
        self.sparsity: Tensor | None = None
        self.sub_mean = MeanShift(rgb_range, DIV2K_MEAN)
        self.add_mean = MeanShift(rgb_range, DIV2K_MEAN, sign=1)
        self.head = nn.Sequential(conv(n_colors, n_feats), nn.ReLU(inplace=True), conv(n_feats, n_feats))
        self.body = nn.Sequential(*[SMM(n_feats, n_layers) for _ in range(n_blocks)])
        self.collect = nn.Sequential(nn.Conv2d(n_feats * n_blocks, n_feats, 1), nn.ReLU(inplace=True),
                                     nn.Conv2d(n_feats, n_feats, 3, 1, 1))
        self.tail = nn.Sequential(nn.Conv2d(n_feats, n_colors * scale * scale, 3, 1, 1), nn.PixelShuffle(scale))

    def set_tau(self, tau: float) -> None:
        """Gumbel-softmax temperature of every mask (the official training anneals it)."""
        for module in self.modules():
            if isinstance(module, SMM | SparseMaskBlock):
                module.tau = tau

    def set_inference_mode(self, mode: InferenceMode) -> None:
        if mode not in ("sparse", "dense"):
            raise ValueError(f"inference mode must be 'sparse' or 'dense', not {mode!r}")
        self.inference_mode = mode

    @contextlib.contextmanager
    def full_cost(self) -> Iterator[None]:
        """Spatial masks all on (channel masks kept): the MACs of the network without its sparsity, for
        :func:`litesr.dynamic.mac_report` (which reports what the masks skipped)."""
        for smm in self.body:
            smm.full_mask = True
        try:
            yield
        finally:
            for smm in self.body:
                smm.full_mask = False

    def forward(self, x: Tensor) -> Tensor:
        x0 = self.sub_mean(x)
        fea = head = self.head(x0)
        outs, sparsity = [], []
        for smm in self.body:
            if self.training:
                fea, spa_mask, ch_mask = smm.forward_train(fea)
                # fraction of computation kept, per pixel and channel (the official sparsity regulariser's input)
                sparsity.append(spa_mask * ch_mask[..., 1].view(1, -1, 1, 1)
                                + torch.ones_like(spa_mask) * ch_mask[..., 0].view(1, -1, 1, 1))
            else:
                fea = smm.forward_eval(fea, self.inference_mode)
            outs.append(fea)
        self.sparsity = torch.cat(sparsity, 0) if sparsity else None
        if not self.training:  # what the sparse masks kept, for litesr.dynamic.mac_report
            self.last_routing = {"mask_pixels": len(self.body) * fea.shape[0] * fea.shape[-2] * fea.shape[-1],
                                 "kept_pixels": sum(smm.kept_pixels for smm in self.body)}
        out = self.collect(torch.cat(outs, 1)) + head
        out = self.tail(out) + F.interpolate(x0, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return self.add_mean(out)


register_variant("smsr", "smsr", {}, description="SMSR (64 channels, 5 sparse mask modules of 4 layers)",
                 # The paper counts exclude the channel-mask logits (5 x 64 x 4 x 2) and the frozen mean shifts.
                 paper_params={2: 985_000, 3: 993_000, 4: 1_006_000})
