"""Bicubic interpolation as a zero-parameter model: the baseline row of every SR table."""

from __future__ import annotations

from torch import Tensor

from ..imresize import imresize
from ..registry import register_arch
from .base import SRModel


@register_arch("bicubic", scales=(2, 3, 4, 8), paper="MATLAB imresize (Keys cubic, a = -0.5)")
class Bicubic(SRModel):
    """MATLAB-compatible bicubic upscaling (no parameters)."""

    multi_scale = True

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, x: Tensor, scale: int | None = None) -> Tensor:
        return imresize(x, scale=scale or self.scale)
