"""PCSR: Accelerating Image Super-Resolution Networks with Pixel-Level Classification (Jeong et al., ECCV 2024).

A backbone (here FSRCNN without its upsampler, the paper's PCSR-FSRCNN) computes LR features once; for every HR
pixel a linear classifier on the LIIF input (the nearest LR feature, the offset to it and the cell size) gives the
probabilities of the (light, heavy) upsamplers, and the pixel is computed by the one it is routed to, so the MACs
spent follow the image's content. The bilinear-upsampled LR image is added to every pixel (residual), and light
pixels next to a heavy one are replaced by the 3x3 mean of the result (the official "refinement", off the border).

Routing at inference (official ``PCSR.forward_test``): heavy where ``p_heavy / c_heavy^k > p_light / c_light^k``,
``c`` the normalised costs of the two paths; the paper's default ``k = 0`` is the argmax (``p_heavy > 0.5``).
``threshold`` replaces that rule by ``p_heavy > threshold`` (0 sends every pixel to the heavy path, 1 none).
``last_routing`` holds the pixel counts of the last forward; :func:`litesr.dynamic.mac_report` reports the MACs spent.

State-dict names follow the official code (3587jjh/PCSR, ``models/pcsr.py``, ``models/sampler.py``,
``models/fsrcnn.py``): ``encoder.head_conv``/``encoder.body_conv``, ``heavy_sampler.imnet.layers``,
``light_sampler.imnet.layers``, ``classifier.imnet.layers``. Input RGB in [0, 1] (``data_norm`` mean 0, std 1).
The official code is arbitrary-scale (coordinates); litesr runs it at the integer scale it is built for.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import MLP  # the official models/mlp.py layout (layers.{0,2,...}), shared with LIIF
from .base import SRModel


class FSRCNNEncoder(nn.Module):
    """FSRCNN without the transposed conv (official ``FSRCNN_net(no_upsampling=True)``): features at LR size."""

    def __init__(self, in_channels: int = 3, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        self.out_dim = d
        self.head_conv = nn.Sequential(nn.Conv2d(in_channels, d, 5, 1, 2), nn.PReLU())
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(d, s, 1), nn.PReLU())]
        layers += [nn.Conv2d(s, s, 3, 1, 1) for _ in range(m)]
        layers += [nn.PReLU(), nn.Sequential(nn.Conv2d(s, d, 1), nn.PReLU())]
        self.body_conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body_conv(self.head_conv(x))


class Sampler(nn.Module):
    """LIIF sampler without feature unfolding or local ensemble: an MLP on (feature, relative coord, cell)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.imnet = MLP(in_dim + 4, out_dim, hidden)

    def forward(self, inp: Tensor) -> Tensor:
        return self.imnet(inp)


def liif_inputs(feat: Tensor, scale: int) -> Tensor:
    """(B, sH*sW, C + 4) LIIF inputs of every HR pixel at an integer scale, row-major.

    At integer scales the official nearest-neighbour lookup picks LR pixel (i // s, j // s) for HR pixel (i, j);
    the relative coordinate is ``(2r + 1) / s - 1`` (r = i mod s) in LR-pixel units and the cell ``2 / s``.
    """
    b, c, h, w = feat.shape
    up = feat.repeat_interleave(scale, 2).repeat_interleave(scale, 3)  # (B, C, sH, sW)
    offset = (2 * torch.arange(scale, device=feat.device, dtype=feat.dtype) + 1) / scale - 1
    rel_y = offset.repeat(h).view(1, 1, -1, 1).expand(b, 1, h * scale, w * scale)
    rel_x = offset.repeat(w).view(1, 1, 1, -1).expand(b, 1, h * scale, w * scale)
    cell = torch.full_like(rel_y, 2.0 / scale)
    return torch.cat([up, rel_y, rel_x, cell, cell], 1).flatten(2).transpose(1, 2)


def _detect(sd: StateDict) -> dict | None:
    needed = ("encoder.head_conv.0.weight", "encoder.body_conv.0.0.weight", "heavy_sampler.imnet.layers.0.weight",
              "light_sampler.imnet.layers.0.weight", "classifier.imnet.layers.0.weight")
    if any(k not in sd for k in needed):
        return None

    def hidden(prefix: str) -> tuple[int, ...]:
        idx = sorted(int(m.group(1)) for k in sd if (m := re.match(rf"{prefix}\.imnet\.layers\.(\d+)\.weight$", k)))
        return tuple(int(sd[f"{prefix}.imnet.layers.{i}.weight"].shape[0]) for i in idx[:-1])

    d, in_channels = sd["encoder.head_conv.0.weight"].shape[:2]
    m = sum(1 for k in sd if re.match(r"encoder\.body_conv\.\d+\.bias$", k))
    return {"d": int(d), "s": int(sd["encoder.body_conv.0.0.weight"].shape[0]), "m": m,
            "in_channels": int(in_channels), "heavy": hidden("heavy_sampler"), "light": hidden("light_sampler"),
            "classifier": hidden("classifier")}


# The weights do not record a scale (LIIF samplers are scale-free); x4 first: the official training and the paper.
@register_arch("pcsr", scales=(4, 2, 3), detect=_detect, paper="Jeong et al., ECCV 2024",
               tiny={"d": 8, "s": 4, "m": 1, "heavy": (8, 8), "light": (4,)})
class PCSR(SRModel):
    """PCSR: a pixel-level classifier routes each HR pixel to a light or a heavy LIIF upsampler."""

    color_space = "rgb"

    def __init__(self, scale: int = 4, d: int = 48, s: int = 12, m: int = 4, in_channels: int = 3,
                 heavy: tuple[int, ...] = (58, 58, 58, 58), light: tuple[int, ...] = (10, 10, 10),
                 classifier: tuple[int, ...] = (), k: float = 0.0, threshold: float | None = None,
                 refinement: bool = True, pixel_batch_size: int = 65536) -> None:
        super().__init__()
        self.scale = scale
        self.encoder = FSRCNNEncoder(in_channels, d, s, m)
        self.heavy_sampler = Sampler(d, in_channels, tuple(heavy))
        self.light_sampler = Sampler(d, in_channels, tuple(light))
        self.classifier = Sampler(d, 2, tuple(classifier))
        self.k = k
        self.refinement = refinement
        self.pixel_batch_size = pixel_batch_size
        self.threshold: float | None = None
        self.set_threshold(threshold)
        self.last_routing: dict[str, int] = {}

    def set_threshold(self, threshold: float | None) -> None:
        """``p_heavy > threshold`` routes a pixel to the heavy path; None: the paper's rule (cost exponent ``k``)."""
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"PCSR threshold must be in [0, 1], not {threshold}")
        self.threshold = threshold

    @contextlib.contextmanager
    def full_cost(self) -> Iterator[None]:
        """Every pixel on the heavy path: the MACs of the model without routing (for the MAC report)."""
        saved = self.threshold
        self.threshold = 0.0
        try:
            yield
        finally:
            self.threshold = saved

    def path_costs(self) -> Tensor:
        """Normalised (light, heavy) MACs of the encoder plus one path, as the official ``cost_list`` (per LR pixel)."""
        enc = sum(mod.weight.numel() for mod in self.encoder.modules() if isinstance(mod, nn.Conv2d))
        per_pixel = self.scale**2

        def mlp(sampler: Sampler) -> int:
            return sum(mod.weight.numel() for mod in sampler.modules() if isinstance(mod, nn.Linear)) * per_pixel

        costs = torch.tensor([enc + mlp(self.light_sampler), enc + mlp(self.heavy_sampler)], dtype=torch.float64)
        return costs / costs.sum()

    def _chunks(self, n: int) -> Iterator[slice]:
        step = max(1, self.pixel_batch_size)
        for start in range(0, n, step):
            yield slice(start, min(n, start + step))

    def route(self, prob: Tensor) -> Tensor:
        """Boolean (heavy) flags from (…, 2) softmax probabilities (light, heavy)."""
        if self.threshold is not None:
            return prob[..., 1] > self.threshold
        weighted = prob / self.path_costs().to(prob).pow(self.k)
        return weighted[..., 1] > weighted[..., 0]  # argmax: a tie goes to the light path, as torch.argmax

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            return self.forward_train(x)
        return self.forward_test(x)

    def _residual(self, x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)

    def forward_train(self, x: Tensor) -> Tensor:
        """Phase-1 training form: the probability-weighted mix of both paths (the classifier learns from it)."""
        inp = liif_inputs(self.encoder(x), self.scale)
        prob = self.classifier(inp).softmax(-1)
        pred = prob[..., :1] * self.light_sampler(inp) + prob[..., 1:] * self.heavy_sampler(inp)
        b, _, h, w = x.shape
        return pred.transpose(1, 2).reshape(b, -1, h * self.scale, w * self.scale) + self._residual(x)

    def forward_test(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        hh, ww = h * self.scale, w * self.scale
        inp = liif_inputs(self.encoder(x), self.scale)  # (B, Q, C + 4)
        q = inp.shape[1]
        heavy = torch.empty(b, q, dtype=torch.bool, device=x.device)
        for part in self._chunks(q):
            heavy[:, part] = self.route(self.classifier(inp[:, part]).softmax(-1))
        pred = x.new_zeros(b, q, c)
        for i in range(b):
            for part in self._chunks(q):
                flags, rows = heavy[i, part], inp[i, part]
                idx_heavy, idx_light = torch.nonzero(flags).flatten(), torch.nonzero(~flags).flatten()
                out = pred[i, part]
                if idx_light.numel():
                    out[idx_light] = self.light_sampler(rows[idx_light])
                if idx_heavy.numel():
                    out[idx_heavy] = self.heavy_sampler(rows[idx_heavy])
        pred = pred.transpose(1, 2).reshape(b, c, hh, ww) + self._residual(x)
        flag = heavy.view(b, 1, hh, ww)
        if self.refinement:
            mean = F.avg_pool2d(F.pad(pred, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
            near_heavy = F.max_pool2d(F.pad(flag.to(pred.dtype), (1, 1, 1, 1), mode="replicate"), 3, stride=1) > 0
            cond = ~flag & near_heavy
            cond[:, :, [0, -1], :] = False
            cond[:, :, :, [0, -1]] = False
            pred = torch.where(cond, mean, pred)
        n_heavy = int(heavy.sum())
        self.last_routing = {"pixels": b * q, "heavy_pixels": n_heavy, "light_pixels": b * q - n_heavy}
        return pred


# Params: the official PCSR-FSRCNN config (configs/fsrcnn-pcsr-phase1.yaml), counted with the official code.
# Published: the paper's main quantitative table as the official project page shows it (github.com/3587jjh/PCSR,
# branch gh-pages, static/images/results_quantitative.PNG, "Models / Params. / Test2K ... Urban100 (dB) / GFLOPs",
# x4): FSRCNN-PCSR 25K parameters. Its PSNR is printed for Test2K/4K/8K and Urban100 without SSIM (and its GFLOPs are
# per-image averages of the adaptive routing, not for a 1280x720 output), so only the parameter count is registered.
register_variant("pcsr_fsrcnn", "pcsr", {},
                 description="PCSR-FSRCNN (FSRCNN d=48 backbone, heavy MLP 4x58, light MLP 3x10, linear classifier)",
                 pretrained={}, paper_params={4: 25_000})
