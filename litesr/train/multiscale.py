"""Multi-scale training (VDSR, MDSR): ``train.type: multiscale`` trains one network on several factors at once.

Every batch draws its factor from ``train.scales`` (uniformly, as a pure function of the seed and the iteration, so
``--resume`` continues the same sequence and every process of a DDP run uses the same factor) and calls
``net(lr, scale)``. Each factor has its own LR images, made from the HR files with litesr's MATLAB bicubic and cached
(or read from ``lr_dir``, e.g. a DIV2K-style ``X2/X3/X4`` layout); the HR patch size must divide by every factor (48
for x2, x3 and x4). Validation measures every validation set at every factor; the mean PSNR over the factors on the
first set decides ``net_best``. The nominal ``model.scale`` (one of the factors) is the one written into the
checkpoint's metadata; ``litesr eval --weights net_last.safetensors --scale 2 --scale 3 --scale 4`` evaluates all.

VDSR's adjustable gradient clipping (Kim et al. 2016, section 3.3) is ``train.clip_theta``: the limit is theta divided
by the current learning rate, so the high initial rate (SGD, 0.1) cannot blow up while later, smaller rates are not
held back. ``train.clip_mode: norm`` clips the global gradient norm (the PyTorch port, theta 0.4); ``value`` clips each
gradient element to [-theta/lr, theta/lr] (the paper's wording).

    train:
      type: multiscale
      scales: [2, 3, 4]
      optimizer: {type: sgd, lr: 0.1, momentum: 0.9, weight_decay: 1.0e-4}
      clip_theta: 0.4
      clip_mode: norm
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..descriptor import is_multi_scale_builder
from ..errors import ConfigError
from .trainer import Trainer, TrainingError, register_trainer

CLIP_MODES = ("norm", "value")


class MultiScalePatches(Dataset):
    """Training patches at several factors of the same HR images; all samples of one batch share a factor.

    ``sets`` maps each factor to its :class:`~litesr.data.train.TrainPatches` (same images, same order). Samples
    are indexed with :class:`~litesr.data.train.SampleStream`'s ``(index, (seed, epoch, position))``; the factor is
    drawn per batch of ``batch_per_rank`` consecutive samples of this process's stream, i.e. per iteration.
    """

    def __init__(self, sets: Mapping[int, Any], *, seed: int, batch_per_rank: int, world_size: int = 1,
                 stages: Sequence[tuple[int, Sequence[int]]] = ()) -> None:
        self.sets = dict(sets)
        # A scale curriculum (train.curriculum): [(first iteration, factors drawn from)], e.g. x2, then x2-x3, ...
        self.stages = [(int(start), sorted(int(f) for f in factors)) for start, factors in stages]
        self.scales = sorted(self.sets)
        lengths = {len(ds) for ds in self.sets.values()}
        if len(lengths) != 1:
            raise TrainingError(f"the training sets of the factors differ in size ({sorted(lengths)})")
        self.length = lengths.pop()
        self.seed = seed
        self.batch_per_rank = batch_per_rank
        self.world_size = world_size
        self.per_rank = math.ceil(self.length / world_size)  # SampleStream's epoch length per process

    def __len__(self) -> int:
        return self.length

    def scale_of(self, iteration: int) -> int:
        """The factor of the batch of ``iteration`` (0-based)."""
        rng = np.random.default_rng([self.seed, iteration, 0x5CA1E])
        scales = self.scales
        for start, factors in self.stages:
            if iteration >= start:
                scales = factors
        return scales[int(rng.integers(len(scales)))]

    def __getitem__(self, item: int | tuple[int, tuple[int, int, int]]) -> dict[str, Tensor]:
        if isinstance(item, tuple):
            _, (_, epoch, position) = item
            # This process's count of samples so far; batches start at multiples of batch_per_rank.
            consumed = epoch * self.per_rank + position // self.world_size
        else:
            consumed = int(item)
        scale = self.scale_of(consumed // self.batch_per_rank)
        sample = self.sets[scale][item]
        sample["scale"] = torch.tensor(scale)
        return sample


def _scales_of(value: Any, source: str) -> list[int]:
    if not isinstance(value, list) or not value or any(isinstance(s, bool) or not isinstance(s, int) for s in value):
        raise ConfigError(f"{source}: train.scales must be a list of integer factors, e.g. [2, 3, 4], not {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{source}: train.scales lists a factor twice: {value}")
    return sorted(value)


@register_trainer("multiscale")
class MultiScaleTrainer(Trainer):
    """One network trained on a mix of factors, drawn per batch (see the module docstring)."""

    extra_config: ClassVar[dict[str, Any]] = {"scales": [2, 3, 4], "clip_theta": None, "clip_mode": "norm"}
    # MDSR's branches of the other factors get no gradient in a step (VDSR uses every weight; the check is cheap).
    ddp_options: ClassVar[dict[str, Any]] = {"find_unused_parameters": True}

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], source: str) -> None:
        from .. import registry

        train = cfg["train"]
        scales = _scales_of(train["scales"], source)
        variant = registry.get_variant(str(cfg["model"]["name"]))
        spec = registry.get_arch(variant.arch)
        if len(scales) > 1 and not is_multi_scale_builder(spec.builder):
            raise ConfigError(f"{source}: {variant.name} is built for one factor; train.type multiscale needs a "
                              "multi-scale model (one network for several factors, e.g. vdsr or mdsr)")
        unsupported = [s for s in scales if s not in spec.scales]
        if unsupported:
            have = ", ".join(f"x{s}" for s in spec.scales)
            raise ConfigError(f"{source}: train.scales {scales}: {variant.name} supports {have}, not "
                              f"{', '.join(f'x{s}' for s in unsupported)}")
        if int(cfg["model"]["scale"]) not in scales:
            raise ConfigError(f"{source}: model.scale {cfg['model']['scale']} is not one of train.scales {scales}")
        patch = int(cfg["datasets"]["train"]["patch_size"])
        if any(patch % s for s in scales):
            step = math.lcm(*scales)
            example = max(1, round(patch / step)) * step
            raise ConfigError(f"{source}: datasets.train.patch_size {patch} is not a multiple of every factor of "
                              f"train.scales {scales}; use a multiple of {step} (e.g. {example})")
        theta, mode = train["clip_theta"], train["clip_mode"]
        if theta is not None and (isinstance(theta, bool) or not isinstance(theta, int | float) or theta <= 0):
            raise ConfigError(f"{source}: train.clip_theta must be a positive number or empty, not {theta!r}")
        if mode not in CLIP_MODES:
            raise ConfigError(f"{source}: train.clip_mode {mode!r} is not one of {', '.join(CLIP_MODES)}")
        if theta is not None and train["clip_grad"]:
            raise ConfigError(f"{source}: give train.clip_theta (adjustable clipping) or train.clip_grad, not both")

    def __init__(self, cfg: Mapping[str, Any], **kwargs: Any) -> None:
        self.scales = sorted(int(s) for s in cfg["train"]["scales"])
        super().__init__(cfg, **kwargs)
        self.batch_scale = self.scale

    # ---- seams -------------------------------------------------------------------------------------------------

    def build_models(self) -> dict[str, nn.Module]:
        models = super().build_models()
        own = getattr(models["net"], "scales", None)  # MDSR: the factors it was built with
        missing = [s for s in self.scales if own is not None and s not in own]
        if missing:
            raise ConfigError(f"model {self.cfg['model']['name']} was built for factors {list(own)}; train.scales "
                              f"also asks for {missing} (set model.options.scales)")
        return models

    def build_train_set(self, scale: int | None = None) -> Any:
        sets = {s: super(MultiScaleTrainer, self).build_train_set(s) for s in self.scales}
        from .curriculum import stage_starts

        stages = self.cfg["train"]["curriculum"]
        starts = stage_starts(stages) if stages else []
        return MultiScalePatches(sets, seed=int(self.cfg["seed"]), batch_per_rank=self._per_rank_batch(),
                                 world_size=self.dist.world_size,
                                 stages=[(start, st["scales"]) for start, st in zip(starts, stages)])

    def training_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        scales = batch["scale"]
        scale = int(scales[0])
        if not bool((scales == scale).all()):
            raise TrainingError(f"iteration {self.iteration + 1}: one batch mixes factors {scales.tolist()}")
        self.batch_scale = scale
        sr = self.sr_forward(self.forward_net, batch["lr"], scale)
        total, parts = self.criteria["pixel"](sr, self.target(batch["hr"]))
        return {"loss": total, **parts}

    def backward_and_step(self, loss: Tensor, opt: torch.optim.Optimizer, model: nn.Module) -> None:
        """The engine's step, with VDSR's adjustable clipping (theta / current lr) when ``train.clip_theta`` is set."""
        theta = self.cfg["train"]["clip_theta"]
        if theta is None:
            super().backward_and_step(loss, opt, model)
            return
        lr = float(opt.param_groups[0]["lr"])
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
        else:
            loss.backward()
        if lr > 0:
            limit = float(theta) / lr
            if self.cfg["train"]["clip_mode"] == "value":
                torch.nn.utils.clip_grad_value_(model.parameters(), limit)
            else:
                torch.nn.utils.clip_grad_norm_(model.parameters(), limit)
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()

    # ---- validation at every factor ----------------------------------------------------------------------------

    def validate(self) -> dict[str, dict[str, float]]:
        """Y-PSNR/SSIM (border = factor) at every factor of ``train.scales`` on every validation set; rank 0 only.

        Results are keyed ``"<set> x<factor>"``; the mean PSNR over the factors on the first set decides ``best``."""
        from ..checkpoint import save_safetensors
        from ..evaluate import evaluate

        sets = self.validation_sets()
        results: dict[str, dict[str, float]] = {}
        if not sets or not self.dist.is_main:
            return results
        assert self.monitor is not None
        model = self.eval_model()
        for entry in sets:
            for scale in self.scales:
                with torch.no_grad():
                    result = evaluate(model, entry["hr_dir"], scale, device=self.device,
                                      lr_dir=entry.get("lr_dir") or None)
                results[f"{entry['name']} x{scale}"] = {"psnr": float(result.psnr), "ssim": float(result.ssim)}
                self.monitor.record({"iter": self.iteration, "dataset": entry["name"], "scale": scale,
                                     "psnr": float(result.psnr), "ssim": float(result.ssim)})
            row = [results[f"{entry['name']} x{s}"] for s in self.scales]
            self.monitor.print(f"val {entry['name']} @ {self.iteration}: " + "  ".join(
                f"x{s} {r['psnr']:.3f} dB / {r['ssim']:.4f}" for s, r in zip(self.scales, row)))
        first = sets[0]["name"]
        psnr = float(np.mean([results[f"{first} x{s}"]["psnr"] for s in self.scales]))
        ssim = float(np.mean([results[f"{first} x{s}"]["ssim"] for s in self.scales]))
        if not self.best or psnr > self.best["psnr"]:
            self.best = {"psnr": psnr, "ssim": ssim, "iteration": self.iteration, "dataset": first,
                         "scales": list(self.scales)}
            save_safetensors(model.state_dict(), Path(self.run_dir) / "net_best.safetensors", self._metadata())
            self.monitor.print(f"best: mean PSNR {psnr:.3f} dB over {', '.join(f'x{s}' for s in self.scales)} "
                               f"on {first}")
        return results
