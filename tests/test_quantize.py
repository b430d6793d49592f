"""Int8 static quantisation (litesr.quantize, ``litesr quantize``): a real QDQ file that ONNX Runtime runs close to
fp32, and the bad inputs of the issue, each one line, non-zero exit, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import litesr
from litesr.checkpoint import save_safetensors
from litesr.cli import main
from litesr.errors import LitesrError
from litesr.images import write_image
from litesr.inference import run_model
from litesr.quantize import QUANTIZABLE, calibration_files, check_quantizable, load_int8, quantize_model
from litesr.registry import get_arch

pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'litesr[onnx]')")


def _smooth_pictures(folder: Path, count: int = 3, side: int = 40) -> Path:
    """Smooth colour gradients with a little noise: image-like activations, unlike uniform noise."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:side, 0:side] / side
    for i in range(count):
        rgb = np.stack([xx * (i + 1) % 1, yy, (xx + yy) / 2], axis=2) * 200 + rng.integers(0, 40, (side, side, 3))
        write_image(folder / f"calib_{i}.png", np.clip(rgb, 0, 255).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def tiny_imdn() -> torch.nn.Module:
    torch.manual_seed(0)
    return litesr.create_model("imdn", scale=2, **get_arch("imdn").tiny).eval()


def test_quantized_file_is_int8_and_runs_close_to_fp32(tmp_path, tiny_imdn):
    import onnx

    calib = _smooth_pictures(tmp_path / "calib")
    out = tmp_path / "tiny_int8.onnx"
    report = quantize_model(tiny_imdn, calib, out, images=3, crop=32)
    assert report.calibration_images == 3 and report.quantized_convs > 0 and len(report.fp32_convs) == 2
    graph = onnx.load(str(out)).graph
    ops = {node.op_type for node in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= report.quantized_convs  # every quantised conv stores its weight in int8
    int8 = load_int8(out, tiny_imdn, threads=1)
    x = torch.from_numpy(next(iter([_picture_batch(calib)])))
    with torch.inference_mode():
        ref = run_model(tiny_imdn, x).clamp(0, 1)
    got = run_model(int8, x)
    assert got.shape == ref.shape
    diff = (got - ref).abs()
    assert diff.max().item() > 0  # it really is another computation than fp32
    assert diff.mean().item() < 0.02  # ... but one that tracks it (8-bit steps are 0.004)


def _picture_batch(folder: Path) -> np.ndarray:
    from litesr.images import read_image

    rgb = read_image(sorted(folder.iterdir())[0]).rgb
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


def test_transformers_are_refused_before_anything_is_written(tmp_path):
    swinir = litesr.create_model("swinir", scale=2, **get_arch("swinir").tiny).eval()
    out = tmp_path / "swinir_int8.onnx"
    with pytest.raises(LitesrError, match="int8 quantisation covers the CNN zoo models") as info:
        quantize_model(swinir, _smooth_pictures(tmp_path / "calib", 1), out)
    assert "\n" not in str(info.value) and not out.exists()
    assert "swinir" not in QUANTIZABLE
    for name in ("imdn", "rlfn", "ecbsr", "etds", "span", "rdesa"):  # the CNN zoo models
        check_quantizable(litesr.create_model(name, scale=2, **get_arch(get_arch_name(name)).tiny))


def get_arch_name(name: str) -> str:
    return litesr.get_variant(name).arch


def test_cli_calibration_folder_without_images_is_one_line(tmp_path, capsys, tiny_imdn):
    weights = tmp_path / "tiny.safetensors"
    save_safetensors(tiny_imdn.state_dict(), weights)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    out = tmp_path / "out_int8.onnx"
    code = main(["quantize", "--weights", str(weights), "--calib", str(empty), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not out.exists()
    assert len(err) == 1 and "no images in the calibration folder" in err[0] and str(empty) in err[0]


def test_cli_unquantisable_model_is_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    swinir = litesr.create_model("swinir", scale=2, **get_arch("swinir").tiny)
    weights = tmp_path / "swinir.safetensors"
    save_safetensors(swinir.state_dict(), weights)
    out = tmp_path / "out_int8.onnx"
    code = main(["quantize", "--weights", str(weights), "--model", "swinir", "--scale", "2",
                 "--calib", str(_smooth_pictures(tmp_path / "calib", 1)), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not out.exists() and not list(tmp_path.glob("*.tmp*"))
    assert len(err) == 1 and "int8 quantisation covers the CNN zoo models" in err[0]


def test_calibration_files_are_capped_and_sorted(tmp_path):
    folder = _smooth_pictures(tmp_path / "calib", 3)
    assert [p.name for p in calibration_files(folder, 2)] == ["calib_0.png", "calib_1.png"]
    with pytest.raises(LitesrError, match="calibration folder not found"):
        calibration_files(tmp_path / "missing")
