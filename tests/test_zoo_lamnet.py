"""LAMNet and LAMNet-large: the same outputs as the official code (zononhzy/LAMNet, read from outside the repo) on
shared random weights in float64, the parameter counts of the official code and the published ones, detection.

The official focal separable attention is a CUDA extension (``basicsr/ops/fsa``); the official network is run here
with ``fsa_spatial`` replaced by a transcription of its CUDA kernel (one tap and one step at a time, bounds checked
per pixel, reading the official ``kernel_map`` buffer), which litesr's shifted-slice implementation must match.
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import pytest
import torch
from test_official_parity import official_modules
from zoo_parity import check_variants_detect_as_themselves, full_config, parameter_count_on_meta, random_state

import litesr
from litesr.detect import detect_architecture

REPO = "zononhzy/LAMNet"
FILES = {"basicsr/archs/lamnet_arch.py": "lamnet_official.py"}


def cuda_kernel_fsa(x: torch.Tensor, kernel: torch.Tensor, kernel_size: int, kernel_map: torch.Tensor, groups: int,
                    group_channels: int, direction: str) -> torch.Tensor:
    """``fsa_{vertical,horizontal}_im2col_kernel`` of basicsr/ops/fsa/src/cuda/fsa_im2col_cuda.cuh, vectorised over
    the pixels only: for each tap, ``sum += (sum of in-bounds x[p + start + i * sign(start)], i < len) * w / len``."""
    b, c, h, w = x.shape
    assert kernel.shape == (b, groups * kernel_size, h, w) and c == groups * group_channels
    along = 2 if direction == "vertical" else 3
    length = x.shape[along]
    position = torch.arange(length).view((1, 1, -1, 1) if along == 2 else (1, 1, 1, -1))
    weights = kernel.view(b, groups, 1, kernel_size, h, w).expand(b, groups, group_channels, kernel_size, h, w)
    weights = weights.reshape(b, c, kernel_size, h, w)
    out = torch.zeros_like(x)
    for k in range(kernel_size):
        start, count = int(kernel_map[k, 0]), int(kernel_map[k, 1])
        step = 1 if start >= 0 else -1
        value = torch.zeros_like(x)
        for i in range(count):
            source = position + start + i * step
            inside = (source >= 0) & (source < length)
            index = source.clamp(0, length - 1).expand_as(x)
            value = value + torch.where(inside, torch.gather(x, along, index), torch.zeros_like(x))
        out = out + value * weights[:, :, k] / count
    return out


@pytest.fixture
def official(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with official_modules(tmp_path, REPO, FILES):
        arch_util = types.ModuleType("basicsr.archs.arch_util")
        arch_util.trunc_normal_ = torch.nn.init.trunc_normal_
        monkeypatch.setitem(sys.modules, "basicsr.archs", types.ModuleType("basicsr.archs"))
        monkeypatch.setitem(sys.modules, "basicsr.archs.arch_util", arch_util)
        fsa = types.ModuleType("fsa")
        fsa.fsa_spatial = cuda_kernel_fsa
        monkeypatch.setitem(sys.modules, "fsa", fsa)
        yield importlib.import_module("lamnet_official")


def _official_config(scale: int, config: dict) -> dict:
    """litesr's options (defaults filled in: the official defaults are not the paper's and fail its own assert) under
    the official constructor's names, ``scale`` apart (``upscale``)."""
    options = full_config("lamnet", config)
    options.pop("scale", None)
    return {"upscale": scale, **{k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}}


@pytest.mark.parametrize(("scale", "size", "config"), [
    (2, (9, 13), {}),  # smaller than the 23-pixel focal reach: taps fall outside on both sides
    (3, (26, 11), {"num_head": 2}),
    (4, (7, 30), {"kernel_size": 11, "kernel_loc": (3, 4, 6), "kernel_stride": (1, 2, 4), "expansion_factor": 2}),
])
def test_matches_official(official, scale: int, size: tuple[int, int], config: dict) -> None:
    config = {"dim": 16, "num_groups": 2, "num_blocks": 1, **config}
    ours = litesr.create_model("lamnet", scale=scale, **config).eval()
    reference = official.LAMNet(**_official_config(scale, config)).eval()
    # The taps come from the official generator, not from ours: compare them before our state overwrites the buffer.
    theirs = {k: v for k, v in reference.state_dict().items() if k.endswith("kernel_map")}
    assert theirs and all(torch.equal(v, ours.state_dict()[k]) for k, v in theirs.items())
    ours.load_state_dict(random_state(ours, seed=scale, std=0.2))
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        want, got = reference.double()(x), ours.double()(x)
    assert got.shape == (1, 3, size[0] * scale, size[1] * scale)
    assert float(want.std()) > 1e-2
    assert float((got - want).abs().max()) <= 1e-5


def test_parameter_counts(official) -> None:
    """LAMNet-large: 1,024K (x2) and 1,045K (x4), LaST-SR Table 2 quoting the LAMNet paper; the base model's
    published counts were not found, so only the official code's are checked for it."""
    counts = {name: [parameter_count_on_meta(name, s) for s in (2, 3, 4)] for name in ("lamnet", "lamnet_large")}
    assert counts == {"lamnet": [828_364, 837_019, 849_136], "lamnet_large": [1_024_028, 1_032_683, 1_044_800]}
    assert {s: round(counts["lamnet_large"][i], -3) for i, s in ((0, 2), (2, 4))} == \
        litesr.registry.get_variant("lamnet_large").paper_params
    options = dict(in_chans=3, num_blocks=6, dim=64, kernel_size=13, kernel_loc=[4, 6, 7], kernel_stride=[1, 2, 4],
                   num_head=4, expansion_factor=1)  # options/test_LAMNet_{,large_}SRx*.yml
    for name, groups, scale, index in (("lamnet", 4, 4, 2), ("lamnet_large", 5, 2, 0)):
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            reference = official.LAMNet(num_groups=groups, upscale=scale, **options)
        assert sum(p.numel() for p in reference.parameters()) == counts[name][index]


def test_variants_detect_as_themselves() -> None:
    assert {"lamnet", "lamnet_large"} <= set(check_variants_detect_as_themselves("lamnet"))


def test_detection_round_trip() -> None:
    model = litesr.create_model("lamnet", scale=3, dim=16, num_groups=2, num_blocks=2, num_head=2,
                                expansion_factor=2)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config) for m in matches] == [("lamnet", {
        "scale": 3, "dim": 16, "kernel_size": 13, "num_groups": 2, "num_blocks": 2, "num_head": 2,
        "expansion_factor": 2})]


def test_a_file_with_other_taps_is_refused() -> None:
    model = litesr.create_model("lamnet", scale=2, dim=8, num_groups=1, num_blocks=1)
    state = model.state_dict()
    key = "deep_feature_extraction.0.mixers.0.fn.kernel_map"
    state[key] = state[key].flip(1).contiguous()  # same shape, other (start, length) pairs
    with pytest.raises(ValueError, match="kernel_map .* does not match this model's taps"):
        model.load_state_dict(state)


def test_focal_taps_reject_an_inconsistent_layout() -> None:
    with pytest.raises(ValueError, match="kernel_size // 2 \\+ 1"):
        litesr.create_model("lamnet", scale=2, dim=8, num_groups=1, num_blocks=1, kernel_size=11)
