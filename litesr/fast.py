"""The fast path: a model made ready for inference on the hardware at hand, and I/O that never keeps it waiting.

:func:`prepare_model` folds re-parameterised branches into their deploy form (ECBSR, ETDS, SPAN: ``to_deploy()``),
moves the model, switches it to channels-last where reduced precision runs, and optionally compiles it
(``torch.compile`` with frozen weights) or hands it to ONNX Runtime (:class:`OnnxBackend`). Precision itself stays
an argument of :func:`litesr.inference.upscale_tensor`; what ``auto`` means is decided in :mod:`litesr.device`,
memory budgets in :mod:`litesr.memory`, the decode/compute/encode pipeline of folders in :mod:`litesr.pipeline`.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .archs.blocks import strictly_channels_last
from .descriptor import bind_contract, carry_identity, copy_model, describe, meta_copy
from .device import choose_precision
from .errors import ConfigError, LitesrError
from .forward import run_model

Backend = Literal["torch", "compile", "onnx", "openvino"]
BACKENDS: tuple[str, ...] = ("torch", "compile", "onnx", "openvino")


def auto_precision(device: str | torch.device = "cpu") -> str:
    """The precision ``auto`` means on ``device`` (the rule and its reasons: :func:`litesr.device.choose_precision`)."""
    return choose_precision("auto", device).precision


# ------------------------------------------------------------------------------------------------ model preparation


def fold_deploy(model: nn.Module) -> nn.Module:
    """The re-parameterised deploy form of ``model`` (same function, plain convolutions) where it has one
    (``to_deploy()``), as a new model; else ``model`` itself. The litesr metadata (arch, config) is carried over."""
    if describe(model).deploy_form != "trainable":
        return model
    folded = copy.deepcopy(model).to_deploy()  # a copy: some to_deploy() convert in place (SPAN)
    return carry_identity(model, folded).eval()


def prepare_model(
    model: nn.Module,
    *,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    backend: Backend = "torch",
    deploy: bool = True,
    channels_last: bool | None = None,
    onnx_path: str | os.PathLike | None = None,
    threads: int | None = None,
    fp32_ends: bool = True,
) -> nn.Module:
    """``model`` ready for fast inference, to pass to :func:`~litesr.inference.upscale_tensor` (or ``run_model``).

    - ``deploy``: fold re-parameterisable branches (:func:`fold_deploy`).
    - ``channels_last``: NHWC weights (default: when ``precision`` is not fp32, as oneDNN/cuDNN prefer it there).
    - with bf16/fp16 the parameters are stored in that type (:func:`cast_parameters`), so run the result under
      autocast (``upscale_tensor(..., precision=...)`` or :class:`Autocast`); ``fp32_ends``: the first layer (it
      reads the image) and the last (it writes it) stay in fp32 (:func:`keep_image_layers_fp32`): bf16 cannot even
      hold 8-bit pixel values exactly.
    - ``backend``: ``"torch"`` (eager), ``"compile"`` (``torch.compile`` with weights frozen as constants; the first
      call of each input size compiles, which takes a while) or ``"onnx"`` (exported with dynamic H/W and run by
      ONNX Runtime on CPU in fp32; ``onnx_path`` keeps the file, else a temporary one is used) or ``"openvino"``
      (the same ONNX file compiled by OpenVINO, fp32; the optional extra ``litesr[openvino]``). The measured choice
      among all of them (``--backend auto``) is :func:`litesr.backend_auto.prepare_fastest`.

    Returns a prepared copy in eval mode; ``model`` itself is left as it was.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r} (use {', '.join(BACKENDS)})")
    target = torch.device(device)
    original = model
    if deploy:
        model = fold_deploy(model)
    if model is original:
        model = copy_model(model)  # the caller's model stays as it was (device, layout, dtypes)
    model = model.eval()
    if backend in ("onnx", "openvino"):
        if target.type != "cpu" or precision != "fp32":
            raise ConfigError(f"the {backend} backend runs fp32 on the CPU; use --backend torch for bf16/fp16 or CUDA")
        runtime = OnnxBackend if backend == "onnx" else OpenVinoBackend
        return runtime.from_model(model, onnx_path, threads=threads)
    model = model.to(target)
    if channels_last if channels_last is not None else precision != "fp32":
        model = model.to(memory_format=torch.channels_last)
        use_nhwc_gelu(model)
        use_nhwc_reflect_padding(model)
    if precision != "fp32":
        cast_parameters(model, torch.bfloat16 if precision == "bf16" else torch.float16,
                        keep=keep_image_layers_fp32(model) if fp32_ends else [])
    if backend == "compile":
        # Freezing folds weights into the graph as constants, which lets inductor pre-pack them for oneDNN.
        compiled = torch.compile(model, options={"freezing": True})
        return bind_contract(compiled, describe(model))  # type: ignore[return-value]  # an OptimizedModule
    return model


class NHWCGELU(nn.GELU):
    """GELU run on the (N, H, W, C) view of a channels-last tensor: the same function (the vectorised kernel differs
    from the strided one in the last bits), but PyTorch's CPU kernel vectorises the dense view only (bf16 SSIU x4:
    GELU 2.7x faster, the whole model 13%)."""

    def forward(self, x: Tensor) -> Tensor:
        if strictly_channels_last(x):
            return F.gelu(x.permute(0, 2, 3, 1), approximate=self.approximate).permute(0, 3, 1, 2)
        return F.gelu(x, approximate=self.approximate)


def use_nhwc_gelu(model: nn.Module) -> int:
    """Swap every ``nn.GELU`` submodule of ``model`` for :class:`NHWCGELU` (in place); returns how many."""
    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.GELU:
                setattr(parent, name, NHWCGELU(approximate=child.approximate))
                swapped += 1
    return swapped


def reflect_pad_channels_last(x: Tensor, pad_h: int, pad_w: int) -> Tensor:
    """``F.pad(x, (pad_w, pad_w, pad_h, pad_h), mode="reflect")`` written into a channels-last buffer by slices:
    the same values, without the strided copy PyTorch's reflection kernel makes of a channels-last input."""
    b, c, h, w = x.shape
    out = torch.empty((b, c, h + 2 * pad_h, w + 2 * pad_w), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    out[:, :, pad_h : pad_h + h, pad_w : pad_w + w] = x
    for i in range(pad_h):  # rows first, then whole columns (the corners reflect both ways)
        out[:, :, pad_h - 1 - i, pad_w : pad_w + w] = x[:, :, i + 1]
        out[:, :, pad_h + h + i, pad_w : pad_w + w] = x[:, :, h - 2 - i]
    for j in range(pad_w):
        out[:, :, :, pad_w - 1 - j] = out[:, :, :, pad_w + 1 + j]
        out[:, :, :, pad_w + w + j] = out[:, :, :, pad_w + w - 2 - j]
    return out


class NHWCReflectConv2d(nn.Conv2d):
    """A reflect-padded ``nn.Conv2d`` that pads channels-last inputs with :func:`reflect_pad_channels_last` (SSIU's
    depthwise convs: bf16 x2 189 -> 176 ms); other inputs go the usual way. Same parameters and state-dict names."""

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        pad_h, pad_w = self.padding if isinstance(self.padding, tuple) else (0, 0)
        fits = pad_h < x.shape[-2] and pad_w < x.shape[-1]  # reflect needs pad < size; else the usual error
        if self.padding_mode == "reflect" and strictly_channels_last(x) and fits and not torch.compiler.is_compiling():
            padded = reflect_pad_channels_last(x, pad_h, pad_w)
            return F.conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)
        return super()._conv_forward(x, weight, bias)


def use_nhwc_reflect_padding(model: nn.Module) -> int:
    """Turn every reflect-padded ``nn.Conv2d`` of ``model`` into :class:`NHWCReflectConv2d` (in place); returns how
    many."""
    swapped = 0
    for module in model.modules():
        if type(module) is nn.Conv2d and module.padding_mode == "reflect":
            module.__class__ = NHWCReflectConv2d
            swapped += 1
    return swapped


class _FullPrecision:
    """A module's forward run with autocast off, on float32 inputs (installed on the instance; weights untouched).
    ``cast_output``: hand the result on in the autocast dtype, as the layer would have, so that the layers after it
    do not run their residual sums in fp32 and convert at every step."""

    def __init__(self, forward: Callable[..., Tensor], cast_output: bool = False) -> None:
        self.forward = forward
        self.cast_output = cast_output

    def __call__(self, *args: Any, **kwargs: Any) -> Tensor:
        device = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
        autocast_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        with torch.autocast(device_type=device, enabled=False):
            out = self.forward(*(a.float() if isinstance(a, Tensor) else a for a in args), **kwargs)
        return out.to(autocast_dtype) if self.cast_output and autocast_dtype is not None else out


def image_layers(model: nn.Module, sample_hw: tuple[int, int] = (16, 16)) -> list[str]:
    """Names of the first and the last convolution/linear layer a forward pass calls: the layers that read the image
    and write the result. Found with hooks on a meta-device copy (on the CPU for data-dependent models)."""
    for device in ("meta", "cpu"):
        net = meta_copy(model) if device == "meta" else copy_model(model).float().cpu()
        try:
            order = _layer_call_order(net.eval(), torch.zeros(1, 3, *sample_hw, device=device))
        except (NotImplementedError, RuntimeError):
            continue
        return [order[0], order[-1]] if order else []
    return []


def _layer_call_order(net: nn.Module, x: Tensor) -> list[str]:
    from .archs.blocks import MeanShift

    # Mean shifts are fixed 1x1 convs that stay in image space: the layers after/before them face the image.
    names = {module: name for name, module in net.named_modules()
             if isinstance(module, nn.Conv2d | nn.ConvTranspose2d | nn.Linear) and not isinstance(module, MeanShift)}
    order: list[str] = []
    handles = [module.register_forward_pre_hook(lambda m, _: order.append(names[m])) for module in names]
    try:
        with torch.no_grad():
            if describe(net).color_space == "y":
                net(x[:, :1])
            else:
                run_model(net, x)
    finally:
        for handle in handles:
            handle.remove()
    return order


def keep_image_layers_fp32(model: nn.Module) -> list[str]:
    """Run the first and last layer of ``model`` in fp32 under autocast (see :func:`image_layers`); returns their
    names. In bf16 an 8-bit pixel is rounded to 1/512 (0.5/255), and so is every output value: IMDN x2 lost 0.028 dB
    of Set5 PSNR in plain bf16, 0.002 dB with these two layers in fp32 (the first one's result handed on in bf16,
    which keeps the speed of plain bf16; kept in fp32 it costs 10% for another 0.002 dB)."""
    names = image_layers(model)
    for index, name in enumerate(names):
        module = model.get_submodule(name)
        if not isinstance(module.__dict__.get("forward"), _FullPrecision):
            cast = index == 0 and len(names) > 1
            module.forward = _FullPrecision(module.forward, cast_output=cast)  # type: ignore[method-assign]
    return names


def cast_parameters(model: nn.Module, dtype: torch.dtype, keep: Iterable[str] = ()) -> None:
    """Store every floating-point parameter of ``model`` in ``dtype``, except those of the layers named in ``keep``.

    Autocast only casts the inputs of convolutions and matrix products; a parameter used elsewhere in fp32 (a
    LayerNorm weight, a relative-position-bias table) promotes the activations it touches back to fp32, and every
    layer after it converts them again: SwinIR-light x4 ran 1.36x faster than fp32 in bf16 with fp32 parameters,
    2.07x with bf16 parameters. Buffers (image means, index tables) stay as they are. Run the result under autocast.
    """
    kept = {id(p) for name in keep for p in model.get_submodule(name).parameters()}
    for parameter in model.parameters():
        if parameter.is_floating_point() and id(parameter) not in kept:
            parameter.data = parameter.data.to(dtype)


class Autocast(nn.Module):
    """``model`` run under autocast to ``precision`` with channels-last input, returning float32: a drop-in for code
    that calls a model directly (:func:`litesr.evaluate.evaluate`, ``run_model``). Declares the model's contract."""

    def __init__(self, model: nn.Module, precision: str = "bf16") -> None:
        super().__init__()
        if precision not in ("bf16", "fp16"):
            raise ConfigError(f"Autocast runs bf16 or fp16, not {precision!r}")
        self.model = model
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        bind_contract(self, describe(model))

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type=x.device.type, dtype=self.dtype):
            return self.model(x.contiguous(memory_format=torch.channels_last)).float()

    def set_scale(self, scale: int) -> None:
        self.model.set_scale(scale)
        bind_contract(self, describe(self.model))


class OnnxBackend(nn.Module):
    """An ONNX Runtime session dressed as a litesr model: the model's contract (input range, padding, clamping to
    [0, 1]) is baked into the graph, so it declares range 1, RGB and no size multiple, and keeps the scale.

    Channel-attention layers run inside the graph, so tiled inference cannot give them whole-image statistics as the
    torch path does: tiles of IMDN-like models differ from the untiled result by a few 1/255 at most.
    """

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1

    def __init__(self, path: str | os.PathLike, scale: int, *, threads: int | None = None) -> None:
        super().__init__()
        self.scale = scale
        self.path = Path(path)
        self.session = self.open_session(path, threads)

    @staticmethod
    def open_session(path: str | os.PathLike, threads: int | None) -> Callable[[Tensor], Tensor]:
        from .export import OnnxModel

        return OnnxModel(path, threads=threads)

    @classmethod
    def from_model(cls, model: nn.Module, path: str | os.PathLike | None = None, *,
                   threads: int | None = None) -> OnnxBackend:
        from .export import export_onnx

        scale = describe(model).scale
        folder = None
        if path is None:
            folder = Path(tempfile.mkdtemp(prefix="litesr-onnx-"))
            path = folder / f"{describe(model).arch}_x{scale}.onnx"
        try:
            export_onnx(model.cpu().float(), path)
            backend = cls(path, scale, threads=threads)
        except BaseException:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        if folder is not None:  # the session has read the file; the folder goes with the backend
            weakref.finalize(backend, shutil.rmtree, folder, True)
        return carry_identity(model, backend)  # type: ignore[return-value]

    def forward(self, x: Tensor) -> Tensor:
        return self.session(x.float()).to(x.device)

    def set_scale(self, scale: int) -> None:
        if scale != self.scale:
            raise ValueError(f"this ONNX model is built for x{self.scale}, not x{scale}")


class OpenVinoBackend(OnnxBackend):
    """:class:`OnnxBackend` with the exported file compiled by OpenVINO instead of ONNX Runtime (fp32 on the CPU)."""

    @staticmethod
    def open_session(path: str | os.PathLike, threads: int | None) -> Callable[[Tensor], Tensor]:
        from .export import OpenVinoModel

        return OpenVinoModel(path, threads=threads)


def check_backend_available(backend: str) -> None:
    """A one-line error before any work when the chosen backend cannot run here (``auto`` only measures the backends
    that are installed, so it always can)."""
    if backend == "openvino":
        from .export import OPENVINO_MISSING, openvino_available

        if not openvino_available():
            raise LitesrError(OPENVINO_MISSING)
        check_backend_available("onnx")  # the model reaches OpenVINO as an ONNX export
    if backend == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise LitesrError(f"the onnx backend needs onnx and onnxruntime ({exc}): pip install 'litesr[onnx]'") \
                from None
