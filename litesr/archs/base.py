"""The contract every zoo architecture declares, and the engine (eval, upscale, train) honours."""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import Tensor, nn


class SRModel(nn.Module):
    """Base class of litesr architectures.

    It adds no parameters (state-dict names stay those of the official code); it only declares how to feed the model:

    - ``input_range``: the model expects pixels in ``[0, input_range]`` (1.0 for most, 255.0 for RLFN/RFDN-style models)
      and returns the same range. The engine scales [0, 1] images to it and back, so nobody feeds a 255-model [0, 1].
    - ``color_space``: ``"rgb"`` (3 channels in and out) or ``"y"`` (the BT.601 luma channel only; the engine upsamples
      Cb/Cr with bicubic and recombines).
    - ``luma_uint8`` (Y models): the engine rounds the luma to 8-bit levels before the model sees it, as MATLAB
      ``rgb2ycbcr`` does for a uint8 image. The Y-channel models (SRCNN, VDSR, FSRCNN) were trained and evaluated on
      such Y planes; feeding them the unrounded luma moves Set5 by up to 0.3 dB at x4 for VDSR.
    - ``pad_multiple``: input height and width must be multiples of it; the engine reflect-pads and crops back.
      Models that pad internally (window attention) leave it at 1.
    - ``scale``: the upscaling factor of ``forward``. Multi-scale models (``multi_scale = True``) accept any of
      ``scales`` and switch with :meth:`set_scale` or ``forward(x, scale)``.
    """

    # Class defaults; an instance may override them when they depend on its configuration (e.g. FSRCNN RGB vs Y).
    input_range: float = 1.0
    color_space: Literal["rgb", "y"] = "rgb"
    luma_uint8: bool = True
    pad_multiple: int = 1
    multi_scale: ClassVar[bool] = False
    scale: int

    # Read-only views of litesr.describe(self), for code written against the attributes earlier versions patched on.
    @property
    def litesr_arch(self) -> str:
        from ..descriptor import describe

        return describe(self).arch

    @property
    def litesr_config(self) -> dict:
        from ..descriptor import describe

        return dict(describe(self).config)

    def set_scale(self, scale: int) -> None:
        if scale != self.scale and not self.multi_scale:
            raise ValueError(f"{type(self).__name__} is built for x{self.scale}, not x{scale}")
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
