"""OpenVINO backend (fp32, same output as eager within 1e-4) and ``--backend auto`` (measured choice, cached per model,
shape bucket and machine, atomically). No test here asserts a time: which backend wins is the machine's business."""

from __future__ import annotations

import json
import sys

import pytest
import torch

import litesr
from litesr import backend_auto
from litesr.backend_auto import BackendChoice, prepare_fastest, shape_bucket
from litesr.errors import LitesrError
from litesr.fast import check_backend_available, prepare_model
from litesr.inference import run_model


def _tiny(scale: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    return litesr.create_model("imdn", scale=scale, nf=16, num_modules=1).eval()


def _out(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return run_model(net, x).float().clamp(0, 1)


def test_openvino_backend_matches_fp32_eager_at_other_sizes():
    pytest.importorskip("openvino", reason="OpenVINO not installed (pip install 'litesr[openvino]')")
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    model = _tiny()
    backend = prepare_model(model, backend="openvino", threads=1)
    assert type(backend).__name__ == "OpenVinoBackend"
    for h, w in ((32, 32), (23, 41)):
        x = torch.rand(1, 3, h, w)
        out, ref = _out(backend, x), _out(model, x)
        assert out.shape == ref.shape == (1, 3, 2 * h, 2 * w)
        assert (out - ref).abs().max().item() <= 1e-4


def test_openvino_without_the_extra_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError, as if not installed
    with pytest.raises(LitesrError, match=r"litesr\[openvino\]") as info:
        check_backend_available("openvino")
    assert "\n" not in str(info.value)


def test_upscale_cli_openvino_without_the_extra_writes_nothing(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from litesr.cli import main

    monkeypatch.setitem(sys.modules, "openvino", None)
    image = tmp_path / "in.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(image)
    out = tmp_path / "out.png"
    code = main(["upscale", str(image), "-o", str(out), "--model", "bicubic", "--scale", "2", "--backend", "openvino"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not out.exists()
    assert len(err) == 1 and "openvino" in err[0]


def test_shape_bucket_rounds_sides_up_to_powers_of_two():
    assert shape_bucket(64, 64) == "64x64"
    assert shape_bucket(65, 20) == "128x32"
    assert shape_bucket(180, 320) == "256x512"


def test_auto_measures_then_reads_the_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "choice.json"
    model = _tiny()
    prepared, choice = prepare_fastest(model, (40, 40), candidates=("torch", "torch-nhwc"), cache_file=cache, rounds=1)
    assert not choice.from_cache and choice.backend in ("torch", "torch-nhwc")
    assert set(choice.timings_ms) == {"torch", "torch-nhwc"} and choice.bucket == "64x64"
    data = json.loads(cache.read_text())
    (entry,) = data["choices"].values()
    assert entry["backend"] == choice.backend
    assert not [p for p in cache.parent.iterdir() if p != cache]  # no temporary file left behind

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again instead of reading the cache")

    monkeypatch.setattr(backend_auto, "measure_backends", no_measuring)
    again, cached = prepare_fastest(model, (50, 60), candidates=("torch", "torch-nhwc"), cache_file=cache)
    assert cached.from_cache and cached.backend == choice.backend  # same bucket: 64x64
    x = torch.rand(1, 3, 20, 24)
    assert (_out(again, x) - _out(model, x)).abs().max().item() <= 1e-4
    with pytest.raises(AssertionError, match="measured again"):  # another bucket is another measurement
        prepare_fastest(model, (200, 200), candidates=("torch", "torch-nhwc"), cache_file=cache)


def test_auto_rules_out_a_backend_whose_output_differs(tmp_path, monkeypatch):
    real = backend_auto._prepare

    def broken_nhwc(model, name, threads):
        net = real(model, name, threads)
        if name == "torch-nhwc":
            with torch.no_grad():
                next(p for p in net.parameters() if p.dim() == 4).add_(0.5)  # a "backend" that computes wrongly
        return net

    monkeypatch.setattr(backend_auto, "_prepare", broken_nhwc)
    _, choice = prepare_fastest(_tiny(), (32, 32), candidates=("torch", "torch-nhwc"), cache_file=tmp_path / "c.json",
                                rounds=1)
    assert choice.backend == "torch"
    assert "differs from fp32 eager" in choice.ruled_out["torch-nhwc"]
    assert "ruled out" in str(choice)


def test_auto_survives_a_damaged_cache_file(tmp_path):
    cache = tmp_path / "c.json"
    cache.write_text("{not json")
    _, choice = prepare_fastest(_tiny(), (32, 32), candidates=("torch",), cache_file=cache, rounds=1)
    assert choice.backend == "torch" and not choice.from_cache
    assert json.loads(cache.read_text())["version"] == backend_auto.CACHE_VERSION


def test_auto_is_torch_for_reduced_precision_without_measuring(tmp_path):
    _, choice = prepare_fastest(_tiny(), (32, 32), precision="bf16", cache_file=tmp_path / "c.json")
    assert isinstance(choice, BackendChoice) and choice.backend == "torch"
    assert not (tmp_path / "c.json").exists()


def test_auto_refuses_unknown_candidates(tmp_path):
    with pytest.raises(LitesrError, match="unknown backend candidates"):
        prepare_fastest(_tiny(), (32, 32), candidates=("tensorrt",), cache_file=tmp_path / "c.json")


def test_auto_leaves_compile_out_unless_asked(monkeypatch):
    assert "compile" in backend_auto.CANDIDATES and "compile" not in backend_auto.DEFAULT_CANDIDATES
    assert "compile" not in backend_auto.available_candidates()
    assert set(backend_auto.available_candidates()) <= set(backend_auto.DEFAULT_CANDIDATES)
    seen = []

    def record(model, sample_hw, candidates, **kwargs):
        seen.extend(candidates)
        return {"torch": 1.0}, {}, {"torch": model}

    monkeypatch.setattr(backend_auto, "measure_backends", record)
    prepare_fastest(_tiny(), (32, 32), use_cache=False)
    assert seen and "compile" not in seen
    seen.clear()
    prepare_fastest(_tiny(), (32, 32), candidates=("torch", "compile"), use_cache=False)  # opt-in still works
    assert seen == ["torch", "compile"]


def test_auto_measures_nothing_for_a_model_without_parameters(tmp_path, monkeypatch):
    def no_measuring(*args, **kwargs):
        raise AssertionError("measured a model that has nothing to speed up")

    monkeypatch.setattr(backend_auto, "measure_backends", no_measuring)
    bicubic = litesr.create_model("bicubic", scale=2)
    prepared, choice = prepare_fastest(bicubic, (64, 64), cache_file=tmp_path / "c.json")
    assert choice.backend == "torch" and "no parameters" in str(choice)
    assert not (tmp_path / "c.json").exists()
    x = torch.rand(1, 3, 8, 8)
    assert _out(prepared, x).shape == (1, 3, 16, 16)


def test_upscale_cli_bicubic_backend_auto_says_why_it_measured_nothing(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from litesr.cli import main

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured bicubic")

    monkeypatch.setattr(backend_auto, "measure_backends", no_measuring)
    monkeypatch.setenv("LITESR_CACHE_DIR", str(tmp_path / "cache"))
    image = tmp_path / "in.png"
    Image.new("RGB", (8, 6), (10, 20, 30)).save(image)
    out = tmp_path / "out.png"
    code = main(["upscale", str(image), "-o", str(out), "--model", "bicubic", "--scale", "2", "--backend", "auto"])
    captured = capsys.readouterr()
    assert code == 0
    with Image.open(out) as result:
        assert result.size == (16, 12)
    assert "backend auto -> torch (the model has no parameters" in captured.out + captured.err
    assert not (tmp_path / "cache").exists()
