"""ONNX export: dynamic height and width, onnxruntime output equal to torch within 1e-4."""

from __future__ import annotations

import pytest
import torch

import litesr
from litesr.inference import run_model

ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed (pip install 'litesr[onnx]')")

from litesr.export import OnnxModel, export_onnx  # noqa: E402

# The four models the efficiency issue names, at small configurations so export stays fast.
CASES = [
    ("imdn", {"nf": 16, "num_modules": 2}),
    ("rlfn", "tiny"),
    ("ssiu", "tiny"),
    ("swinir", "tiny"),
]


def _build(name, config, scale):
    if name not in litesr.list_models():
        pytest.skip(f"model {name} is not in this build of the zoo")
    if config == "tiny":
        config = litesr.registry.get_arch(litesr.get_variant(name).arch).tiny
    torch.manual_seed(0)
    return litesr.create_model(name, scale=scale, **config).eval()


@pytest.mark.parametrize("name,config", CASES, ids=[c[0] for c in CASES])
def test_onnx_matches_torch_at_sizes_other_than_the_export_size(tmp_path, name, config):
    model = _build(name, config, 2)
    path = export_onnx(model, tmp_path / f"{name}.onnx", sample_hw=(32, 32))
    session = OnnxModel(path, threads=2)
    for h, w in ((32, 32), (23, 41), (40, 27)):
        x = torch.rand(1, 3, h, w)
        with torch.no_grad():
            ref = run_model(model, x).clamp(0, 1)
        out = session(x)
        assert out.shape == ref.shape, (h, w)
        assert (out - ref).abs().max().item() <= 1e-4, (h, w)


def test_export_refuses_luma_only_models(tmp_path):
    model = _build("imdn", {"nf": 8, "num_modules": 1}, 2)
    model.color_space = "y"
    with pytest.raises(litesr.LitesrError, match="RGB"):
        export_onnx(model, tmp_path / "y.onnx")
    assert not list(tmp_path.iterdir())
