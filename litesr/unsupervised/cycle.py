"""Weakly supervised SR from unpaired LR and HR folders: ``train.type: cycle`` (CycleGAN/CinCGAN-style).

Networks (all checkpointed by name): ``net``, the LR->HR generator (any zoo model, ``model.name``); ``down``, an
HR->LR generator (:class:`DownGenerator`); ``disc_hr`` and ``disc_lr``, PatchGAN discriminators on HR and LR patches.
Each iteration, on an LR patch ``x`` (from ``datasets.train.lr_dir``) and an unrelated HR patch ``y`` (``hr_dir``):

- generators: ``adversarial.weight * [(D_hr(G(x)) - 1)^2 + (D_lr(F(y)) - 1)^2]`` (least squares, as CycleGAN)
  ``+ cycle.weight * [|F(G(x)) - x| + |G(F(y)) - y|]``
  ``+ identity.weight * [|bicubic_down(G(x)) - x| + |F(y) - bicubic_down(y)|]``: CycleGAN's identity term
  (keep colours and content) adapted to domains of different sizes, as CinCGAN keeps its LR->LR net near the input;
- discriminators: ``0.5 * [(D(real) - 1)^2 + D(fake)^2]`` each, on detached fakes.

CycleGAN's defaults: Adam lr 2e-4, betas (0.5, 0.999), cycle weight 10, identity weight 5 (half the cycle weight),
adversarial weight 1. CinCGAN (Yuan et al. 2018) nests two such cycles (LR denoising, then SR); this trainer is the
single SR cycle. Validation (paired sets, if configured) runs on ``net`` as for ``sr``.

    train:
      type: cycle
      cycle: {weight: 10.0}
      identity: {weight: 5.0}
      adversarial: {weight: 1.0}
      down_generator: {num_feat: 64, num_blocks: 4}
      discriminator: {num_feat: 64}
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..descriptor import describe
from ..errors import ConfigError, DatasetError
from ..imresize import imresize
from ..train.config import DEFAULTS
from ..train.trainer import Trainer, make_optimizer, register_trainer


class DownGenerator(nn.Module):
    """HR -> LR: residual blocks at HR resolution folded into a strided convolution, plus the area-average of the input
    (so the network starts near a plain downscale and learns the degradation on top)."""

    def __init__(self, scale: int, channels: int = 3, num_feat: int = 64, num_blocks: int = 4) -> None:
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(channels, num_feat, 3, padding=1)
        self.body = nn.Sequential(*[nn.Sequential(nn.Conv2d(num_feat, num_feat, 3, padding=1), nn.LeakyReLU(0.2, True),
                                                  nn.Conv2d(num_feat, num_feat, 3, padding=1))
                                    for _ in range(num_blocks)])
        self.down = nn.Conv2d(num_feat, num_feat, scale, stride=scale)
        self.tail = nn.Conv2d(num_feat, channels, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        for block in self.body:
            h = h + block(h)
        return F.avg_pool2d(x, self.scale) + self.tail(F.leaky_relu(self.down(h), 0.2))


class PatchDiscriminator(nn.Module):
    """CycleGAN's PatchGAN: 4x4 convolutions, ``layers`` of them with stride 2, InstanceNorm, LeakyReLU(0.2)."""

    def __init__(self, channels: int = 3, num_feat: int = 64, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(channels, num_feat, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        ch = num_feat
        for i in range(1, layers + 1):
            out = num_feat * min(2 ** i, 8)
            mods += [nn.Conv2d(ch, out, 4, 2 if i < layers else 1, 1), nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
            ch = out
        mods.append(nn.Conv2d(ch, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class UnpairedPatches(Dataset):
    """An LR patch from one folder and an unrelated HR patch (``scale`` times larger) from another, both flipped and
    rotated at random; indexed like :class:`litesr.data.train.TrainPatches` (plain index or ``(index, key)``)."""

    def __init__(self, lr_dir: str, hr_dir: str, scale: int, patch_size: int, data_repeat: int = 1) -> None:
        from ..data.train import find_images, read_rgb_uint8

        self.scale, self.patch_size, self.data_repeat = scale, patch_size, data_repeat
        lp = patch_size // scale
        self.lr = [im for im in (read_rgb_uint8(p) for p in find_images(lr_dir)) if min(im.shape[:2]) >= lp]
        self.hr = [im for im in (read_rgb_uint8(p) for p in find_images(hr_dir)) if min(im.shape[:2]) >= patch_size]
        for name, images, side, folder in (("LR", self.lr, lp, lr_dir), ("HR", self.hr, patch_size, hr_dir)):
            if not images:
                raise DatasetError(f"{folder}: no {name} image of at least {side}x{side} pixels")

    def __len__(self) -> int:
        return max(len(self.lr), len(self.hr)) * self.data_repeat

    @staticmethod
    def _crop(images: list[np.ndarray], index: int, side: int, rng: np.random.Generator) -> Tensor:
        from ..data.train import to_tensor

        im = images[index]
        top, left = int(rng.integers(0, im.shape[0] - side + 1)), int(rng.integers(0, im.shape[1] - side + 1))
        patch = im[top:top + side, left:left + side]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        if rng.random() < 0.5:
            patch = patch[::-1]
        if rng.random() < 0.5:
            patch = patch.transpose(1, 0, 2)
        return to_tensor(patch)

    def sample(self, index: int, rng: np.random.Generator) -> dict[str, Tensor]:
        lr = self._crop(self.lr, index % len(self.lr), self.patch_size // self.scale, rng)
        hr = self._crop(self.hr, int(rng.integers(len(self.hr))), self.patch_size, rng)  # unpaired on purpose
        return {"lr": lr, "hr": hr, "index": torch.tensor(index % len(self.lr))}

    def __getitem__(self, item: Any) -> dict[str, Tensor]:
        if isinstance(item, tuple):
            index, key = item
            return self.sample(int(index), np.random.default_rng(list(key)))
        return self.sample(int(item), np.random.default_rng(int(item)))


def _adam(lr: float) -> dict[str, Any]:
    return {**copy.deepcopy(DEFAULTS["train"]["optimizer"]), "type": "adam", "lr": lr, "betas": [0.5, 0.999],
            "weight_decay": 0.0}


@register_trainer("cycle")
class CycleTrainer(Trainer):
    """Two generators and two discriminators on unpaired LR/HR patches (see the module docstring)."""

    extra_config: ClassVar[dict[str, Any]] = {
        "optimizer": _adam(2e-4),
        "optimizer_d": _adam(2e-4),
        "scheduler": {**copy.deepcopy(DEFAULTS["train"]["scheduler"]), "type": "constant"},
        "cycle": {"weight": 10.0},
        "identity": {"weight": 5.0},
        "adversarial": {"weight": 1.0},
        "down_generator": {"num_feat": 64, "num_blocks": 4},
        "discriminator": {"num_feat": 64},
    }

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], source: str) -> None:
        train = cfg["train"]
        for key in ("cycle", "identity", "adversarial"):
            value = train[key]["weight"]
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{source}: train.{key}.weight must be a number >= 0, not {value!r}")
        if not cfg["datasets"]["train"]["lr_dir"] or not isinstance(cfg["datasets"]["train"]["lr_dir"], str):
            raise ConfigError(f"{source}: train.type cycle needs datasets.train.lr_dir: one folder of LR images, "
                              "unpaired with datasets.train.hr_dir")
        if train["precision"] == "fp16":
            raise ConfigError(f"{source}: train.type cycle runs in fp32 or bf16 (no GradScaler for four networks)")
        scale, patch = int(cfg["model"]["scale"]), int(cfg["datasets"]["train"]["patch_size"])
        if patch % scale or patch // scale < 16:
            raise ConfigError(f"{source}: datasets.train.patch_size {patch} must be a multiple of the scale {scale} "
                              f"with an LR side of at least 16 (the LR discriminator's two stride-2 layers)")

    def build_models(self) -> dict[str, nn.Module]:
        models = super().build_models()
        channels = describe(models["net"]).in_channels
        if channels != 3:
            raise ConfigError("train.type cycle needs an RGB model (Y-channel models see no colour to cycle)")
        tcfg = self.cfg["train"]
        dg, dc = tcfg["down_generator"], tcfg["discriminator"]
        models["down"] = DownGenerator(self.scale, 3, int(dg["num_feat"]), int(dg["num_blocks"]))
        models["disc_hr"] = PatchDiscriminator(3, int(dc["num_feat"]), layers=3)
        models["disc_lr"] = PatchDiscriminator(3, int(dc["num_feat"]), layers=2)
        return models

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        tcfg = self.cfg["train"]
        gen = list(self.models["net"].parameters()) + list(self.models["down"].parameters())
        disc = list(self.models["disc_hr"].parameters()) + list(self.models["disc_lr"].parameters())
        return {"net": make_optimizer(gen, tcfg["optimizer"], self.device),
                "disc": make_optimizer(disc, tcfg["optimizer_d"], self.device)}

    def build_criteria(self) -> dict[str, nn.Module]:
        return {}

    def build_train_set(self, scale: int | None = None) -> Any:
        dcfg = self.cfg["datasets"]["train"]
        if not dcfg["hr_dir"] or not isinstance(dcfg["hr_dir"], str):
            raise ConfigError("datasets.train.hr_dir must be one folder of HR images for train.type cycle")
        for key in ("hr_dir", "lr_dir"):
            if not Path(dcfg[key]).is_dir():
                raise DatasetError(f"{dcfg[key]}: datasets.train.{key} is not a folder")
        return UnpairedPatches(dcfg["lr_dir"], dcfg["hr_dir"], self.scale, int(dcfg["patch_size"]),
                               int(dcfg["data_repeat"]))

    def optimization_step(self, batch: Mapping[str, Tensor]) -> dict[str, float] | None:
        tcfg = self.cfg["train"]
        w_cyc, w_idt = float(tcfg["cycle"]["weight"]), float(tcfg["identity"]["weight"])
        w_adv = float(tcfg["adversarial"]["weight"])
        down, d_hr, d_lr = self.models["down"], self.models["disc_hr"], self.models["disc_lr"]
        opt_g, opt_d = self.optimizers["net"], self.optimizers["disc"]
        lr, hr = batch["lr"], batch["hr"]

        d_hr.requires_grad_(False)
        d_lr.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            sr = self.sr_forward(self.forward_net, lr)
            fake_lr = down(hr)
            cycle = (down(sr) - lr).abs().mean() + (self.sr_forward(self.forward_net, fake_lr) - hr).abs().mean()
            identity = ((imresize(sr.float(), 1 / self.scale) - lr).abs().mean()
                        + (fake_lr.float() - imresize(hr, 1 / self.scale)).abs().mean())
            adversarial = ((d_hr(sr).float() - 1) ** 2).mean() + ((d_lr(fake_lr).float() - 1) ** 2).mean()
            g_loss = w_cyc * cycle + w_idt * identity + w_adv * adversarial
        d_hr.requires_grad_(True)
        d_lr.requires_grad_(True)
        if not self.all_finite(g_loss):
            return None
        g_loss.backward()

        opt_d.zero_grad(set_to_none=True)
        with self.autocast():
            d_loss = sr.new_zeros((), dtype=torch.float32)
            for disc, real, fake in ((d_hr, hr, sr.detach()), (d_lr, lr, fake_lr.detach())):
                d_loss = d_loss + 0.5 * (((disc(real).float() - 1) ** 2).mean() + (disc(fake).float() ** 2).mean())
        if not self.all_finite(d_loss):
            opt_g.zero_grad(set_to_none=True)
            return None
        d_loss.backward()
        clip = tcfg["clip_grad"]
        for opt, params in ((opt_g, [*self.net.parameters(), *down.parameters()]),
                            (opt_d, [*d_hr.parameters(), *d_lr.parameters()])):
            if clip:
                torch.nn.utils.clip_grad_norm_(params, float(clip))
            opt.step()
        values = {"loss": g_loss, "cycle": cycle, "identity": identity, "adversarial": adversarial, "d_loss": d_loss}
        return {k: float(v.detach()) for k, v in values.items() if math.isfinite(float(v.detach()))}
