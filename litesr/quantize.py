"""Int8 post-training static quantisation of the CNN zoo models, by ONNX Runtime's quantiser (no hand-written kernels).

:func:`quantize_model` folds the deploy form (ECBSR, ETDS, SPAN), exports fp32 ONNX (:func:`litesr.export.export_onnx`:
dynamic H/W, the model's contract baked in: [0, 1] RGB in and out), runs ONNX Runtime's shape pre-processing, then
``quantize_static`` in the QDQ format on the convolutions only: weights int8 per output channel, their input and
output activations uint8 with ranges calibrated on crops of the images of a calibration folder (images like those
the model will upscale). Quantising the element-wise ops too (adds, multiplies, concatenations) cost IMDN x4 0.55 dB
of Set5 PSNR, convolutions only 0.30 dB with minmax ranges, 0.28 with entropy, 0.19 with percentile ranges (the
default: 99.999th percentile; 32 T91 crops). The first and the last convolution
stay fp32 by default (``keep_image_layers``): they read and write pixels, where 8 bits of activation
range cost the most PSNR (the same reason :func:`litesr.fast.keep_image_layers_fp32` keeps them in fp32 for bf16).

The result is a plain ONNX file: run it with :func:`load_int8` (ONNX Runtime, or OpenVINO with ``runtime="openvino"``),
``onnxruntime`` itself, or any ONNX runtime that reads QDQ graphs.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from .checkpoint import atomic_output
from .descriptor import describe
from .errors import ConfigError, DatasetError, LitesrError

# Architectures made of convolutions, activations, channel attention and pixel shuffles: what int8 QDQ handles well.
QUANTIZABLE: tuple[str, ...] = ("imdn", "rlfn", "ecbsr", "etds", "span", "rdesa")
CALIBRATION_METHODS: tuple[str, ...] = ("percentile", "minmax", "entropy")


@dataclass(frozen=True)
class QuantizeReport:
    """What was written: the file, the calibration images used and the convolutions left in fp32."""

    path: Path
    calibration_images: int
    quantized_convs: int
    fp32_convs: tuple[str, ...]

    def __str__(self) -> str:
        kept = f", {len(self.fp32_convs)} kept in fp32 ({', '.join(self.fp32_convs)})" if self.fp32_convs else ""
        return (f"wrote {self.path}: int8 QDQ, {self.quantized_convs} convolutions quantised{kept}; "
                f"calibrated on {self.calibration_images} images")


def check_quantizable(model: nn.Module) -> None:
    """A one-line error for models the int8 path does not cover (transformers, Y-channel models...)."""
    d = describe(model)
    if d.arch not in QUANTIZABLE:
        raise LitesrError(f"{d.label}: int8 quantisation covers the CNN zoo models ({', '.join(QUANTIZABLE)}), "
                          f"not {d.arch}")
    if d.color_space != "rgb":
        raise LitesrError(f"{d.label}: only RGB models quantise (this one works on {d.color_space})")


def _quantization_module():
    try:
        from onnxruntime import quantization
    except ImportError as exc:
        raise LitesrError(f"int8 quantisation needs onnx and onnxruntime ({exc}): pip install 'litesr[onnx]'") \
            from None
    return quantization


def calibration_files(folder: str | os.PathLike, limit: int = 32) -> list[Path]:
    """Up to ``limit`` image files of ``folder`` (recursively, sorted); none is a one-line :class:`DatasetError`."""
    from .images import IMAGE_SUFFIXES

    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: calibration folder not found (--calib DIR: a folder of images)")
    files = sorted(p for p in folder.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        raise DatasetError(f"{folder}: no images in the calibration folder (looked for "
                           f"{', '.join(sorted(set(IMAGE_SUFFIXES)))})")
    if limit < 1:
        raise ConfigError(f"the number of calibration images must be >= 1, not {limit}")
    return files[:limit]


def calibration_batches(files: Sequence[Path], crop: int = 96) -> list[np.ndarray]:
    """Each image as a (1, 3, s, s) float32 batch in [0, 1]: a centre crop of one common side ``s`` (``crop``, or the
    smallest image side when an image is smaller: histogram calibration needs equal shapes); grey images as RGB."""
    from .images import read_image

    images = []
    for path in files:
        rgb = read_image(path).rgb
        images.append(np.repeat(rgb, 3, axis=2) if rgb.shape[2] == 1 else rgb[..., :3])
    side = min(crop, *(min(rgb.shape[:2]) for rgb in images))
    batches = []
    for rgb in images:
        top, left = (rgb.shape[0] - side) // 2, (rgb.shape[1] - side) // 2
        patch = rgb[top : top + side, left : left + side]
        batches.append(np.ascontiguousarray(patch.transpose(2, 0, 1)[None], dtype=np.float32))
    return batches


def _conv_nodes(path: Path) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type == "Conv"]


def quantize_model(
    model: nn.Module, calib_dir: str | os.PathLike, output: str | os.PathLike, *, images: int = 32, crop: int = 96,
    method: str = "percentile", keep_image_layers: bool = True,
) -> QuantizeReport:
    """Write ``model`` as an int8 (QDQ) ONNX file at ``output``, calibrated on the images of ``calib_dir``.

    Every problem (a model outside :data:`QUANTIZABLE`, an empty folder, a missing onnxruntime, an unknown method) is
    raised before anything is written; ``output`` appears only when complete (written to a temporary name first)."""
    from .export import export_onnx
    from .fast import fold_deploy

    check_quantizable(model)
    if method not in CALIBRATION_METHODS:
        raise ConfigError(f"unknown calibration method {method!r} (use {', '.join(CALIBRATION_METHODS)})")
    if crop < 16:
        raise ConfigError(f"the calibration crop must be >= 16 pixels, not {crop}")
    files = calibration_files(calib_dir, images)
    quantization = _quantization_module()
    batches = calibration_batches(files, crop)  # decoded up front: a broken image fails before the export

    class Reader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {"lr": batch}

    folder = Path(tempfile.mkdtemp(prefix="litesr-int8-"))
    try:
        fp32 = export_onnx(fold_deploy(model).cpu().float().eval(), folder / "fp32.onnx")
        prepared = folder / "prepared.onnx"
        quantization.shape_inference.quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        convs = _conv_nodes(prepared)
        keep = (convs[0], convs[-1]) if keep_image_layers and len(convs) > 2 else ()
        calibrate = {"minmax": quantization.CalibrationMethod.MinMax,
                     "percentile": quantization.CalibrationMethod.Percentile,
                     "entropy": quantization.CalibrationMethod.Entropy}[method]
        with atomic_output(output) as tmp:
            quantization.quantize_static(
                str(prepared), str(tmp), Reader(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
                activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
                calibrate_method=calibrate, nodes_to_exclude=list(keep), op_types_to_quantize=["Conv"],
                extra_options={"CalibTensorRangeSymmetric": False},
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return QuantizeReport(Path(output), len(batches), len(convs) - len(keep), tuple(keep))


def load_int8(path: str | os.PathLike, like: nn.Module, *, runtime: str = "onnx",
              threads: int | None = None) -> nn.Module:
    """An int8 file written by :func:`quantize_model`, as a litesr model with ``like``'s identity (architecture,
    scale), run by ONNX Runtime (``runtime="onnx"``) or OpenVINO (``"openvino"``)."""
    from .descriptor import carry_identity
    from .fast import OnnxBackend, OpenVinoBackend, check_backend_available

    if runtime not in ("onnx", "openvino"):
        raise ConfigError(f"unknown int8 runtime {runtime!r} (use onnx or openvino)")
    check_backend_available(runtime)
    backend = (OnnxBackend if runtime == "onnx" else OpenVinoBackend)(path, describe(like).scale, threads=threads)
    return carry_identity(like, backend)
