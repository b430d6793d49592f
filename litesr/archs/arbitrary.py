"""Arbitrary-scale SR: Meta-SR (Hu et al., CVPR 2019) and LIIF (Chen et al., CVPR 2021) heads on EDSR-baseline.

Both papers put their head on an EDSR (or RDN) feature extractor without its upsampler; here the backbone is EDSR's,
with EDSR's state-dict names (``sub_mean``, ``head.0``, ``body.N``), so an EDSR-baseline checkpoint warm-starts it
(``--init-from``), and the head sits at ``upsampler`` (:class:`~litesr.upsamplers.MetaUpscale` /
:class:`~litesr.upsamplers.LIIF`). One network serves every factor: ``forward(x, scale)`` or ``forward(x, size=...)``.

``residual="bicubic"`` (litesr's CPU recipe, not the papers') adds the bicubic upsampling of the input to the head's
output, so the head learns only the missing detail; ``"none"`` is the papers' form (the head outputs the image, with
EDSR's mean shift).

The range a model was trained on is ``trained_scales`` (default [1, 4]); asking for a factor outside it warns once.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from ..upsamplers import LIIF, MetaUpscale, make_coord, output_size
from .base import SRModel
from .blocks import MeanShift, conv, count_indexed
from .edsr import DIV2K_RGB_MEAN, ResBlock

RESIDUALS = ("none", "bicubic")


class ArbitraryScaleSR(SRModel):
    """EDSR backbone (no upsampler) + an arbitrary-scale head; any factor in one network."""

    multi_scale = True

    def __init__(self, scale: float = 2, n_resblocks: int = 16, n_feats: int = 64, residual: str = "none",
                 trained_scales: tuple[float, float] = (1.0, 4.0)) -> None:
        super().__init__()
        if residual not in RESIDUALS:
            raise ConfigError(f"residual must be one of {', '.join(RESIDUALS)}, not {residual!r}")
        self.scale = scale  # type: ignore[assignment]  # the default factor; any float >= 1 works
        self.residual = residual
        self.trained_scales = (float(trained_scales[0]), float(trained_scales[1]))
        self._warned = False
        self.sub_mean = MeanShift(1.0, DIV2K_RGB_MEAN)
        self.add_mean = MeanShift(1.0, DIV2K_RGB_MEAN, sign=1)
        self.head = nn.Sequential(conv(3, n_feats, 3))
        self.body = nn.Sequential(*(ResBlock(n_feats, 3) for _ in range(n_resblocks)), conv(n_feats, n_feats, 3))
        self.upsampler = self.build_head(n_feats)
        if residual == "bicubic":
            # A marker in the state dict, so a checkpoint says it needs the bicubic residual (detection sees only
            # tensors; loaded without it, a residual model's output is far off).
            self.register_buffer("residual_bicubic", torch.ones(()))
            # Start at bicubic: the head's last layer begins near zero, so early training refines instead of
            # first unlearning a random image (the official init puts the first outputs at about +-0.5).
            last = [m for m in self.upsampler.modules() if isinstance(m, nn.Linear)][-1]
            nn.init.normal_(last.weight, 0.0, 1e-4)
            nn.init.zeros_(last.bias)

    def build_head(self, n_feats: int) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_scale(self, scale: float) -> None:
        if scale < 1:
            raise ValueError(f"{type(self).__name__} upscales by factors >= 1, not x{scale:g}")
        self.scale = scale  # type: ignore[assignment]

    def check_scale(self, scale: float) -> None:
        """Warn (once per model) when ``scale`` lies outside the range the model was trained on."""
        low, high = self.trained_scales
        if not self._warned and not low - 1e-6 <= scale <= high + 1e-6:
            self._warned = True
            warnings.warn(f"{type(self).__name__}: x{scale:g} is outside the trained range x{low:g}-x{high:g}; "
                          "expect lower quality", stacklevel=3)

    def features(self, x: Tensor) -> Tensor:
        x = self.head(self.sub_mean(x))
        return self.body(x) + x

    def finish(self, out: Tensor, x: Tensor) -> Tensor:
        if self.residual == "bicubic":
            b, _, h, w = out.shape
            coord = make_coord((h, w), x.device).view(1, -1, 2).expand(b, -1, -1)
            return out + bicubic_at(x, coord).permute(0, 2, 1).reshape(b, 3, h, w)
        return self.add_mean(out)

    def forward(self, x: Tensor, scale: float | None = None, size: tuple[int, int] | None = None) -> Tensor:
        out_hw = output_size(tuple(x.shape[-2:]), scale, size, float(self.scale))
        self.check_scale(0.5 * (out_hw[0] / x.shape[-2] + out_hw[1] / x.shape[-1]))
        return self.finish(self.upsampler(self.features(x), size=out_hw), x)


def bicubic_at(x: Tensor, coord: Tensor) -> Tensor:
    """Bicubic samples of ``x`` at LIIF coordinates (B, Q, 2) in [-1, 1]: (B, Q, C). The same in training (sampled
    queries) and inference (every pixel), so the residual the head learns is the one it gets."""
    grid = coord.flip(-1).unsqueeze(1)  # grid_sample wants (x, y)
    return F.grid_sample(x, grid, mode="bicubic", padding_mode="border", align_corners=False)[:, :, 0].permute(0, 2, 1)


def _detect_backbone(sd: StateDict, head_key: str) -> dict | None:
    if head_key not in sd or "head.0.weight" not in sd or "body.0.body.0.weight" not in sd:
        return None
    return {"scale": 2, "n_feats": int(sd["head.0.weight"].shape[0]),
            "n_resblocks": count_indexed(sd, r"body\.(\d+)\.body\.0\.weight$"),
            "residual": "bicubic" if "residual_bicubic" in sd else "none"}


def _detect_meta(sd: StateDict) -> dict | None:
    config = _detect_backbone(sd, "upsampler.meta_block.0.weight")
    if config is None:
        return None
    q = sd["upsampler.meta_block.2.weight"].shape[0]
    config["hidden"] = int(sd["upsampler.meta_block.0.weight"].shape[0])
    config["kernel_size"] = math.isqrt(q // (3 * config["n_feats"]))
    return config


@register_arch("metasr", scales=(2, 3, 4), detect=_detect_meta, paper="Hu et al., CVPR 2019",
               tiny={"n_resblocks": 1, "n_feats": 8, "hidden": 16})
class MetaSR(ArbitraryScaleSR):
    """Meta-SR: EDSR features, meta-upscale head (filters predicted per output position); any factor."""

    def __init__(self, scale: float = 2, n_resblocks: int = 16, n_feats: int = 64, hidden: int = 256,
                 kernel_size: int = 3, residual: str = "none",
                 trained_scales: tuple[float, float] = (1.0, 4.0)) -> None:
        self._head_options = {"hidden": hidden, "kernel_size": kernel_size}
        super().__init__(scale, n_resblocks, n_feats, residual, trained_scales)

    def build_head(self, n_feats: int) -> nn.Module:
        return MetaUpscale(n_feats, float(self.scale), 3, **self._head_options)


def _detect_liif(sd: StateDict) -> dict | None:
    config = _detect_backbone(sd, "upsampler.imnet.layers.0.weight")
    if config is None:
        return None
    layers = sorted(int(k.split(".")[3]) for k in sd if k.startswith("upsampler.imnet.layers.") and
                    k.endswith(".weight"))
    config["hidden"] = tuple(int(sd[f"upsampler.imnet.layers.{i}.weight"].shape[0]) for i in layers[:-1])
    return config


@register_arch("liif", scales=(2, 3, 4), detect=_detect_liif, paper="Chen et al., CVPR 2021",
               tiny={"n_resblocks": 1, "n_feats": 8, "hidden": (16, 16)})
class LIIFSR(ArbitraryScaleSR):
    """LIIF: EDSR features, local implicit image function head (MLP on latent + relative coordinate + cell)."""

    def __init__(self, scale: float = 2, n_resblocks: int = 16, n_feats: int = 64,
                 hidden: tuple[int, ...] = (256, 256, 256, 256), residual: str = "none",
                 trained_scales: tuple[float, float] = (1.0, 4.0)) -> None:
        self._hidden = tuple(int(h) for h in hidden)
        super().__init__(scale, n_resblocks, n_feats, residual, trained_scales)

    def build_head(self, n_feats: int) -> nn.Module:
        return LIIF(n_feats, float(self.scale), 3, hidden=self._hidden)

    def query(self, x: Tensor, coord: Tensor, cell: Tensor) -> Tensor:
        """Training form: RGB at ``coord`` (B, Q, 2) in [-1, 1] (LIIF samples 2304 HR pixels per patch)."""
        out = self.upsampler.query(self.features(x), coord, cell)  # B, Q, 3
        if self.residual == "bicubic":
            return out + bicubic_at(x, coord)
        return out + self.add_mean.bias.view(1, 1, 3)


register_variant("metasr_edsr_baseline", "metasr", {"n_resblocks": 16, "n_feats": 64},
                 description="Meta-SR head on EDSR-baseline (16 blocks, 64 channels); any factor")
# litesr's own training (litesr/configs/metasr_edsr_baseline_cpu.yml, 3,600 iterations on T91 + BSD200; record in
# litesr/weights/shipped.json): one file serves every factor, so it is listed at each integer scale.
register_variant("metasr_litesr", "metasr", {"n_resblocks": 16, "n_feats": 64, "residual": "bicubic"},
                 description="Meta-SR on EDSR-baseline, bicubic residual, trained by litesr; any factor in [1, 4]",
                 pretrained={s: "metasr_litesr.safetensors" for s in (2, 3, 4)})
register_variant("liif_edsr_baseline", "liif", {"n_resblocks": 16, "n_feats": 64},
                 description="LIIF head (MLP 256 x 4) on EDSR-baseline (16 blocks, 64 channels); any factor")
