"""DLGSANet: the same outputs as the official code (NeonLeexiang/DLGSANet, read from outside the repo) on shared
random weights in float64, in training mode (global SparseGSA) and in eval mode (TLC crops), the official parameter
counts, and detection of every variant.

The official dynamic depthwise convolution is a CuPy CUDA kernel; the test replaces it with a direct transcription of
that kernel's index arithmetic (gather with ``unfold``), written independently of litesr's shifted-product loop.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_official_parity import official_modules
from zoo_parity import check_variants_detect_as_themselves, parameter_count_on_meta, random_state

import litesr
from litesr.archs.dlgsanet import dynamic_depthwise_conv, tlc_starts
from litesr.detect import detect_architecture

REPO = "NeonLeexiang/DLGSANet"
FILES = {"basicsr/archs/dlgsanet_arch.py": "dlgsa_official/dlgsanet_arch.py",
         "basicsr/archs/dlgsanet_idynamicdwconv_util.py": "dlgsa_official/dlgsanet_idynamicdwconv_util.py"}
# The official arch_util pulls in basicsr's deformable-conv ops; the network file only takes these two names from it.
ARCH_UTIL = "from torch.nn.init import trunc_normal_\n\ndef to_2tuple(x):\n    return (x, x)\n"


def reference_idynamic(x: torch.Tensor, weight: torch.Tensor, bias=None, stride: int = 1, padding: int = 0,
                       dilation: int = 1) -> torch.Tensor:
    """out[n, c, h, w] = sum_kh,kw weight[n, c // (C / G), kh, kw, h, w] * x[n, c, h - pad + kh, w - pad + kw]."""
    b, c, h, w = x.shape
    groups, k = weight.shape[1], weight.shape[2]
    taps = F.unfold(x, k, dilation=dilation, padding=padding, stride=stride).view(b, c, k, k, h, w)
    per_channel = weight.repeat_interleave(c // groups, dim=1)
    return (taps * per_channel).sum(dim=(2, 3))


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cupy = types.ModuleType("cupy")
    cupy._util = types.SimpleNamespace(memoize=lambda **_: (lambda fn: fn))
    cupy.ndarray = type("ndarray", (), {})  # einops asks every imported backend whether a tensor is theirs
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    with official_modules(tmp_path, REPO, FILES):
        (tmp_path / "dlgsa_official" / "arch_util.py").write_text(ARCH_UTIL)
        util = importlib.import_module("dlgsa_official.dlgsanet_idynamicdwconv_util")
        monkeypatch.setattr(util, "_idynamic_cuda", reference_idynamic)
        module = importlib.import_module("dlgsa_official.dlgsanet_arch")
        monkeypatch.setattr(module, "F", F, raising=False)  # the official file uses F without importing it
        yield module


def _pair(official, scale: int, tlc_kernel: int):
    config = {"dim": 12, "groups": 2, "blocks": 1, "window_size": 5, "idynamic_num_heads": 3,
              "restormer_num_heads": 2}
    ours = litesr.create_model("dlgsanet", scale=scale, tlc_kernel=tlc_kernel, **config)
    ours.load_state_dict(random_state(ours, seed=scale, std=0.2))
    reference = official.DLGSANet(upscale=scale, buildblock_type="sparseedge", tlc_kernel=tlc_kernel,
                                  upsampler="pixelshuffledirect", **config)
    reference.load_state_dict(ours.state_dict())
    return ours.double(), reference.double()


@pytest.mark.parametrize(("scale", "size", "tlc_kernel", "training"),
                         [(2, (19, 13), 8, False), (3, (9, 16), 48, False), (4, (11, 14), 8, True)])
def test_matches_official(official, scale: int, size: tuple[int, int], tlc_kernel: int, training: bool) -> None:
    ours, reference = _pair(official, scale, tlc_kernel)
    ours.train(training)
    reference.train(training)
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the official TLC accumulator is created with the default dtype
    try:
        with torch.no_grad():
            want, got = reference(x), ours(x)
    finally:
        torch.set_default_dtype(previous)
    assert got.shape == want.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert float((want - x.repeat_interleave(scale, -1).repeat_interleave(scale, -2)).abs().max()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5


def test_tlc_changes_the_result_on_large_maps() -> None:
    """Eval-mode crops are not a no-op: with crops smaller than the map the output differs from global attention."""
    model = litesr.create_model("dlgsanet", scale=2, tlc_kernel=8, **litesr.registry.get_arch("dlgsanet").tiny)
    model.load_state_dict(random_state(model, seed=3, std=0.3))
    x = torch.rand(1, 3, 20, 20, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        cropped = model.eval()(x)
        global_ = model.train()(x)
    assert float((cropped - global_).abs().max()) > 1e-4
    assert tlc_starts(20, 8) == [0, 6, 12] and tlc_starts(5, 8) == [0] and tlc_starts(16, 8) == [0, 8]


def test_dynamic_convolution_matches_the_kernel_formula() -> None:
    g = torch.Generator().manual_seed(0)
    x, weight = torch.randn(2, 6, 7, 9, generator=g), torch.randn(2, 3, 5, 5, 7, 9, generator=g)
    torch.testing.assert_close(dynamic_depthwise_conv(x, weight), reference_idynamic(x, weight, padding=2))


def test_parameter_counts(official) -> None:
    counts = {name: [parameter_count_on_meta(name, s) for s in (2, 3, 4)] for name in ("dlgsanet", "dlgsanet_large")}
    assert counts == {"dlgsanet": [745_188, 751_683, 760_776], "dlgsanet_large": [4_733_724, 4_745_889, 4_762_920]}
    light = official.DLGSANet(dim=48, groups=4, blocks=3, buildblock_type="sparseedge", upscale=4,
                              upsampler="pixelshuffledirect")
    assert sum(p.numel() for p in light.parameters()) == counts["dlgsanet"][2]


def test_variants_detect_as_themselves() -> None:
    assert {"dlgsanet", "dlgsanet_tiny", "dlgsanet_large"} <= set(check_variants_detect_as_themselves("dlgsanet"))


def test_detection_round_trip() -> None:
    model = litesr.create_model("dlgsanet", scale=3, dim=24, groups=2, blocks=2, window_size=5,
                                idynamic_num_heads=4, restormer_num_heads=3)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("dlgsanet", {
        "scale": 3, "dim": 24, "groups": 2, "blocks": 2, "window_size": 5, "idynamic_num_heads": 4,
        "restormer_num_heads": 3, "ffn_expansion_factor": 2})]
