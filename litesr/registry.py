"""Model registry: named architectures and variants, ``create_model`` and ``list_models`` (timm-style).

An architecture module registers its class once with :func:`register_arch` (how to build it, which scales, how to
recognise its checkpoints) and any number of named variants with :func:`register_variant` (a paper configuration,
with its published parameter count and, where litesr ships them, pretrained weights).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from .descriptor import bind
from .errors import ConfigError
from .registry_base import Registry, normalize_name

StateDict = Mapping[str, Tensor]
Detector = Callable[[StateDict], "dict[str, Any] | None"]


@dataclass(frozen=True)
class ArchSpec:
    """One architecture: the class that builds it and the function that reads its config off a state dict."""

    name: str
    builder: Callable[..., nn.Module]
    scales: tuple[int, ...]
    detect: Detector | None
    paper: str
    description: str
    # A small configuration (a few K parameters) for fast tests: training smoke tests, odd-size sweeps, round trips.
    tiny: dict[str, Any]


@dataclass(frozen=True)
class Variant:
    """A named configuration of an architecture (``rlfn_s``, ``swinir_light`` ...)."""

    name: str
    arch: str
    config: dict[str, Any]
    description: str
    # Published parameter count per scale (the number the paper's table prints), for tests and the leaderboard.
    paper_params: dict[int, int] = field(default_factory=dict)
    # Weights litesr ships in ``litesr/weights``: scale -> file name.
    pretrained: dict[int, str] = field(default_factory=dict)
    # Published PSNR/SSIM (Y channel) per scale and test set, {2: {"Set5": (38.00, 0.9605), ...}}, and published
    # Mult-Adds in G for a 1280x720 output per scale; the description names the source. For the leaderboard.
    paper_psnr: dict[int, dict[str, tuple[float, float]]] = field(default_factory=dict)
    paper_macs: dict[int, float] = field(default_factory=dict)


_ARCHS: Registry[ArchSpec] = Registry("architecture")
_VARIANTS: Registry[Variant] = Registry("model")


def register_arch(
    name: str,
    *,
    scales: tuple[int, ...] = (2, 3, 4),
    detect: Detector | None = None,
    paper: str = "",
    description: str = "",
    tiny: dict[str, Any] | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: register an architecture under ``name`` (also a variant with the class defaults)."""

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _ARCHS:
            raise RuntimeError(f"architecture {name!r} registered twice")
        if "scale" not in inspect.signature(builder).parameters:
            raise RuntimeError(f"{builder.__name__} must take a `scale` argument")
        doc = description or (inspect.getdoc(builder) or "").split("\n")[0]
        _ARCHS.register(name, ArchSpec(name, builder, tuple(scales), detect, paper, doc, dict(tiny or {})))
        if name not in _VARIANTS:
            _VARIANTS.register(name, Variant(name, name, {}, doc))
        return builder

    return decorator


def register_variant(
    name: str,
    arch: str,
    config: dict[str, Any] | None = None,
    *,
    description: str = "",
    paper_params: dict[int, int] | None = None,
    pretrained: dict[int, str] | None = None,
    paper_psnr: dict[int, dict[str, tuple[float, float]]] | None = None,
    paper_macs: dict[int, float] | None = None,
) -> None:
    """Register a named configuration of ``arch``. Re-registering the arch's own name updates its metadata."""
    if arch not in _ARCHS:
        raise RuntimeError(f"variant {name!r} names unknown architecture {arch!r}")
    if name in _VARIANTS and name != arch:
        raise RuntimeError(f"variant {name!r} registered twice")
    _check_config(_ARCHS[arch], config or {}, name)
    _VARIANTS.register(name, Variant(
        name,
        arch,
        dict(config or {}),
        description or _ARCHS[arch].description,
        dict(paper_params or {}),
        dict(pretrained or {}),
        {int(k): dict(v) for k, v in (paper_psnr or {}).items()},
        dict(paper_macs or {}),
    ), replace=True)


def _ensure_loaded() -> None:
    from . import archs  # noqa: F401  (importing the package registers every architecture module)


def list_models(pattern: str = "*", *, archs_only: bool = False) -> list[str]:
    """Names accepted by :func:`create_model`, sorted; ``pattern`` is a shell-style filter (``"swinir*"``)."""
    import fnmatch

    _ensure_loaded()
    names = _ARCHS.names() if archs_only else _VARIANTS.names()
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def get_variant(name: str) -> Variant:
    _ensure_loaded()
    variant = _VARIANTS.find(name)
    if variant is None:
        close = difflib.get_close_matches(normalize_name(name), _VARIANTS.names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; `litesr models` lists them"
        raise ConfigError(f"unknown model {name!r}{hint}")
    return variant


def get_arch(name: str) -> ArchSpec:
    _ensure_loaded()
    return _ARCHS.get(name)


def all_archs() -> dict[str, ArchSpec]:
    _ensure_loaded()
    return _ARCHS.as_dict()


def all_variants() -> dict[str, Variant]:
    _ensure_loaded()
    return _VARIANTS.as_dict()


def _check_config(spec: ArchSpec, config: Mapping[str, Any], who: str) -> None:
    """Refuse options the builder does not take, with a did-you-mean, instead of swallowing typos."""
    params = inspect.signature(spec.builder).parameters
    valid = [p for p in params if p not in ("self", "scale")]
    for key in config:
        if key == "scale" or key not in params:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{who}: unknown option {key!r} for architecture {spec.name!r}{hint}; valid options: {', '.join(valid)}"
            )


def create_model(name: str, scale: int | None = None, *, pretrained: bool = False, **config: Any) -> nn.Module:
    """Build a zoo model: ``create_model("imdn", scale=4)``, ``create_model("rlfn_s", scale=2, feature_channels=40)``.

    ``scale`` defaults to the variant's (or the architecture's first) scale. ``pretrained=True`` loads the weights
    litesr ships for that variant and scale.
    """
    variant = get_variant(name)
    spec = _ARCHS[variant.arch]
    merged = {**variant.config, **config}
    _check_config(spec, merged, name)
    if scale is None:
        scale = merged.pop("scale", None) or spec.scales[0]
    if scale not in spec.scales:
        raise ConfigError(f"{name} supports scales {', '.join(f'x{s}' for s in spec.scales)}, not x{scale}")
    model = spec.builder(scale=scale, **merged)
    bind(model, spec.name, {"scale": scale, **merged}, variant.name)
    if pretrained:
        from .checkpoint import load_pretrained

        load_pretrained(model, variant, scale)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
