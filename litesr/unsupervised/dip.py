"""Deep Image Prior for super-resolution (Ulyanov, Vedaldi and Lempitsky, CVPR 2018).

An untrained encoder-decoder maps fixed noise to an HR image; it is optimised so that the HR image, downscaled, matches
the LR input. The structure of the network is the prior: stopping early keeps the result from fitting noise.

Facts from the official code (DmitryUlyanov/deep-image-prior ``super-resolution.ipynb``, ``models/skip.py``,
``models/downsampler.py``), kept here:

- the "skip" network: 5 scales, 128 channels down and up, 4-channel 1x1 skip branches, stride-2 downsampling, bilinear
  upsampling, reflection padding, BatchNorm, LeakyReLU(0.2), sigmoid output; the module layout (and so the
  state-dict names) follows ``models/skip.py``;
- input: 32 channels of uniform noise times 0.1, of the HR size; each iteration it is perturbed by Gaussian noise of
  std 0.03 (x4) or 0.05 (x8) ("noise regularisation");
- loss: MSE between the LR image and the output downscaled by a Lanczos-2 kernel (phase 1/2, replicate padding);
- Adam, lr 0.01, 2000 iterations for x4 (4000 for x8).

Differences: the HR size need not be a multiple of 32: the LR image is padded (replicated) to a size the network
takes, and only the original region enters the loss and the result. The optional early stop halts when the LR
loss has not improved by ``early_stop_delta`` for ``early_stop_patience`` iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ConfigError, LitesrError
from .common import Deadline, TextProgress, to_array, to_tensor


class Concat(nn.Module):
    """Runs each branch on the input and concatenates along channels, centre-cropping to the smallest size."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module(str(i), branch)

    def forward(self, x: Tensor) -> Tensor:
        outs = [m(x) for m in self.children()]
        h, w = min(o.shape[2] for o in outs), min(o.shape[3] for o in outs)
        tops = [((o.shape[2] - h) // 2, (o.shape[3] - w) // 2) for o in outs]
        outs = [o[:, :, t:t + h, s:s + w] for o, (t, s) in zip(outs, tops)]
        return torch.cat(outs, 1)


def _seq(*modules: nn.Module) -> nn.Sequential:
    """A Sequential named "1", "2", ... as the official code's ``add`` names its modules."""
    seq = nn.Sequential()
    for m in modules:
        _add(seq, m)
    return seq


def _add(seq: nn.Sequential, module: nn.Module) -> None:
    seq.add_module(str(len(seq) + 1), module)


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
    # The official conv(): plain nn.Sequential (names "0", "1"), the reflection pad present even when it is 0.
    return nn.Sequential(nn.ReflectionPad2d((k - 1) // 2), nn.Conv2d(cin, cout, k, stride))


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


def skip_network(in_channels: int = 32, out_channels: int = 3, down: int = 128, up: int = 128, skip: int = 4,
                 scales: int = 5) -> nn.Sequential:
    """The DIP "skip" encoder-decoder (``get_net(..., 'skip', skip_n33d=128, skip_n33u=128, skip_n11=4, num_scales=5,
    upsample_mode='bilinear')``); its input's sides must be multiples of ``2**scales``."""
    model = nn.Sequential()
    current = model
    depth = in_channels
    for i in range(scales):
        deeper, skip_branch = nn.Sequential(), nn.Sequential()
        _add(current, Concat(skip_branch, deeper))
        _add(current, nn.BatchNorm2d(skip + (up if i < scales - 1 else down)))
        for m in (_conv(depth, skip, 1), nn.BatchNorm2d(skip), _act()):
            _add(skip_branch, m)
        for m in (_conv(depth, down, 3, 2), nn.BatchNorm2d(down), _act(), _conv(down, down, 3), nn.BatchNorm2d(down),
                  _act()):
            _add(deeper, m)
        deeper_main = nn.Sequential()
        if i < scales - 1:
            _add(deeper, deeper_main)
        _add(deeper, nn.Upsample(scale_factor=2, mode="bilinear"))
        k = up if i < scales - 1 else down
        for m in (_conv(skip + k, up, 3), nn.BatchNorm2d(up), _act(), _conv(up, up, 1), nn.BatchNorm2d(up), _act()):
            _add(current, m)
        depth = down
        current = deeper_main
    _add(model, _conv(up, out_channels, 1))
    _add(model, nn.Sigmoid())
    return model


def lanczos2_kernel(factor: int) -> np.ndarray:
    """The official Downsampler's kernel: Lanczos-2, phase 1/2, ``4 * factor`` taps per side, normalised."""
    width = 4 * factor + 1
    centre = (width + 1) / 2.0
    d = np.abs(np.arange(1, width) + 0.5 - centre) / factor
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.where(d == 0, 1.0, 2 * np.sin(np.pi * d) * np.sin(np.pi * d / 2) / (np.pi**2 * d * d))
    kernel = np.outer(v, v)
    return kernel / kernel.sum()


class LanczosDownsampler(nn.Module):
    """Replicate padding, then the Lanczos-2 kernel applied per channel with stride ``factor`` (size / factor out)."""

    def __init__(self, factor: int, channels: int = 3) -> None:
        super().__init__()
        kernel = torch.from_numpy(lanczos2_kernel(factor)).float()
        self.factor, self.channels = factor, channels
        self.pad = (kernel.shape[0] - factor) // 2
        self.register_buffer("kernel", kernel.expand(channels, 1, *kernel.shape).contiguous())

    def forward(self, x: Tensor) -> Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="replicate")
        return F.conv2d(x, self.kernel, stride=self.factor, groups=self.channels)


@dataclass
class DIPConfig:
    """The official notebook's settings for x4 (``num_iter``/``reg_noise_std`` for x8: 4000 / 0.05)."""

    input_depth: int = 32
    input_scale: float = 0.1
    learning_rate: float = 0.01
    num_iter: int = 2000
    reg_noise_std: float | None = None  # None: 0.03 for x4 and below, 0.05 above
    channels: int = 128
    skip_channels: int = 4
    scales: int = 5
    early_stop_patience: int = 0  # 0: no early stop
    early_stop_delta: float = 1e-5


@dataclass
class DIPResult:
    image: np.ndarray
    iterations: int
    seconds: float
    lr_loss: float
    stopped: str  # "iterations", "early_stop" or "time_budget"


# Any size is padded to one the network takes; a 1-pixel side leaves nothing to prior over.
MIN_LR_SIDE = 2


def deep_image_prior(image: np.ndarray, scale: int, *, config: DIPConfig | None = None,
                     time_budget: float | None = None, seed: int = 0, device: str | torch.device = "cpu",
                     progress: bool = False, every: int = 0,
                     on_intermediate: Callable[[int, np.ndarray], None] | None = None,
                     label: str = "dip") -> DIPResult:
    """Super-resolve ``image`` ((H, W, C) float in [0, 1]) by the integer ``scale`` with a Deep Image Prior.

    ``every``/``on_intermediate``: every ``every`` iterations the current HR estimate is handed to the callback.
    """
    cfg = config or DIPConfig()
    if int(scale) != scale or scale < 2:
        raise ConfigError(f"Deep Image Prior needs an integer scale >= 2, not {scale}")
    if cfg.num_iter < 1:
        raise ConfigError(f"Deep Image Prior iterations must be >= 1, not {cfg.num_iter}")
    h, w, c = image.shape
    if min(h, w) < MIN_LR_SIDE:
        raise LitesrError(f"image {w}x{h} is too small for Deep Image Prior: at least 2x2 pixels")
    noise_std = cfg.reg_noise_std if cfg.reg_noise_std is not None else (0.03 if scale <= 4 else 0.05)
    device = torch.device(device)
    torch.manual_seed(seed)
    # The HR side must be a multiple of 2**scales and of the scale: pad the LR image to a size that gives one.
    multiple = math.lcm(2 ** cfg.scales, scale) // scale
    ph, pw = math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple
    # The deepest level (2**scales smaller) must be at least 2 pixels a side for its reflection padding.
    while ph * scale < 2 ** (cfg.scales + 1):
        ph += multiple
    while pw * scale < 2 ** (cfg.scales + 1):
        pw += multiple
    lr = to_tensor(image, device)
    net = skip_network(cfg.input_depth, c, cfg.channels, cfg.channels, cfg.skip_channels, cfg.scales).to(device)
    down = LanczosDownsampler(scale, c).to(device)
    base = torch.rand(1, cfg.input_depth, ph * scale, pw * scale, device=device) * cfg.input_scale
    opt = torch.optim.Adam(net.parameters(), lr=cfg.learning_rate)
    deadline = Deadline(time_budget)
    bar = TextProgress(label, cfg.num_iter, enabled=progress)
    best, since_best, stopped, loss_value = math.inf, 0, "iterations", math.nan
    iteration = 0
    for iteration in range(1, cfg.num_iter + 1):
        net_input = base + torch.randn_like(base) * noise_std if noise_std > 0 else base
        out = net(net_input)
        loss = F.mse_loss(down(out)[..., :h, :w], lr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_value = float(loss.detach())
        bar.update(iteration, f"lr-mse {loss_value:.2e}")
        if every and on_intermediate is not None and iteration % every == 0 and iteration < cfg.num_iter:
            on_intermediate(iteration, _estimate(net, base, h * scale, w * scale))
        if loss_value < best - cfg.early_stop_delta:
            best, since_best = loss_value, 0
        else:
            since_best += 1
        if cfg.early_stop_patience and since_best >= cfg.early_stop_patience:
            stopped = "early_stop"
            break
        if deadline.passed():
            stopped = "time_budget"
            break
    bar.update(iteration, f"lr-mse {loss_value:.2e}", force=True)
    bar.close()
    return DIPResult(image=_estimate(net, base, h * scale, w * scale), iterations=iteration,
                     seconds=deadline.elapsed, lr_loss=loss_value, stopped=stopped)


@torch.no_grad()
def _estimate(net: nn.Module, base: Tensor, height: int, width: int) -> np.ndarray:
    """The output for the noise-free input (as the official notebook's final ``net(net_input)``), cropped."""
    return to_array(net(base)[..., :height, :width])
