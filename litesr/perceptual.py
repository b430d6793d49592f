"""Perceptual losses for GAN-style SR training: VGG19 features (content loss), total variation, Gram (texture) loss.

The VGG19 weights are never downloaded: the user passes torchvision's ImageNet state dict as a file
(``vgg19-dcbb9e9d.pth``, or any file whose keys are ``features.N.weight``/``features.N.bias``; ``classifier.*`` keys are
ignored). Layers are named as in the papers: ``conv5_4`` is the 4th convolution of block 5 before its ReLU, ``relu5_4``
after it (SRGAN's "VGG54"), ``pool4`` the 4th max-pool. ESRGAN uses ``conv5_4`` (features before activation).

    >>> loss = PerceptualLoss("vgg19-dcbb9e9d.pth", {"relu5_4": 1.0})       # SRGAN content loss on [0, 1] RGB
    >>> value = loss(sr, hr)

``perceptual``, ``texture`` and ``tv`` are also registered with :func:`litesr.losses.register_loss` (once this module
is imported), so a training config can name them: ``{type: perceptual, weight: 1.0, vgg_weights: vgg19.pth}``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .checkpoint import load_state_dict
from .errors import CheckpointError, ConfigError
from .loss_registry import register_loss

# torchvision's vgg19 ``features``: channels of each 3x3 conv, "M" for a 2x2 max-pool.
VGG19_LAYOUT: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                                       512, 512, 512, 512, "M", 512, 512, 512, 512, "M")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _layer_names() -> list[str]:
    names: list[str] = []
    block, index = 1, 0
    for item in VGG19_LAYOUT:
        if item == "M":
            names.append(f"pool{block}")
            block, index = block + 1, 0
        else:
            index += 1
            names += [f"conv{block}_{index}", f"relu{block}_{index}"]
    return names


# layer name -> its index in torchvision's ``vgg19().features`` (conv1_1: 0, relu1_1: 1, ..., relu5_4: 35, pool5: 36)
VGG19_LAYERS: dict[str, int] = {name: i for i, name in enumerate(_layer_names())}


def build_vgg19_features(depth: int = len(VGG19_LAYERS)) -> nn.Sequential:
    """The first ``depth`` layers of torchvision's ``vgg19().features``, same indices (randomly initialised).

    ReLUs are not in-place, so a conv output collected as a feature is not overwritten by the ReLU after it.
    """
    layers: list[nn.Module] = []
    channels = 3
    for item in VGG19_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU()]
            channels = int(item)
    return nn.Sequential(*layers[:depth])


def _check_layers(layers: Sequence[str], source: str) -> list[str]:
    if not layers:
        raise ConfigError(f"{source}: no VGG19 layer given (e.g. relu5_4)")
    for name in layers:
        if name not in VGG19_LAYERS:
            close = difflib.get_close_matches(name, list(VGG19_LAYERS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{source}: unknown VGG19 layer {name!r}{hint}; "
                              "layers are conv1_1 .. relu5_4, pool1 .. pool5")
    return list(layers)


def load_vgg19_weights(source: str | os.PathLike | Mapping[str, Tensor], depth: int) -> dict[str, Tensor]:
    """The ``features.N.*`` tensors of a VGG19 state dict for the first ``depth`` layers, checked for shape.

    ``source`` is a file (torchvision's ``vgg19-dcbb9e9d.pth``, a safetensors copy, a wrapped checkpoint) or a state
    dict. Keys without the ``features.`` prefix (a saved ``vgg.features``) are accepted.
    """
    if isinstance(source, Mapping):
        state_dict, where = dict(source), "VGG19 state dict"
    else:
        path = Path(source)
        if not path.is_file():
            raise CheckpointError(f"{path}: VGG19 weights not found; perceptual losses need torchvision's ImageNet "
                                  "VGG19 state dict (vgg19-dcbb9e9d.pth) as a local file (litesr downloads nothing)")
        state_dict, where = load_state_dict(path), str(path)
    if not any(k.startswith("features.") for k in state_dict):
        state_dict = {f"features.{k}": v for k, v in state_dict.items()}
    expected = build_vgg19_features(depth)
    wanted = {f"features.{k}": tuple(v.shape) for k, v in expected.state_dict().items()}
    missing = [k for k in wanted if k not in state_dict]
    wrong = [k for k in wanted if k in state_dict and tuple(state_dict[k].shape) != wanted[k]]
    if missing or wrong:
        problem = (f"{len(missing)} tensors missing (e.g. {', '.join(missing[:3])})" if missing else
                   f"{wrong[0]} has shape {tuple(state_dict[wrong[0]].shape)}, VGG19 has {wanted[wrong[0]]}")
        raise CheckpointError(f"{where}: not a torchvision VGG19 state dict: {problem}")
    return {k: state_dict[k] for k in wanted}


class VGGFeatureExtractor(nn.Module):
    """Frozen VGG19 features at named layers: ``extractor(x)["relu5_4"]``.

    ``x`` is RGB in [0, ``input_range``]; it is scaled to [0, 1] and normalised with the ImageNet mean and std (the
    statistics torchvision's VGG19 was trained with) unless ``normalize=False``. Only the layers up to the deepest one
    asked for are built. The state dict keys are torchvision's (``features.N.weight``).
    """

    def __init__(self, weights: str | os.PathLike | Mapping[str, Tensor], layers: Sequence[str] = ("relu5_4",), *,
                 input_range: float = 1.0, normalize: bool = True) -> None:
        super().__init__()
        self.layers = _check_layers(layers, "VGGFeatureExtractor")
        depth = max(VGG19_LAYERS[name] for name in self.layers) + 1
        self.features = build_vgg19_features(depth)
        self.load_state_dict(load_vgg19_weights(weights, depth))
        self.input_range = input_range
        self.normalize = normalize
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.input_range != 1.0:
            x = x / self.input_range
        if self.normalize:
            x = (x - self.mean) / self.std
        wanted = {VGG19_LAYERS[name]: name for name in self.layers}
        out: dict[str, Tensor] = {}
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in wanted:
                out[wanted[index]] = x
        return out


def feature_criterion(name: str) -> nn.Module:
    """The distance between feature maps a perceptual loss uses: ``mse`` (``l2``) or ``l1``."""
    criteria = {"mse": nn.MSELoss, "l2": nn.MSELoss, "l1": nn.L1Loss}
    if name not in criteria:
        raise ConfigError(f"unknown feature criterion {name!r}; use one of {', '.join(criteria)}")
    return criteria[name]()


@register_loss("perceptual")
class PerceptualLoss(nn.Module):
    """Content loss: weighted distance between VGG19 features of prediction and target (SRGAN: MSE on ``relu5_4``).

    ``feature_scale`` multiplies the features first (SRGAN rescales its VGG losses by 1/12.75, for its [0, 255]
    Caffe-style features). The target's features are computed without gradient.
    """

    def __init__(self, vgg_weights: str, layer_weights: Mapping[str, float] | None = None, criterion: str = "mse",
                 feature_scale: float = 1.0, input_range: float = 1.0, normalize: bool = True) -> None:
        super().__init__()
        self.layer_weights = dict(layer_weights or {"relu5_4": 1.0})
        self.extractor = VGGFeatureExtractor(vgg_weights, list(self.layer_weights), input_range=input_range,
                                             normalize=normalize)
        self.criterion = feature_criterion(criterion)
        self.feature_scale = feature_scale

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        pred_features = self.extractor(pred)
        with torch.no_grad():
            target_features = self.extractor(target)
        return feature_distance(pred_features, target_features, self.layer_weights, self.criterion,
                                self.feature_scale)


def feature_distance(pred_features: Mapping[str, Tensor], target_features: Mapping[str, Tensor],
                     layer_weights: Mapping[str, float], criterion: nn.Module, feature_scale: float = 1.0) -> Tensor:
    """Sum over layers of ``weight * criterion(scale * pred, scale * target)``: the perceptual term of every trainer."""
    first = next(iter(pred_features.values()))
    total = first.new_zeros((), dtype=torch.float32)
    for name, weight in layer_weights.items():
        total = total + weight * criterion(pred_features[name].float() * feature_scale,
                                           target_features[name].float() * feature_scale)
    return total


def tv_loss(x: Tensor, power: float = 1.0) -> Tensor:
    """Total variation of a (B, C, H, W) batch: mean |difference|^power of vertical plus of horizontal neighbours."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs()
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs()
    if power != 1.0:
        dh, dw = dh.pow(power), dw.pow(power)
    return dh.mean() + dw.mean()


def gram_matrix(features: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, C, C) channel correlations, divided by C * H * W."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def _patches(features: Tensor, patch_size: int) -> Tensor:
    """Non-overlapping ``patch_size`` patches as a batch: (B, C, H, W) -> (B * nH * nW, C, p, p); edges cut off."""
    b, c, h, w = features.shape
    if h < patch_size or w < patch_size:
        raise ValueError(f"texture loss patches of {patch_size} do not fit features of {h}x{w}")
    nh, nw = h // patch_size, w // patch_size
    x = features[..., : nh * patch_size, : nw * patch_size]
    x = x.reshape(b, c, nh, patch_size, nw, patch_size).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * nh * nw, c, patch_size, patch_size)


def texture_loss(pred: Tensor | Mapping[str, Tensor], target: Tensor | Mapping[str, Tensor], *,
                 patch_size: int | None = None, layer_weights: Mapping[str, float] | None = None) -> Tensor:
    """Texture (style) loss: MSE between Gram matrices of prediction and target features.

    ``pred``/``target`` are feature maps, or dicts of them (a :class:`VGGFeatureExtractor`'s output; summed with
    ``layer_weights``, 1 each by default). ``patch_size`` matches Gram matrices per non-overlapping patch instead of
    per image (EnhanceNet computes its texture loss on 16x16 patches).
    """
    if isinstance(pred, Tensor) and isinstance(target, Tensor):
        pred, target = {"features": pred}, {"features": target}
    if not isinstance(pred, Mapping) or not isinstance(target, Mapping):
        raise TypeError("texture_loss takes two tensors or two dicts of tensors")
    weights = layer_weights or dict.fromkeys(pred, 1.0)
    total = next(iter(pred.values())).new_zeros(())
    for name, weight in weights.items():
        p, t = pred[name], target[name]
        if patch_size is not None:
            p, t = _patches(p, patch_size), _patches(t, patch_size)
        total = total + weight * F.mse_loss(gram_matrix(p), gram_matrix(t))
    return total


@register_loss("texture")
class TextureLoss(nn.Module):
    """Gram-matrix texture loss on VGG19 features (default layers conv1_1, conv2_1, conv3_1; optional patches)."""

    def __init__(self, vgg_weights: str, layer_weights: Mapping[str, float] | None = None,
                 patch_size: int | None = None, input_range: float = 1.0) -> None:
        super().__init__()
        self.layer_weights = dict(layer_weights or {"conv1_1": 1.0, "conv2_1": 1.0, "conv3_1": 1.0})
        self.extractor = VGGFeatureExtractor(vgg_weights, list(self.layer_weights), input_range=input_range)
        self.patch_size = patch_size

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        with torch.no_grad():
            target_features = self.extractor(target)
        return texture_loss(self.extractor(pred), target_features, patch_size=self.patch_size,
                            layer_weights=self.layer_weights)


@register_loss("tv")
class TVLoss(nn.Module):
    """Total-variation regulariser of the prediction (the target is ignored)."""

    def __init__(self, power: float = 1.0) -> None:
        super().__init__()
        self.power = power

    def forward(self, pred: Tensor, target: Tensor | None = None) -> Tensor:
        return tv_loss(pred, self.power)
