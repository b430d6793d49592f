"""Adversarial training (SRGAN, Ledig et al. 2017): ``train.type: gan``.

The generator is the config's model (``net``, usually warm-started from an SRResNet run with ``model.init_from``); the
discriminator (``disc``) is :class:`~litesr.archs.srresnet.SRGANDiscriminator`. Each iteration, in the order of the
reference implementations (BasicSR ``SRGANModel``, Lornatang/SRGAN-PyTorch):

1. generator loss, with the discriminator's parameters frozen (``requires_grad`` off):
   the pixel terms of ``train.losses`` (l1, l2, charbonnier, tv ...; zero-weight entries are left out)
   + ``perceptual.weight`` x distance of VGG19 features (SRGAN: MSE on ``relu5_4``, "VGG54")
   + ``texture.weight`` x MSE of their Gram matrices (EnhanceNet's texture loss)
   + ``adversarial.weight`` x ``BCEWithLogits(D(G(lr)), 1)`` (1e-3 in the paper);
2. discriminator loss ``BCEWithLogits(D(hr), 1) + BCEWithLogits(D(G(lr).detach()), 0)``, the real and the generated
   patches in separate passes (BatchNorm statistics of each kind, as the references; each pass has its own backward,
   as DistributedDataParallel expects);
3. both optimisers step, only when both losses are finite on every process (otherwise nothing changes and the step
   counts as skipped).

The VGG19 weights are never downloaded: ``train.perceptual.vgg_weights`` names torchvision's ImageNet state dict
(``vgg19-dcbb9e9d.pth``, or any file with its ``features.N.weight`` keys); one frozen copy serves the perceptual and the
texture loss. The discriminator sees HR patches, so its ``input_size`` is ``datasets.train.patch_size`` (96 in the
paper). Both networks are checkpointed (``net_last.safetensors``, ``disc_last.safetensors``, and both with their
optimisers in ``state_last.pt``, so ``--resume`` continues exactly); validation runs on the generator as for ``sr``.

Config keys (besides the engine's; ``train.optimizer``/``train.scheduler`` are the generator's):

    train:
      type: gan
      optimizer:   {type: adam, lr: 1.0e-4, betas: [0.9, 0.999], weight_decay: 0}   # default for gan runs
      optimizer_d: {type: adam, lr: 1.0e-4, betas: [0.9, 0.999], weight_decay: 0}   # the discriminator's
      scheduler:   {type: constant}                                                # default for gan runs
      scheduler_d: {type: constant}          # the discriminator's own schedule (it does not follow train.scheduler)
      losses: [{type: l1, weight: 0}]         # pixel terms; the default is none
      discriminator: {type: srgan, num_feat: 64, input_size: null}     # null: the HR patch size
      perceptual: {vgg_weights: null, weight: 1.0, layer_weights: {relu5_4: 1.0}, criterion: mse, feature_scale: 1.0}
      texture: {weight: 0, layer_weights: {conv1_1: 1.0, conv2_1: 1.0, conv3_1: 1.0}, patch_size: null}
      adversarial: {weight: 1.0e-3}
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..descriptor import describe
from ..errors import ConfigError
from .config import DEFAULTS
from .schedule import Schedule
from .trainer import Trainer, make_optimizer, register_trainer

DISCRIMINATORS = ("srgan",)
FEATURE_CRITERIA = ("mse", "l2", "l1")
DEFAULT_PERCEPTUAL_LAYERS = {"relu5_4": 1.0}  # SRGAN's VGG54
DEFAULT_TEXTURE_LAYERS = {"conv1_1": 1.0, "conv2_1": 1.0, "conv3_1": 1.0}


def _adam() -> dict[str, Any]:
    """Adam, lr 1e-4, betas (0.9, 0.999), no weight decay: the SRGAN paper's optimiser for both networks."""
    return {**copy.deepcopy(DEFAULTS["train"]["optimizer"]), "type": "adam", "lr": 1e-4, "betas": [0.9, 0.999],
            "weight_decay": 0.0}


def _constant_schedule() -> dict[str, Any]:
    return {**copy.deepcopy(DEFAULTS["train"]["scheduler"]), "type": "constant"}


class FeatureLosses(nn.Module):
    """Perceptual (feature distance) and texture (Gram matrix) losses computed on one frozen VGG19.

    Returns the weighted terms by name (``perceptual``, ``texture``); a term with weight 0 is not computed. Luma-only
    images (one channel) are repeated to the three channels VGG19 expects.
    """

    def __init__(self, vgg_weights: str, *, perceptual_weight: float, perceptual_layers: Mapping[str, float],
                 criterion: str = "mse", feature_scale: float = 1.0, texture_weight: float = 0.0,
                 texture_layers: Mapping[str, float] | None = None, texture_patch_size: int | None = None) -> None:
        super().__init__()
        from ..perceptual import VGGFeatureExtractor, feature_criterion

        self.perceptual_weight = float(perceptual_weight)
        self.perceptual_layers = dict(perceptual_layers) if self.perceptual_weight else {}
        self.texture_weight = float(texture_weight)
        self.texture_layers = dict(texture_layers or DEFAULT_TEXTURE_LAYERS) if self.texture_weight else {}
        self.texture_patch_size = texture_patch_size
        self.feature_scale = float(feature_scale)
        self.criterion = feature_criterion(criterion)
        layers = list(dict.fromkeys([*self.perceptual_layers, *self.texture_layers]))
        self.extractor = VGGFeatureExtractor(vgg_weights, layers)

    def forward(self, pred: Tensor, target: Tensor) -> dict[str, Tensor]:
        from ..perceptual import feature_distance, texture_loss

        if pred.shape[1] == 1:
            pred, target = pred.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
        pred_features = {k: v.float() for k, v in self.extractor(pred).items()}
        with torch.no_grad():
            target_features = {k: v.float() for k, v in self.extractor(target).items()}
        terms: dict[str, Tensor] = {}
        if self.perceptual_layers:
            terms["perceptual"] = self.perceptual_weight * feature_distance(
                pred_features, target_features, self.perceptual_layers, self.criterion, self.feature_scale)
        if self.texture_layers:
            terms["texture"] = self.texture_weight * texture_loss(
                pred_features, target_features, patch_size=self.texture_patch_size, layer_weights=self.texture_layers)
        return terms


def _check_layer_weights(value: Any, where: str, source: str) -> None:
    from ..perceptual import VGG19_LAYERS

    if value is None:
        return
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(f"{source}: {where} must map VGG19 layer names to weights, e.g. {{relu5_4: 1.0}}")
    for name, weight in value.items():
        if name not in VGG19_LAYERS:
            close = difflib.get_close_matches(str(name), list(VGG19_LAYERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: {where}: unknown VGG19 layer {name!r}{hint}; layers are conv1_1 .. relu5_4, "
                              "pool1 .. pool5")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise ConfigError(f"{source}: {where}.{name} must be a number, not {weight!r}")


def _vgg_stride(layer: str) -> int:
    """How much smaller than the image a VGG19 layer's features are: conv3_1 -> 4 (two pools before it), pool3 -> 8."""
    if layer.startswith("pool"):
        return 2 ** int(layer[4:])
    return 2 ** (int(layer[4:].split("_")[0]) - 1)


def _non_negative(value: Any, where: str, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{source}: {where} must be a number >= 0, not {value!r}")
    return float(value)


@register_trainer("gan")
class GANTrainer(Trainer):
    """Generator ``net`` and discriminator ``disc`` updated in turn each iteration (see the module docstring)."""

    extra_config: ClassVar[dict[str, Any]] = {
        "optimizer": _adam(),
        "optimizer_d": _adam(),
        "scheduler": _constant_schedule(),
        "scheduler_d": _constant_schedule(),
        "losses": [{"type": "l1", "weight": 0.0}],
        "discriminator": {"type": "srgan", "num_feat": 64, "input_size": None},
        "perceptual": {"vgg_weights": None, "weight": 1.0, "layer_weights": None, "criterion": "mse",
                       "feature_scale": 1.0},
        "texture": {"weight": 0.0, "layer_weights": None, "patch_size": None},
        "adversarial": {"weight": 1e-3},
    }

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], source: str) -> None:
        train = cfg["train"]
        disc = train["discriminator"]
        if disc["type"] not in DISCRIMINATORS:
            raise ConfigError(f"{source}: train.discriminator.type {disc['type']!r} is not one of "
                              f"{', '.join(DISCRIMINATORS)}")
        if int(disc["num_feat"]) < 1:
            raise ConfigError(f"{source}: train.discriminator.num_feat must be positive, not {disc['num_feat']}")
        patch = int(cfg["datasets"]["train"]["patch_size"])
        size = disc["input_size"]
        if size is not None and int(size) != patch:
            raise ConfigError(f"{source}: train.discriminator.input_size {size} differs from datasets.train.patch_size "
                              f"{patch}; the discriminator judges HR patches (leave input_size empty to follow it)")
        if patch % 16:
            raise ConfigError(f"{source}: datasets.train.patch_size {patch} must be a multiple of 16 for the SRGAN "
                              "discriminator (four stride-2 convolutions), e.g. 96 as in the paper")
        perceptual, texture = train["perceptual"], train["texture"]
        weights = {where: _non_negative(value, where, source) for where, value in (
            ("train.perceptual.weight", perceptual["weight"]), ("train.texture.weight", texture["weight"]),
            ("train.adversarial.weight", train["adversarial"]["weight"]))}
        _check_layer_weights(perceptual["layer_weights"], "train.perceptual.layer_weights", source)
        _check_layer_weights(texture["layer_weights"], "train.texture.layer_weights", source)
        if perceptual["criterion"] not in FEATURE_CRITERIA:
            raise ConfigError(f"{source}: train.perceptual.criterion {perceptual['criterion']!r} is not one of "
                              f"{', '.join(FEATURE_CRITERIA)}")
        patch_size = texture["patch_size"]
        if patch_size is not None and (isinstance(patch_size, bool) or not isinstance(patch_size, int)
                                       or patch_size < 1):
            raise ConfigError(f"{source}: train.texture.patch_size must be a positive integer or empty, "
                              f"not {patch_size!r}")
        if patch_size is not None and weights["train.texture.weight"] > 0:
            for layer in texture["layer_weights"] or DEFAULT_TEXTURE_LAYERS:
                side = patch // _vgg_stride(layer)
                if side < patch_size:
                    raise ConfigError(f"{source}: train.texture.patch_size {patch_size} does not fit the {side}x{side} "
                                      f"{layer} features of a {patch}-pixel HR patch")
        needs_vgg = weights["train.perceptual.weight"] > 0 or weights["train.texture.weight"] > 0
        if needs_vgg and not perceptual["vgg_weights"]:
            raise ConfigError(f"{source}: train.perceptual.vgg_weights is not set; the perceptual and texture losses "
                              "need torchvision's ImageNet VGG19 state dict as a local file (vgg19-dcbb9e9d.pth; "
                              "litesr downloads nothing), or set their weights to 0")

    def __init__(self, cfg: Mapping[str, Any], **kwargs: Any) -> None:
        super().__init__(cfg, **kwargs)
        self.disc = self.models["disc"]
        self.forward_disc = self._wrap_discriminator(self.disc)
        self.schedule_d = Schedule(self.cfg["train"]["scheduler_d"], self.total_iterations)

    # ---- seams -------------------------------------------------------------------------------------------------

    def build_models(self) -> dict[str, nn.Module]:
        from ..archs.srresnet import SRGANDiscriminator

        models = super().build_models()
        dcfg = self.cfg["train"]["discriminator"]
        channels = describe(models["net"]).in_channels
        size = int(dcfg["input_size"] or self.cfg["datasets"]["train"]["patch_size"])
        models["disc"] = SRGANDiscriminator(in_channels=channels, num_feat=int(dcfg["num_feat"]), input_size=size)
        return models

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        optimizers = super().build_optimizers()
        optimizers["disc"] = make_optimizer(self.models["disc"].parameters(), self.cfg["train"]["optimizer_d"],
                                            self.device)
        return optimizers

    def build_criteria(self) -> dict[str, nn.Module]:
        from ..losses import build_loss
        from .config import expand_vars

        tcfg = self.cfg["train"]
        criteria: dict[str, nn.Module] = {"adversarial": nn.BCEWithLogitsLoss()}
        pixel = [entry for entry in tcfg["losses"] if float(entry.get("weight", 1.0)) != 0.0]
        if pixel:
            criteria["pixel"] = build_loss(pixel, source="config").to(self.device)
        perceptual, texture = tcfg["perceptual"], tcfg["texture"]
        if float(perceptual["weight"]) > 0 or float(texture["weight"]) > 0:
            if not perceptual["vgg_weights"]:
                raise ConfigError("train.perceptual.vgg_weights is not set (torchvision's VGG19 state dict file)")
            criteria["features"] = FeatureLosses(
                expand_vars(str(perceptual["vgg_weights"])),
                perceptual_weight=float(perceptual["weight"]),
                perceptual_layers=perceptual["layer_weights"] or DEFAULT_PERCEPTUAL_LAYERS,
                criterion=str(perceptual["criterion"]),
                feature_scale=float(perceptual["feature_scale"]),
                texture_weight=float(texture["weight"]),
                texture_layers=texture["layer_weights"] or DEFAULT_TEXTURE_LAYERS,
                texture_patch_size=texture["patch_size"],
            ).to(self.device)
        return criteria

    def schedule_for(self, optimizer: str) -> Schedule:
        return self.schedule_d if optimizer == "disc" else self.schedule

    # ---- one iteration -----------------------------------------------------------------------------------------

    def generator_losses(self, sr: Tensor, target: Tensor) -> dict[str, Tensor]:
        """The generator's weighted loss terms and their sum ``"loss"`` (called under autocast, D frozen)."""
        terms: dict[str, Tensor] = {}

        def add(new_terms: Mapping[str, Tensor]) -> None:
            for name, value in new_terms.items():  # a name given twice (two l1 entries) adds up
                terms[name] = terms[name] + value if name in terms else value

        if "pixel" in self.criteria:
            add(self.criteria["pixel"](sr, target)[1])
        if "features" in self.criteria:
            add(self.criteria["features"](sr, target))
        weight = float(self.cfg["train"]["adversarial"]["weight"])
        if weight > 0:
            logits = self.disc(sr).float()
            add({"adversarial": weight * self.criteria["adversarial"](logits, torch.ones_like(logits))})
        terms["loss"] = sum(terms.values(), sr.new_zeros((), dtype=torch.float32))
        return terms

    def optimization_step(self, batch: Mapping[str, Tensor]) -> dict[str, float] | None:
        opt_g, opt_d = self.optimizers["net"], self.optimizers["disc"]
        target = self.target(batch["hr"])

        # Generator: the discriminator only passes gradients through to the generated images.
        self.disc.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with self.autocast():
            sr = self.sr_forward(self.forward_net, batch["lr"])
            g_terms = self.generator_losses(sr, target)
        if not self.all_finite(g_terms["loss"]):
            self.disc.requires_grad_(True)
            return None
        self._backward(g_terms["loss"])

        # Discriminator: real and generated patches in separate passes, each with its backward.
        self.disc.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        d_terms: dict[str, Tensor] = {}
        fake = sr.detach()
        for kind, images, label in (("real", target, 1.0), ("fake", fake, 0.0)):
            with self.autocast():
                logits = self.forward_disc(images).float()
                loss = self.criteria["adversarial"](logits, torch.full_like(logits, label))
            self._backward(loss)
            d_terms[f"d_loss_{kind}"] = loss.detach()
            d_terms[f"d_{kind}"] = torch.sigmoid(logits.detach()).mean()  # D's belief that these patches are real
        d_loss = d_terms["d_loss_real"] + d_terms["d_loss_fake"]
        if not self.all_finite(d_loss):
            opt_g.zero_grad(set_to_none=True)
            opt_d.zero_grad(set_to_none=True)
            return None

        self._step(opt_g, self.net)
        self._step(opt_d, self.disc)
        if self.scaler is not None:
            self.scaler.update()  # once per iteration, after every optimiser stepped
        metrics = {k: float(v.detach()) for k, v in g_terms.items()}
        metrics["d_loss"] = float(d_loss)
        metrics.update({k: float(v) for k, v in d_terms.items() if not k.startswith("d_loss_")})
        return metrics

    # ---- helpers -----------------------------------------------------------------------------------------------

    def _backward(self, loss: Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _step(self, opt: torch.optim.Optimizer, model: nn.Module) -> None:
        """Optional gradient clipping (``train.clip_grad``, both networks), then the step (through the GradScaler)."""
        clip = self.cfg["train"]["clip_grad"]
        if self.scaler is not None:
            if clip:
                self.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
            self.scaler.step(opt)
            return
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
        opt.step()

    def _wrap_discriminator(self, disc: nn.Module) -> nn.Module:
        """DistributedDataParallel for the discriminator's own updates (the generator's pass uses the bare module)."""
        disc.train()
        if not self.dist.enabled:
            return disc
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(disc, device_ids=ids)
