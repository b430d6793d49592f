"""Arbitrary-scale training (Meta-SR, LIIF): ``train.type: arbitrary_scale``.

Every batch draws its factor from ``train.scales`` (default 1.0, 1.1, ... 4.0, Meta-SR's set) as a pure function of the
seed and the iteration (resumable); LR patches are ``train.lr_patch`` pixels, HR crops round(lr_patch * r), LR made
by MATLAB bicubic (:mod:`litesr.data.arbitrary_scale`). Models with a ``query`` method (LIIF) are trained on
``train.sample_queries`` random HR pixels per patch (LIIF: 2304), the others on the whole HR patch. Validation runs
every validation set at every factor of ``train.val_scales``; the mean PSNR on the first set decides ``net_best``.

    model: {name: metasr_edsr_baseline}
    train:
      type: arbitrary_scale
      lr_patch: 48
      val_scales: [2, 2.5, 3, 3.5, 4]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..data.arbitrary_scale import META_SR_SCALES, RandomScalePatches, check_scales
from ..errors import ConfigError, DatasetError
from .trainer import Trainer, register_trainer


@register_trainer("arbitrary_scale")
class ArbitraryScaleTrainer(Trainer):
    """One network for every factor in ``train.scales`` (see the module docstring)."""

    extra_config: ClassVar[dict[str, Any]] = {"scales": list(META_SR_SCALES), "lr_patch": 48, "sample_queries": 2304,
                                              "val_scales": [2, 2.5, 3, 3.5, 4]}

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], source: str) -> None:
        from .. import registry
        from ..archs.arbitrary import ArbitraryScaleSR

        train = cfg["train"]
        variant = registry.get_variant(str(cfg["model"]["name"]))
        builder = registry.get_arch(variant.arch).builder
        if not (isinstance(builder, type) and issubclass(builder, ArbitraryScaleSR)):
            raise ConfigError(f"{source}: train.type arbitrary_scale needs an arbitrary-scale model "
                              f"(metasr_edsr_baseline, liif_edsr_baseline), not {variant.name}")
        for key in ("scales", "val_scales"):
            try:
                check_scales(train[key], f"train.{key}")
            except (DatasetError, TypeError, ValueError) as exc:
                raise ConfigError(f"{source}: {exc}") from None
        if int(train["lr_patch"]) < 4 or int(train["sample_queries"]) < 0:
            raise ConfigError(f"{source}: train.lr_patch must be >= 4 and train.sample_queries >= 0")

    def build_models(self) -> dict[str, nn.Module]:
        models = super().build_models()
        scales = check_scales(self.cfg["train"]["scales"])
        models["net"].trained_scales = (scales[0], scales[-1])
        return models

    def build_train_set(self, scale: int | None = None) -> Any:
        dcfg, tcfg = self.cfg["datasets"]["train"], self.cfg["train"]
        if not dcfg["hr_dir"]:
            raise ConfigError("datasets.train.hr_dir is not set (a folder of HR training images; --train_dir)")
        hr_dirs = dcfg["hr_dir"] if isinstance(dcfg["hr_dir"], list) else [dcfg["hr_dir"]]
        dataset = RandomScalePatches(hr_dirs, lr_patch=int(tcfg["lr_patch"]), scales=tcfg["scales"],
                                     seed=int(self.cfg["seed"]), batch_per_rank=self._per_rank_batch(),
                                     world_size=self.dist.world_size, data_repeat=int(dcfg["data_repeat"]),
                                     flip=bool(dcfg["flip"]), rot90=bool(dcfg["rot90"]))
        if dataset.skipped and self.dist.is_main:
            print(f"note: {dataset.skipped} training image(s) smaller than the largest HR crop left out")
        return dataset

    def training_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        from ..upsamplers import make_coord

        lr, hr = batch["lr"], batch["hr"]
        b, _, h, w = hr.shape
        queries = int(self.cfg["train"]["sample_queries"])
        if hasattr(self.net, "query") and 0 < queries < h * w:
            # LIIF's training form: a random subset of HR pixels per patch, seeded by the iteration (resumable).
            gen = torch.Generator().manual_seed(int(self.cfg["seed"]) * 1_000_003 + self.iteration)
            index = torch.stack([torch.randperm(h * w, generator=gen)[:queries] for _ in range(b)]).to(hr.device)
            coord = make_coord((h, w), hr.device).view(1, -1, 2).expand(b, -1, -1)
            coord = torch.gather(coord, 1, index[..., None].expand(-1, -1, 2))
            cell = torch.tensor([2.0 / h, 2.0 / w], device=hr.device).expand_as(coord)
            pred = self.net.query(lr, coord, cell)  # B, Q, 3
            target = torch.gather(hr.flatten(2), 2, index[:, None].expand(-1, 3, -1)).permute(0, 2, 1)
            total, parts = self.criteria["pixel"](pred.permute(0, 2, 1)[..., None], target.permute(0, 2, 1)[..., None])
        else:
            sr = self.forward_net(lr, size=(h, w))
            total, parts = self.criteria["pixel"](sr, hr)
        return {"loss": total, **parts}

    def validate(self) -> dict[str, dict[str, float]]:
        """Y-PSNR/SSIM at every factor of ``train.val_scales`` on every validation set; rank 0 only."""
        from ..arbitrary import evaluate_at_scale
        from ..checkpoint import save_safetensors

        sets = self.validation_sets()
        results: dict[str, dict[str, float]] = {}
        if not sets or not self.dist.is_main:
            return results
        assert self.monitor is not None
        model = self.eval_model()
        scales = check_scales(self.cfg["train"]["val_scales"])
        for entry in sets:
            for scale in scales:
                r = evaluate_at_scale(model, entry["hr_dir"], scale, device=self.device)
                results[f"{entry['name']} x{scale:g}"] = {"psnr": r.psnr, "ssim": r.ssim,
                                                          "bicubic_psnr": r.bicubic_psnr}
                self.monitor.record({"iter": self.iteration, "dataset": entry["name"], "scale": scale, "psnr": r.psnr,
                                     "ssim": r.ssim, "bicubic_psnr": r.bicubic_psnr})
            name = entry["name"]
            row = [(s, results[f"{name} x{s:g}"]) for s in scales]
            self.monitor.print(f"val {name} @ {self.iteration}: " + "  ".join(
                f"x{s:g} {r['psnr']:.2f} (bicubic {r['bicubic_psnr']:.2f})" for s, r in row))
        first = sets[0]["name"]
        psnr = float(np.mean([results[f"{first} x{s:g}"]["psnr"] for s in scales]))
        if not self.best or psnr > self.best["psnr"]:
            self.best = {"psnr": psnr, "iteration": self.iteration, "dataset": first, "scales": list(scales)}
            save_safetensors(model.state_dict(), Path(self.run_dir) / "net_best.safetensors", self._metadata())
        return results
