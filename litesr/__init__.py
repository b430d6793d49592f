"""litesr: lightweight single-image super-resolution.

>>> import litesr
>>> model = litesr.create_model("imdn", scale=4)
>>> model = litesr.load_model("IMDN_x4.pth")          # architecture and config read off the tensor shapes
>>> sr = litesr.upscale_image(model, litesr.read_image("photo.png"), tile=256)
>>> litesr.write_image("photo_x4.png", sr)
"""

from __future__ import annotations

from . import (
    metric_losses,  # noqa: F401  (registers the gmsd and lpips losses)
    perceptual,  # noqa: F401  (registers the perceptual, texture and tv losses with losses.build_loss)
)
from .checkpoint import load_state_dict, save_safetensors
from .descriptor import ModelDescriptor, describe
from .detect import detect_architecture, load_model
from .errors import CheckpointError, ConfigError, DatasetError, ImageError, LitesrError
from .images import Image, read_image, write_image
from .inference import upscale_image, upscale_tensor
from .registry import count_parameters, create_model, get_variant, list_models, register_arch, register_variant

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetError",
    "Image",
    "ImageError",
    "LitesrError",
    "ModelDescriptor",
    "count_parameters",
    "create_model",
    "describe",
    "detect_architecture",
    "get_variant",
    "list_models",
    "load_model",
    "load_state_dict",
    "read_image",
    "register_arch",
    "register_variant",
    "save_safetensors",
    "upscale_image",
    "upscale_tensor",
    "write_image",
]
