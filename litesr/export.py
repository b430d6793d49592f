"""ONNX export with dynamic height and width, and an onnxruntime backend that behaves like a torch model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import atomic_output
from .descriptor import describe
from .errors import LitesrError
from .forward import run_model


class _ContractWrapper(nn.Module):
    """Bakes the model's contract (input range, pad multiple) into the graph: [0, 1] RGB in, [0, 1] RGB out."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return run_model(self.model, x).clamp(0, 1)


def export_onnx(
    model: nn.Module, path: str | os.PathLike, *, opset: int = 18, sample_hw: tuple[int, int] = (64, 64)
) -> Path:
    """Write ``model`` as ONNX with dynamic height and width (batch 1); input and output are RGB in [0, 1]."""
    try:
        import onnx  # noqa: F401
    except ImportError as exc:
        raise LitesrError("ONNX export needs the onnx package: pip install 'litesr[onnx]'") from exc
    descriptor = describe(model)
    if descriptor.color_space != "rgb":
        raise LitesrError(f"{descriptor.label}: only RGB models export to ONNX")
    path = Path(path)
    wrapper = _ContractWrapper(model.eval()).eval()
    sample = torch.rand(1, 3, *sample_hw)
    dynamic = torch.export.Dim.DYNAMIC
    with atomic_output(path) as tmp, torch.no_grad():
        # torch.export traces sizes symbolically, so padding to window multiples stays dynamic in the graph
        program = torch.onnx.export(
            wrapper,
            (sample,),
            input_names=["lr"],
            output_names=["sr"],
            dynamic_shapes={"x": {2: dynamic, 3: dynamic}},
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
        program.save(str(tmp))
    return path


class OnnxModel:
    """An onnxruntime session with the call signature of a litesr model on [0, 1] RGB batches."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise LitesrError("the ONNX backend needs onnxruntime: pip install 'litesr[onnx]'") from exc
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: Tensor) -> Tensor:
        out = self.session.run(["sr"], {"lr": np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)


OPENVINO_MISSING = "the openvino backend needs OpenVINO, which is not installed: pip install 'litesr[openvino]'"


def openvino_available() -> bool:
    """Whether the optional OpenVINO runtime imports here."""
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


class OpenVinoModel:
    """An ONNX file compiled by OpenVINO for the CPU, with the call signature of :class:`OnnxModel`.

    The precision hint is pinned to f32: OpenVINO's own default on AMX/AVX-512-bf16 CPUs is bf16, which would break
    the "same output as fp32 eager" promise of an fp32 backend. Int8 (QDQ) files run in int8 whatever the hint."""

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise LitesrError(OPENVINO_MISSING) from None
        config = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = str(threads)
        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)

    def __call__(self, x: Tensor) -> Tensor:
        out = self.compiled(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32))[0]
        return torch.from_numpy(np.array(out))
