"""What litesr knows about a model, in one place: :class:`ModelDescriptor` and :func:`describe`.

Architectures declare their contract as class (or instance) attributes of :class:`~litesr.archs.base.SRModel`
(``input_range``, ``color_space``, ``luma_uint8``, ``pad_multiple``, ``scale``, ``multi_scale``, ``to_deploy`` ...)
and layers that squeeze the whole feature map declare ``whole_image_statistics``. This module is the only reader of
those declarations: the engine (inference, tiling, evaluation, training, export, profiling) asks :func:`describe`
instead of reading attributes itself, so a new architecture needs nothing but its own module.

The model's identity (registered architecture, variant, constructor options) is recorded by
:func:`~litesr.registry.create_model` and :func:`~litesr.detect.load_model` with :func:`bind` in a weak table keyed
by the module, not patched onto it; :func:`copy_model` copies a model with its identity. Wrappers that run another
model (bf16 autocast, ONNX Runtime) are bound to that model's descriptor with :func:`bind_contract`.

    model = litesr.create_model("imdn", scale=4)
    d = litesr.describe(model)       # ModelDescriptor(arch='imdn', variant='imdn', scale=4, input_range=255.0, ...)
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from torch import nn

ColorSpace = Literal["rgb", "y"]


@dataclass(frozen=True)
class ModelDescriptor:
    """Everything the engine needs to feed, tile, cast, save and name a model."""

    arch: str  # registered architecture (``imdn``), or the class name of a module litesr did not build
    variant: str | None  # registered variant (``imdn_rtc``) where known
    scale: int  # the factor ``forward`` upscales by now
    config: Mapping[str, Any] = field(default_factory=dict)  # constructor options (with ``scale``)
    input_range: float = 1.0  # the model reads and writes pixels in [0, input_range]
    color_space: ColorSpace = "rgb"  # "y": one BT.601 luma channel in and out
    luma_uint8: bool = True  # Y models: luma rounded to 8-bit levels first (MATLAB rgb2ycbcr of uint8)
    size_multiple: int = 1  # input H and W must be multiples (the engine reflect-pads and crops back)
    multi_scale: bool = False  # ``set_scale`` switches between ``scales``
    scales: tuple[int, ...] = ()
    deploy_form: Literal["none", "trainable", "deployed"] = "none"  # re-parameterisable (ECBSR, SPAN ...)
    # Precisions that keep the model's outputs (near) fp32 quality; the engine refuses the others with a reason.
    safe_precisions: tuple[str, ...] = ("fp32", "bf16", "fp16")
    # Qualified names of layers that squeeze the whole feature map (channel attention): tiled inference feeds
    # them whole-image statistics (see litesr.tiling). Declared by the layers themselves.
    whole_image_layers: tuple[str, ...] = ()
    preferred_param_key: str | None = None  # BasicSR files: ``params`` or ``params_ema`` to prefer

    @property
    def in_channels(self) -> int:
        return 1 if self.color_space == "y" else 3

    @property
    def out_channels(self) -> int:
        return self.in_channels

    @property
    def label(self) -> str:
        """A short name for logs and tables: the variant where known, else the architecture."""
        return self.variant or self.arch

    def metadata(self) -> dict[str, Any]:
        """The identity saved next to weights (safetensors metadata: ``arch``, ``config``), read back by load_model."""
        return {"arch": self.arch, "config": {"scale": self.scale, **{k: v for k, v in self.config.items()
                                                                      if k != "scale"}}}


@dataclass(frozen=True)
class _Identity:
    arch: str
    variant: str | None
    config: Mapping[str, Any]


# module -> identity (built by litesr) or a full descriptor (wrappers bound to the model they run)
_BOUND: weakref.WeakKeyDictionary[nn.Module, _Identity | ModelDescriptor] = weakref.WeakKeyDictionary()


def bind(model: nn.Module, arch: str, config: Mapping[str, Any], variant: str | None = None) -> nn.Module:
    """Record ``model``'s identity (what :func:`~litesr.registry.create_model` built it as); returns ``model``."""
    _BOUND[model] = _Identity(arch, variant, dict(config))
    return model


def bind_contract(wrapper: nn.Module, descriptor: ModelDescriptor) -> nn.Module:
    """Give a wrapper module (autocast, ONNX Runtime ...) the descriptor of the model it runs; returns ``wrapper``."""
    _BOUND[wrapper] = descriptor
    return wrapper


def copy_model(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)`` with its identity (the weak table does not follow copies by itself)."""
    clone = copy.deepcopy(model)
    carry_identity(model, clone)
    return clone


def meta_copy(model: nn.Module) -> nn.Module:
    """The same architecture on the meta device (no memory, no compute), with its identity: counting is free."""
    if not any(p.device.type != "meta" for p in model.parameters()):
        return model
    return carry_identity(model, copy.deepcopy(model).to("meta"))


def carry_identity(source: nn.Module, target: nn.Module) -> nn.Module:
    """Give ``target`` (a copy or transformed form of ``source``, e.g. its deploy form) ``source``'s identity."""
    entry = _BOUND.get(source)
    if entry is not None and target not in _BOUND:
        _BOUND[target] = entry
    return target


def is_bound(model: nn.Module) -> bool:
    return model in _BOUND


def describe(model: nn.Module) -> ModelDescriptor:
    """The descriptor of ``model``: its identity plus the contract its class declares, read now (the scale of a
    multi-scale model follows ``set_scale``). Plain modules get the defaults (RGB in [0, 1], any size)."""
    entry = _BOUND.get(model)
    if isinstance(entry, ModelDescriptor):
        return entry
    identity = entry or _Identity(type(model).__name__, None, {})
    scale = int(getattr(model, "scale", identity.config.get("scale", 1)))
    if callable(getattr(model, "to_deploy", None)):
        deploy_form = "deployed" if getattr(model, "deploy", False) else "trainable"
    else:
        deploy_form = "none"
    return ModelDescriptor(
        arch=identity.arch,
        variant=identity.variant,
        scale=scale,
        config={**identity.config, "scale": scale} if identity.config else {},
        input_range=float(getattr(model, "input_range", 1.0)),
        color_space=str(getattr(model, "color_space", "rgb")),  # type: ignore[arg-type]
        luma_uint8=bool(getattr(model, "luma_uint8", True)),
        size_multiple=int(getattr(model, "pad_multiple", 1)),
        multi_scale=bool(getattr(model, "multi_scale", False)),
        scales=tuple(int(s) for s in (getattr(model, "scales", None) or (scale,))),
        deploy_form=deploy_form,  # type: ignore[arg-type]
        safe_precisions=tuple(getattr(model, "safe_precisions", ("fp32", "bf16", "fp16"))),
        whole_image_layers=tuple(name for name, _ in whole_image_layers(model)),
        preferred_param_key=getattr(model, "preferred_param_key", None),
    )


def with_scale(descriptor: ModelDescriptor, scale: int) -> ModelDescriptor:
    return replace(descriptor, scale=scale, config={**descriptor.config, "scale": scale})


def whole_image_statistics(layer: nn.Module) -> str | None:
    """What a layer squeezes its whole input to (``"mean"``, ``"mean+std"``), as its class declares; None for others.

    Honoured only when the class that declares it also defines the ``forward`` in use: a subclass that computes its
    squeeze otherwise must declare again."""
    for owner in type(layer).__mro__:
        if "whole_image_statistics" in vars(owner):
            kind = vars(owner)["whole_image_statistics"]
            return kind if kind and type(layer).forward is owner.forward else None
    return None


def whole_image_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, layer) of every layer in ``model`` that declares whole-image statistics."""
    return [(name, m) for name, m in model.named_modules() if whole_image_statistics(m) is not None]


def is_multi_scale_builder(builder: Any) -> bool:
    """Whether an architecture class switches scales (``multi_scale = True``), without building it."""
    return bool(getattr(builder, "multi_scale", False))


def model_attribute(model: nn.Module, name: str, default: Any = None) -> Any:
    """A model-specific declaration outside the common contract (IPT's ``tasks``, MDSR's ``scales``): read here so
    that the rest of litesr never reads contract fields by hand."""
    return getattr(model, name, default)
