"""ARM: Any-Time Super-Resolution Method (Chen et al., ECCV 2022). Official code: github.com/chenbong/ARM-Net
(commit d663b4b; ``models/archs/{FSRCNN,CARN,SRResNet}_arch.py``, ``arch_util.py``, ``models/USSR_model.py``).

One supernet whose subnets are its first channels: every sliceable conv runs on ``weight[:C_out, :C_in]`` with
``C_out = int(out_channels * width / widths[-1])`` (``width_list`` of the official options: ``(0, 16, 36, 56)`` for
ARM-FSRCNN, ``(0, 36, 52, 64)`` for ARM-CARN and ARM-SRResNet; width 0 is bicubic). The any-time inference follows
the official ``test_image``: the LR image is cut into 32x32 patches with step 28 (overlaps averaged; litesr adds a
last patch flush with each edge, which the official code drops by cropping the image); each patch gets the official
edge score (mean |Laplacian| of its 8-bit gray, :func:`litesr.archs._arm_ops.edge_scores`), the edge-to-PSNR lookup
table gives the PSNR each subnet is expected to reach on it, and the patch goes to the subnet maximising
``k * psnr - cost / cost_full`` (the official ``eta * psnr - cost_list``). ``set_budget`` picks the largest ``k``
whose MACs stay within a budget (a fraction of the full-width cost of the same patches, or a MAC count), so the MACs
spent follow the budget; ``set_eta`` is the official knob itself. Costs are litesr's MAC counts of each subnet on a
patch (:class:`litesr.profile.OpCounter`); bicubic counts 0, as the official ``cost_list``. ``set_eta`` uses the
official ``cost_list`` of the table file instead, so its choices are the official ones: that list counts the x4
transposed conv per output pixel (16x litesr's rule), so its width ratios differ (ARM-FSRCNN 0.30/0.65/1 against
litesr's 0.44/0.72/1 MACs).

Lookup table: the official ``.pth`` holds only the supernet; the table is in the training-state file beside it
(``ckpt/arm-fsrcnn.state``, key ``hmap``). :meth:`ARMBase.load_lookup_table` reads it (``weights_only=True``);
``litesr upscale --budget`` and ``litesr profile --budget`` look for ``<weights stem>.state`` next to the weights.
Without a budget or ``eta`` the model is a plain network at one width (``set_width``; default the full width).

Detection. The official files are plain ``OrderedDict`` state dicts with no extra tensors or wrapper keys, and the
supernet at full width is exactly the plain network, so the only features are names and shapes:

- ARM-FSRCNN (``head_conv.0``, ``body_conv.{0..6}``, ``tail_conv``, single-parameter PReLUs) is the FSRCNN layout
  of the ClassSR/ARM/PCSR code base, not litesr's ``fsrcnn`` (``first_part``/``mid_part``/``last_part``); no other
  litesr architecture claims these names at the top level (PCSR's encoder has them under ``encoder.``), so
  ``arm_fsrcnn`` detects them. A plain FSRCNN saved by that code base at one width would be taken for an ARM
  supernet: it computes the same output at full width, and routing refuses to run without the ARM lookup table.
- ARM-CARN differs from litesr's ``carn`` (CARN-M) by real key names: ``sub_mean.weight`` (the mean shift is the
  conv itself, not ``sub_mean.shifter``), 1x1 fusions ``c1.0`` (not ``c1.body.0``) and one upsampler ``upsample.up``.
- ARM-SRResNet (``conv_first``, ``recon_trunk.N.conv1``, ``upconv1/2``, ``HRconv``, ``conv_last``) is exactly the
  old BasicSR/MMSR MSRResNet layout (litesr's ``msrresnet`` reads the newer ``body``/``conv_hr`` names, so there is
  no clash). Such an old MSRResNet file is therefore read as ``arm_srresnet``: at full width it is the same network
  with the same output, and routing refuses to run without the ARM lookup table. (The official ARM-SRResNet weights
  are not in the mirrored repository: their git objects are missing, so this detection is untested on them.)

Parameters (x4, equal to the official code's and to the official checkpoints' tensors): ARM-FSRCNN 24,515 (paper
25K), ARM-CARN 294,171 with the 24 of the frozen mean shifts (paper 295K), ARM-SRResNet 1,517,571 (paper 1.5M).
The paper reports F2K/Test2K/4K/8K only (README Tables 1 and 2), no Set5/Set14/B100/Urban100/Manga109, so no
published PSNR is registered.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.texture_sampling import level_edges, patch_gradient_scores
from ..errors import ConfigError
from ..registry import StateDict, register_arch, register_variant
from . import _arm_ops as ops
from .base import SRModel
from .blocks import MeanShift, count_indexed
from .carn import CARN_MEAN, EResidualBlock, _ScaleUpsampler, cascade
from .pcsr import FSRCNNEncoder
from .srresnet import ResidualBlockNoBN


class ARMBase(SRModel):
    """The any-time mechanism shared by the three supernets; subclasses define ``forward_net`` (one width)."""

    patch_size = 32
    patch_step = 28
    patch_batch = 64

    def _init_arm(self, widths: tuple[int, ...]) -> None:
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or widths[0] != 0 or list(widths) != sorted(set(widths)):
            raise ConfigError(f"ARM widths must start with 0 (bicubic) and increase, not {widths}")
        self.widths = widths
        self.width = widths[-1]
        self.table: ops.LookupTable | None = None
        self.budget: tuple[str, float] | None = None
        self.eta: float | int | str | None = None
        self.projection: np.ndarray | None = None  # WBSR-style gradient edges (set_gradient_projection)
        self._all_full = False
        self._costs: dict[tuple[int, int], np.ndarray] = {}
        self.last_routing: dict[str, int] = {}

    # -- configuration ----------------------------------------------------------------------------------------------
    def set_width(self, width: int) -> None:
        """Run the plain forward at one of ``widths`` (channels of the official ``width_list``)."""
        if width not in self.widths[1:]:
            raise ConfigError(f"ARM width must be one of {self.widths[1:]}, not {width}")
        self.width = width

    def set_budget(self, budget: str | float | None) -> None:
        """Route patches within a budget: a fraction of the full-width cost ([0, 1], ``"50%"``) or MACs (``"1.5G"``);
        None: the plain forward."""
        self.budget = None if budget is None else ops.parse_budget(budget)
        if budget is not None:
            self.eta = self.projection = None

    def set_eta(self, eta: float | int | str | None) -> None:
        """The official choice: ``"best"``, a subnet index (int), or ``k`` of ``k * psnr - cost / cost_full``."""
        self.eta, self.budget, self.projection = eta, None, None

    def set_gradient_projection(self, edges: Sequence[float] | None) -> None:
        """Route each patch by its texture instead of the lookup table (WBSR's "gradient projection dynamic
        inference", litesr's reading; no table needed): a patch's score is the mean Sobel gradient magnitude of its
        8-bit luma (:func:`litesr.data.texture_sampling.patch_gradient_scores`, the score HES samples by), the
        ascending ``edges`` cut the scores into ``len(edges) + 1`` levels, the most textured level runs at full
        width and each smoother level one subnet narrower (with ``len(widths) - 1`` edges the smoothest is bicubic).
        :func:`gradient_projection_edges` gives edges from training images. None: the plain forward."""
        if edges is None:
            self.projection = None
            return
        values = np.asarray([float(e) for e in edges], np.float64)
        if not 1 <= len(values) <= len(self.widths) - 1 or np.any(np.diff(values) < 0):
            raise ConfigError(f"gradient projection needs 1..{len(self.widths) - 1} ascending edges, not {list(edges)}")
        self.projection, self.budget, self.eta = values, None, None

    def load_lookup_table(self, path: str | os.PathLike) -> None:
        """Read the edge-to-PSNR table of the official training-state file (``arm-*.state``)."""
        table = ops.load_lookup_table(path)
        if table.psnr.shape[0] != len(self.widths):
            raise ConfigError(f"{path}: lookup table has {table.psnr.shape[0]} subnets, the model {len(self.widths)}")
        self.table = table

    @contextlib.contextmanager
    def full_cost(self) -> Iterator[None]:
        """Every patch at full width (the MACs without routing, for :func:`litesr.dynamic.mac_report`)."""
        saved = self._all_full
        self._all_full = True
        try:
            yield
        finally:
            self._all_full = saved

    @property
    def routing(self) -> bool:
        return self.budget is not None or self.eta is not None or self.projection is not None

    # -- costs ------------------------------------------------------------------------------------------------------
    def subnet_macs(self, h: int, w: int) -> np.ndarray:
        """litesr's MAC count of each subnet on one (h, w) patch (bicubic: 0), cached."""
        if (h, w) not in self._costs:
            from ..profile import OpCounter

            p = next(self.parameters())
            costs = [0.0]
            for width in self.widths[1:]:
                counter = OpCounter()
                # Not in inference mode: its tensors skip the counter's dispatch hook (the counts would be 0).
                with torch.inference_mode(False), torch.no_grad(), counter:
                    self._run_width(torch.zeros(1, 3, h, w, device=p.device, dtype=p.dtype), width)
                costs.append(float(sum(counter.macs.values())))
            self._costs[(h, w)] = np.asarray(costs)
        return self._costs[(h, w)]

    def prepare_routing(self, x: Tensor) -> None:
        """Count the subnet costs for ``x``'s patch size now, outside any MAC counter of the caller."""
        self.subnet_macs(min(self.patch_size, x.shape[-2]), min(self.patch_size, x.shape[-1]))

    # -- forward ----------------------------------------------------------------------------------------------------
    def forward_net(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def _run_width(self, x: Tensor, width: int) -> Tensor:
        if width == 0:  # the official cheapest exit
            return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        ops.set_width_mult(self, width / self.widths[-1])
        try:
            return self.forward_net(x)
        finally:
            ops.set_width_mult(self, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        if not self.routing:  # a plain network at one width (full_cost changes nothing then)
            return self._run_width(x, self.width)
        return torch.cat([self._forward_patches(x[i:i + 1]) for i in range(x.shape[0])])

    def _choose(self, patches: Tensor, costs: np.ndarray) -> np.ndarray:
        if self._all_full:
            return np.full(len(patches), len(self.widths) - 1)
        if isinstance(self.eta, int) and not isinstance(self.eta, bool):
            if not 0 <= self.eta < len(self.widths):
                raise ConfigError(f"ARM subnet index must be in 0..{len(self.widths) - 1}, not {self.eta}")
            return np.full(len(patches), self.eta)
        if self.projection is not None:
            pixels = (patches.detach().float().clamp(0, 1) * 255).round().permute(0, 2, 3, 1).cpu().numpy()
            scores = np.array([patch_gradient_scores(p, min(p.shape[:2]), 1)[2].mean() for p in pixels])
            return np.digitize(scores, self.projection) + (len(self.widths) - 1 - len(self.projection))
        if self.table is None:
            raise ConfigError("ARM routing needs the edge-to-PSNR lookup table: put the official arm-*.state next "
                              "to the weights, or call model.load_lookup_table(path)")
        pred = self.table.predict(ops.edge_scores(patches))
        if self.budget is None:  # the official knob: with the official cost_list when the table has it
            official = self.table.official_costs
            eta_costs = official if official is not None and len(official) == len(costs) else costs
            return ops.choose_official(pred, eta_costs, self.eta)  # type: ignore[arg-type]
        kind, value = self.budget
        target = value * costs[-1] * len(patches) if kind == "fraction" else value
        return ops.choose_for_budget(pred, costs, target)[0]

    def _forward_patches(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        p, s = self.patch_size, self.scale
        ph, pw = min(p, h), min(p, w)
        rows, cols = ops.patch_starts(h, p, self.patch_step), ops.patch_starts(w, p, self.patch_step)
        boxes = [(i, j) for i in rows for j in cols]
        patches = torch.cat([x[..., i:i + ph, j:j + pw] for i, j in boxes])
        costs = self.subnet_macs(ph, pw)
        choice = self._choose(patches, costs)
        out = x.new_zeros(1, 3, h * s, w * s)
        count = x.new_zeros(1, 1, h * s, w * s)
        for k in np.unique(choice):
            idx = np.flatnonzero(choice == k)
            for start in range(0, len(idx), self.patch_batch):
                part = idx[start:start + self.patch_batch]
                result = self._run_width(patches[torch.as_tensor(part, device=x.device)], self.widths[k])
                for n, r in zip(part, result):
                    i, j = boxes[n]
                    out[0, :, i * s:(i + ph) * s, j * s:(j + pw) * s] += r
                    count[0, :, i * s:(i + ph) * s, j * s:(j + pw) * s] += 1
        self.last_routing = {"patches": len(boxes), **{f"width_{self.widths[k]}": int((choice == k).sum())
                                                       for k in range(len(self.widths))},
                             "budget_macs": int(round(float(costs[choice].sum())))}
        return out / count


def gradient_projection_edges(model: ARMBase, images: Sequence[np.ndarray], levels: int | None = None) -> np.ndarray:
    """Edges for :meth:`ARMBase.set_gradient_projection` from LR training images ((H, W, 3) uint8): the HES level
    edges (equally spaced between the 1st and 99th percentile) of their ``model.patch_size`` patch scores, at
    ``levels`` levels (default: one per subnet, bicubic included)."""
    levels = len(model.widths) if levels is None else int(levels)
    p, step = model.patch_size, model.patch_step
    scores = np.concatenate([patch_gradient_scores(im, min(p, *im.shape[:2]), step)[2] for im in images])
    return level_edges(scores, levels)


# ---------------------------------------------------------------------------------------------------------------------
# ARM-FSRCNN


def _detect_fsrcnn(sd: StateDict) -> dict | None:
    if "head_conv.0.weight" not in sd or "body_conv.0.0.weight" not in sd or "tail_conv.weight" not in sd:
        return None
    nf, in_channels = sd["head_conv.0.weight"].shape[:2]
    if in_channels != 3:
        return None
    m = count_indexed(sd, r"body_conv\.(\d+)\.bias$")
    return {"nf": int(nf), "s": int(sd["body_conv.0.0.weight"].shape[0]), "m": m}


@register_arch("arm_fsrcnn", scales=(4,), detect=_detect_fsrcnn, paper="Chen et al., ECCV 2022",
               tiny={"nf": 8, "s": 4, "m": 1})
class ARMFSRCNN(ARMBase):
    """ARM-FSRCNN: the official ``US_FSRCNN_net`` (FSRCNN supernet; x4 transposed conv, padding 3)."""

    def __init__(self, scale: int = 4, nf: int = 56, s: int = 12, m: int = 4,
                 widths: tuple[int, ...] = (0, 16, 36, 56)) -> None:
        super().__init__()
        if scale != 4:
            raise ConfigError(f"ARM-FSRCNN is x4 (the official transposed conv), not x{scale}")
        self.scale = scale
        body = FSRCNNEncoder(3, nf, s, m)  # the same layers and names as the official FSRCNN_net
        body.head_conv[0] = ops.slim(body.head_conv[0], slim_in=False, slim_out=True)
        body.body_conv[0][0] = ops.slim(body.body_conv[0][0], slim_in=True, slim_out=False)
        body.body_conv[m + 2][0] = ops.slim(body.body_conv[m + 2][0], slim_in=False, slim_out=True)
        self.head_conv, self.body_conv = body.head_conv, body.body_conv
        self.tail_conv = ops.SlimConvTranspose2d(nf, 3, 9, stride=4, padding=3, output_padding=1)
        self._init_arm(widths)

    def forward_net(self, x: Tensor) -> Tensor:
        return self.tail_conv(self.body_conv(self.head_conv(x)))


# ---------------------------------------------------------------------------------------------------------------------
# ARM-CARN (CARN-M supernet)


class _Fusion(nn.Sequential):
    """The official ``BasicBlock`` (an ``nn.Sequential``: keys ``c1.0.weight``): sliced 1x1 conv + ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(ops.SlimConv2d(in_channels, out_channels, 1, slim_in=True, slim_out=True),
                         nn.ReLU(inplace=True))


class _CascadingBlock(nn.Module):
    """CARN-M's block: one shared efficient residual block ``b1`` applied three times, fusions ``c1..c3``."""

    def __init__(self, nf: int, group: int) -> None:
        super().__init__()
        self.b1 = ops.slim_all(EResidualBlock(nf, group))
        self.c1, self.c2, self.c3 = _Fusion(2 * nf, nf), _Fusion(3 * nf, nf), _Fusion(4 * nf, nf)

    def forward(self, x: Tensor) -> Tensor:
        return cascade(x, [self.b1] * 3, [self.c1, self.c2, self.c3])


class _Upsample(nn.Module):
    def __init__(self, nf: int, scale: int, group: int) -> None:
        super().__init__()
        self.up = ops.slim_all(_ScaleUpsampler(nf, scale, group))

    def forward(self, x: Tensor) -> Tensor:
        return self.up(x)


def _detect_carn(sd: StateDict) -> dict | None:
    needed = ("sub_mean.weight", "entry.weight", "b1.b1.body.4.weight", "b1.c1.0.weight", "upsample.up.body.0.weight")
    if any(k not in sd for k in needed):
        return None
    nf = int(sd["entry.weight"].shape[0])
    up = count_indexed(sd, r"upsample\.up\.body\.(\d+)\.weight$")
    first = int(sd["upsample.up.body.0.weight"].shape[0])
    scale = 3 if first == 9 * nf else 2**up
    return {"scale": scale, "nf": nf, "group": nf // int(sd["b1.b1.body.0.weight"].shape[1])}


@register_arch("arm_carn", scales=(4, 2, 3), detect=_detect_carn, paper="Chen et al., ECCV 2022",
               tiny={"nf": 16, "group": 1})
class ARMCARN(ARMBase):
    """ARM-CARN: the official ``US_CARN_M`` (CARN-M supernet, group 4, single-scale upsampler)."""

    def __init__(self, scale: int = 4, nf: int = 64, group: int = 4, widths: tuple[int, ...] = (0, 36, 52, 64)) -> None:
        super().__init__()
        self.scale = scale
        self.sub_mean = MeanShift(1.0, CARN_MEAN, sign=-1)
        self.add_mean = MeanShift(1.0, CARN_MEAN, sign=1)
        self.entry = ops.SlimConv2d(3, nf, 3, padding=1, slim_out=True)
        self.b1, self.b2, self.b3 = (_CascadingBlock(nf, group) for _ in range(3))
        self.c1, self.c2, self.c3 = _Fusion(2 * nf, nf), _Fusion(3 * nf, nf), _Fusion(4 * nf, nf)
        self.upsample = _Upsample(nf, scale, group)
        self.exit = ops.SlimConv2d(nf, 3, 3, padding=1, slim_in=True)
        self._init_arm(widths)

    def forward_net(self, x: Tensor) -> Tensor:
        out = cascade(self.entry(self.sub_mean(x)), [self.b1, self.b2, self.b3], [self.c1, self.c2, self.c3])
        return self.add_mean(self.exit(self.upsample(out)))


# ---------------------------------------------------------------------------------------------------------------------
# ARM-SRResNet (MSRResNet supernet)


def _detect_srresnet(sd: StateDict) -> dict | None:
    needed = ("conv_first.weight", "recon_trunk.0.conv1.weight", "upconv1.weight", "HRconv.weight", "conv_last.weight")
    if any(k not in sd for k in needed) or sd["conv_first.weight"].shape[1] != 3:
        return None
    nf = int(sd["conv_first.weight"].shape[0])
    scale = 4 if "upconv2.weight" in sd else 3 if sd["upconv1.weight"].shape[0] == 9 * nf else 2
    return {"scale": scale, "nf": nf, "nb": count_indexed(sd, r"recon_trunk\.(\d+)\.conv1\.weight$")}


@register_arch("arm_srresnet", scales=(4, 2, 3), detect=_detect_srresnet, paper="Chen et al., ECCV 2022",
               tiny={"nf": 8, "nb": 1})
class ARMSRResNet(ARMBase):
    """ARM-SRResNet: the official ``US_MSRResNet`` (BN-free SRResNet supernet plus a bilinear skip)."""

    def __init__(self, scale: int = 4, nf: int = 64, nb: int = 16, widths: tuple[int, ...] = (0, 36, 52, 64)) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ConfigError(f"ARM-SRResNet supports x2, x3 and x4, not x{scale}")
        self.scale = scale

        def sliced(cin: int, cout: int, slim_in: bool = True, slim_out: bool = True) -> ops.SlimConv2d:
            return ops.SlimConv2d(cin, cout, 3, padding=1, slim_in=slim_in, slim_out=slim_out)

        self.conv_first = sliced(3, nf, slim_in=False)
        self.recon_trunk = nn.Sequential(*(ops.slim_all(ResidualBlockNoBN(nf)) for _ in range(nb)))
        self.upconv1 = sliced(nf, nf * (9 if scale == 3 else 4))
        if scale == 4:
            self.upconv2 = sliced(nf, nf * 4)
        self.pixel_shuffle = nn.PixelShuffle(3 if scale == 3 else 2)
        self.HRconv = sliced(nf, nf)  # the official name
        self.conv_last = sliced(nf, 3, slim_out=False)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)
        self._init_arm(widths)

    def forward_net(self, x: Tensor) -> Tensor:
        out = self.recon_trunk(self.lrelu(self.conv_first(x)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.scale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.conv_last(self.lrelu(self.HRconv(out)))
        return out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)


_TABLES = "README Table 1 (F2K, Test2K) and Table 2 (Test4K, Test8K), x4 only"
register_variant("arm_fsrcnn", "arm_fsrcnn", {}, description=f"ARM-FSRCNN supernet (56, 12, 4; widths 16/36/56) "
                 f"[params: {_TABLES}]", paper_params={4: 25_000})
register_variant("arm_carn", "arm_carn", {}, description=f"ARM-CARN supernet (CARN-M, 64, group 4; widths 36/52/64) "
                 f"[params: {_TABLES}]", paper_params={4: 295_000})
register_variant("arm_srresnet", "arm_srresnet", {}, description=f"ARM-SRResNet supernet (MSRResNet 64x16; widths "
                 f"36/52/64) [params: {_TABLES}]", paper_params={4: 1_500_000})
