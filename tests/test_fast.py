"""The fast path (litesr.fast): deploy folding, precision and backends, NHWC kernel swaps, the upscale CLI's options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import litesr
import litesr.fast as fast
from litesr.checkpoint import save_safetensors
from litesr.cli import main
from litesr.errors import ConfigError
from litesr.images import read_image, write_image
from litesr.inference import run_model, upscale_tensor
from litesr.registry import get_arch


def tiny(name: str, scale: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return litesr.create_model(name, scale=scale, **get_arch(name).tiny).eval()


def image(h: int = 20, w: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", ["ecbsr", "span"])
def test_re_parameterised_models_are_folded_with_equal_outputs(name):
    model = tiny(name)
    folded = fast.fold_deploy(model)
    assert folded is not model and folded.deploy and fast.fold_deploy(folded) is folded
    assert litesr.count_parameters(folded) < litesr.count_parameters(model)
    assert folded.litesr_arch == name
    x = image()
    with torch.no_grad():
        assert (run_model(folded, x) - run_model(model, x)).abs().max().item() < 1e-5


def test_prepared_fp32_model_gives_the_eager_result_and_bf16_stays_close():
    model = tiny("imdn")
    x = image()
    reference = upscale_tensor(model, x)
    for precision, backend in (("fp32", "torch"), ("bf16", "torch")):
        prepared = fast.prepare_model(tiny("imdn"), precision=precision, backend=backend)
        out = upscale_tensor(prepared, x, precision=precision)
        limit = 1e-5 if precision == "fp32" else 3e-2
        assert (out - reference).abs().max().item() < limit, precision
    bf16 = fast.prepare_model(tiny("imdn"), precision="bf16")
    assert bf16.fea_conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_onnx_backend_runs_in_the_engine_equal_to_torch_within_1e4(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime not installed")
    model = tiny("espcn")
    backend = fast.prepare_model(tiny("espcn"), backend="onnx", onnx_path=tmp_path / "espcn.onnx", threads=1)
    assert (tmp_path / "espcn.onnx").is_file() and backend.scale == 2
    x = image(18, 26)
    reference = upscale_tensor(model, x)
    assert (upscale_tensor(backend, x) - reference).abs().max().item() <= 1e-4
    tiled = upscale_tensor(backend, x, tile=12, tile_overlap=6)
    assert (tiled - upscale_tensor(model, x, tile=12, tile_overlap=6)).abs().max().item() <= 1e-4
    with pytest.raises(ConfigError, match="fp32"):
        fast.prepare_model(model, backend="onnx", precision="bf16")


def test_upscale_cli_folder_with_fast_options(tmp_path: Path, capsys: pytest.CaptureFixture):
    torch.manual_seed(0)
    weights = tmp_path / "ecbsr_x2.safetensors"
    model = tiny("ecbsr")
    save_safetensors(model.state_dict(), weights)
    folder = tmp_path / "in"
    rng = np.random.default_rng(0)
    for i in range(3):
        write_image(folder / f"{i}.png", rng.integers(0, 256, (10 + i, 14, 3), dtype=np.uint8))
    rc = main(["upscale", str(folder), "-o", str(tmp_path / "out"), "--weights", str(weights),
               "--precision", "auto", "--backend", "torch"])
    assert rc == 0, capsys.readouterr().err
    for i in range(3):
        lr = torch.from_numpy(read_image(folder / f"{i}.png").rgb).permute(2, 0, 1)[None]
        expected = upscale_tensor(model, lr)[0].permute(1, 2, 0).numpy()
        got = read_image(tmp_path / "out" / f"{i}.png").rgb
        assert np.abs(got - expected).max() <= 0.5 / 255 + 1e-5  # the training-form model, rounded to 8 bits
    assert main(["upscale", str(folder), "-o", str(tmp_path / "o2"), "--weights", str(weights),
                 "--max-memory", "lots"]) == 1
    assert "lots" in capsys.readouterr().err


def test_bf16_keeps_the_image_layers_in_fp32_without_touching_the_weights():
    model = tiny("imdn")
    keys = list(model.state_dict())
    assert fast.image_layers(model) == ["fea_conv", "upsampler.0"]
    prepared = fast.prepare_model(tiny("imdn"), precision="bf16")
    assert list(prepared.state_dict()) == keys
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output.dtype)

        return hook

    prepared.IMDB1.c1.register_forward_hook(record("body"))
    prepared.upsampler[0].register_forward_hook(record("tail"))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        prepared(image())
    assert seen == {"body": torch.bfloat16, "tail": torch.float32}
    plain = fast.prepare_model(tiny("imdn"), precision="bf16", fp32_ends=False)
    x = image(32, 32)
    reference = upscale_tensor(model, x)
    error = (upscale_tensor(prepared, x, precision="bf16") - reference).abs().mean()
    assert error < (upscale_tensor(plain, x, precision="bf16") - reference).abs().mean()


def test_prepare_model_leaves_the_callers_model_as_it_was():
    model = tiny("imdn")
    before = {k: (v.dtype, v.stride()) for k, v in model.state_dict().items()}
    prepared = fast.prepare_model(model, precision="bf16")
    assert prepared is not model
    assert {k: (v.dtype, v.stride()) for k, v in model.state_dict().items()} == before
    assert prepared.IMDB1.c1.weight.dtype == torch.bfloat16 and prepared.fea_conv.weight.dtype == torch.float32


def test_nhwc_gelu_is_gelu_and_prepare_model_swaps_it():
    from litesr.fast import NHWCGELU, prepare_model

    x = torch.randn(2, 8, 5, 7).contiguous(memory_format=torch.channels_last)
    for approximate in ("none", "tanh"):
        out = NHWCGELU(approximate)(x)
        # the vectorised and the strided kernels differ in the last bits only
        assert torch.allclose(out, torch.nn.functional.gelu(x, approximate=approximate), rtol=0, atol=1e-6)
        assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(NHWCGELU()(x.contiguous()), torch.nn.functional.gelu(x.contiguous()))  # NCHW: the usual way
    model = litesr.create_model("ssiu", scale=2, n_feats=16, n_blocks=3).eval()
    fast = prepare_model(model, channels_last=True)
    assert not any(type(m) is torch.nn.GELU for m in fast.modules())
    assert any(isinstance(m, NHWCGELU) for m in fast.modules())
    assert any(type(m) is torch.nn.GELU for m in model.modules())  # the caller's model is untouched
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        assert (fast(x) - model(x)).abs().max() < 1e-5


@pytest.mark.parametrize(("pad_h", "pad_w"), [(1, 1), (2, 1), (0, 3)])
def test_channels_last_reflect_padding_equals_f_pad(pad_h, pad_w):
    from litesr.fast import reflect_pad_channels_last

    x = torch.randn(2, 5, 7, 9).contiguous(memory_format=torch.channels_last)
    expected = torch.nn.functional.pad(x.contiguous(), (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    out = reflect_pad_channels_last(x, pad_h, pad_w)
    assert torch.equal(out, expected) and out.is_contiguous(memory_format=torch.channels_last)


def test_prepare_model_swaps_reflect_convs_and_keeps_outputs_and_names():
    from litesr.fast import NHWCReflectConv2d, prepare_model

    model = litesr.create_model("ssiu", scale=2, n_feats=16, n_blocks=3).eval()
    fast_model = prepare_model(model, channels_last=True)
    swapped = [m for m in fast_model.modules() if isinstance(m, NHWCReflectConv2d)]
    assert swapped and all(m.padding_mode == "reflect" for m in swapped)
    assert list(fast_model.state_dict()) == list(model.state_dict())
    for size in ((20, 24), (17, 5)):  # 5 wide: the pad is wider than the tail's reflect allows on small tiles
        x = torch.rand(1, 3, *size)
        with torch.no_grad():
            assert (fast_model(x) - model(x)).abs().max() < 1e-5
