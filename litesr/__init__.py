"""litesr: lightweight single-image super-resolution.

>>> import litesr
>>> model = litesr.create_model("imdn", scale=4)
>>> model = litesr.load_model("IMDN_x4.pth")          # architecture and config read off the tensor shapes
"""

from __future__ import annotations

from . import perceptual  # noqa: F401  (registers the perceptual, texture and tv losses with losses.build_loss)
from .checkpoint import load_state_dict, save_safetensors
from .detect import detect_architecture, load_model
from .errors import CheckpointError, ConfigError, DatasetError, ImageError, LitesrError
from .registry import count_parameters, create_model, get_variant, list_models, register_arch, register_variant

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "ImageError",
    "LitesrError",
    "count_parameters",
    "create_model",
    "detect_architecture",
    "get_variant",
    "list_models",
    "load_model",
    "load_state_dict",
    "register_arch",
    "register_variant",
    "save_safetensors",
]
