"""Learned downscaling trained jointly with an SR model: ``train.type: car`` (``litesr train --config car_x4``).

Every batch: HR patch -> :class:`~litesr.archs.car.CARDownscaler` -> LR (rounded to 8 bits, straight-through) -> the
SR model -> ``train.losses`` against the HR patch. One optimiser trains both networks; the reconstruction gradient
reaches the downscaler through the SR model. ``train.car.lr_weight`` > 0 adds L1 between the learned LR and the MATLAB
bicubic LR of the same patch (the dataset's), which keeps the LR image close to a normal downscale (litesr's option;
0 = the reconstruction loss alone). Logged: the SR losses and ``car_lr``.

The downscaler is checkpointed as ``downscaler_last.safetensors`` with its own metadata (arch ``car_downscaler``
and its configuration), so it can be used on its own: :func:`litesr.archs.car.load_downscaler`. Validation measures
the whole chain: Y-PSNR/SSIM (border = scale) of SR(CAR(HR)) against HR.

    train:
      type: car
      car: {channels: 32, blocks: 2, kernel_size: null, lr_weight: 0.0}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..archs.car import CARDownscaler, quantize_ste
from ..errors import ConfigError
from .trainer import Trainer, register_trainer

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


@register_trainer("car")
class CARTrainer(Trainer):
    extra_config: ClassVar[dict[str, Any]] = {
        "car": {"channels": 32, "blocks": 2, "kernel_size": None, "lr_weight": 0.0},
    }

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], source: str) -> None:
        car = cfg["train"]["car"]
        scale = int(cfg["model"]["scale"])
        k = car["kernel_size"]
        if int(car["channels"]) < 1 or int(car["blocks"]) < 0 or float(car["lr_weight"]) < 0:
            raise ConfigError(f"{source}: train.car.channels must be >= 1, blocks >= 0 and lr_weight >= 0")
        if k is not None and (not isinstance(k, int) or k < scale or (k - scale) % 2):
            raise ConfigError(f"{source}: train.car.kernel_size {k!r} must be an integer >= the scale {scale} that "
                              "differs from it by an even number (e.g. 3 * scale)")

    def build_models(self) -> dict[str, nn.Module]:
        models = super().build_models()
        car = self.cfg["train"]["car"]
        models["downscaler"] = CARDownscaler(self.scale, int(car["channels"]), int(car["blocks"]),
                                             car["kernel_size"])
        return models

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        from .trainer import make_optimizer

        params = [*self.net.parameters(), *self.models["downscaler"].parameters()]
        return {"net": make_optimizer(params, self.cfg["train"]["optimizer"], self.device)}

    def downscale(self, hr: Tensor) -> Tensor:
        return quantize_ste(self.models["downscaler"](hr))

    def training_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        hr = batch["hr"]
        lr = self.downscale(hr)
        sr = self.sr_forward(self.forward_net, lr)
        criterion = self.criteria["pixel"]
        criterion.set_iteration(self.iteration)
        total, parts = criterion(sr, self.target(hr), lr=lr)
        weight = float(self.cfg["train"]["car"]["lr_weight"])
        if weight:
            parts["car_lr"] = weight * F.l1_loss(lr.float(), batch["lr"].float())
            total = total + parts["car_lr"]
        return {"loss": total, **parts}

    def checkpoint_weights(self) -> dict[str, tuple[dict[str, Tensor], dict[str, str]]]:
        weights = super().checkpoint_weights()
        down = self.models["downscaler"]
        meta = {"arch": "car_downscaler", "config": json.dumps(down.config), "iteration": str(self.iteration),
                "run": str(self.cfg["name"])}
        for name in list(weights):
            if name.startswith("downscaler_"):
                weights[name] = (weights[name][0], meta)
        return weights

    def validate(self) -> dict[str, dict[str, float]]:
        """Y-PSNR/SSIM of SR(CAR(HR)) on every validation set (first set decides ``best``)."""
        from ..checkpoint import save_safetensors
        from ..data.train import read_rgb_uint8
        from ..metrics.psnr_ssim import calculate_metrics

        sets = self.validation_sets()
        results: dict[str, dict[str, float]] = {}
        if not sets or not self.dist.is_main:
            return results
        net, down = self.eval_model(), self.models["downscaler"]
        modes = (net.training, down.training)
        net.eval()
        down.eval()
        s = self.scale
        for entry in sets:
            scores = []
            for path in sorted(p for p in Path(entry["hr_dir"]).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
                hr = read_rgb_uint8(path)
                hr = hr[: hr.shape[0] - hr.shape[0] % s, : hr.shape[1] - hr.shape[1] % s]
                x = torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1)[None].float().div(255).to(self.device)
                with torch.no_grad():
                    sr = self.sr_forward(net, self.downscale(x)).clamp(0, 1)
                sr_u8 = (sr[0].permute(1, 2, 0).cpu().numpy() * 255.0).round().astype(np.uint8)
                scores.append(calculate_metrics(sr_u8, hr, s))
            results[entry["name"]] = {"psnr": float(np.mean([m.psnr for m in scores])),
                                      "ssim": float(np.mean([m.ssim for m in scores]))}
        net.train(modes[0])
        down.train(modes[1])
        first = sets[0]["name"]
        improved = not self.best or results[first]["psnr"] > self.best["psnr"]
        for name, r in results.items():
            assert self.monitor is not None
            self.monitor.record({"iter": self.iteration, "dataset": name, **r})
            self.monitor.print(f"val {name} @ {self.iteration}: SR(CAR(HR)) PSNR {r['psnr']:.3f} dB  "
                               f"SSIM {r['ssim']:.4f}{'  (best)' if name == first and improved else ''}")
        if improved:
            self.best = {**results[first], "iteration": self.iteration, "dataset": first}
            save_safetensors(net.state_dict(), self.run_dir / "net_best.safetensors", self._metadata())
        return results
