"""The operation counter, checked against counts worked out by hand."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import litesr
from litesr.archs.base import SRModel
from litesr.archs.blocks import pixelshuffle_block
from litesr.cli import main
from litesr.profile import count_ops, lr_size_for_output, measure_latency


class _Wrap(SRModel):
    def __init__(self, body: nn.Module, scale: int = 1) -> None:
        super().__init__()
        self.scale = scale
        self.body = body

    def forward(self, x):
        return self.body(x)


def test_conv_layer_macs_by_hand():
    conv = nn.Conv2d(3, 8, 3, padding=1)
    ops = count_ops(_Wrap(conv), (10, 12))
    # every output element: Cin * k * k multiply-accumulates
    assert ops.macs == {"conv": 8 * 10 * 12 * 3 * 3 * 3}
    assert ops.conv_activations == 8 * 10 * 12


def test_grouped_and_strided_conv_by_hand():
    conv = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=4)
    ops = count_ops(_Wrap(conv), (10, 10), in_channels=8)
    assert ops.macs["conv"] == 16 * 5 * 5 * (8 // 4) * 9


def test_pixelshuffle_tail_by_hand():
    tail = pixelshuffle_block(16, 3, 3)
    ops = count_ops(_Wrap(tail, scale=3), (7, 5), in_channels=16)
    # the conv to 3 * 9 channels costs; the shuffle is a free permutation
    assert ops.macs == {"conv": 27 * 7 * 5 * 16 * 9}
    assert ops.output_hw == (21, 15)


class _Attention(nn.Module):
    """One multi-head self-attention block over the pixels: qkv projection, QK^T, softmax, AV, output projection."""

    def __init__(self, dim: int, heads: int, sdpa: bool) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.heads, self.sdpa = heads, sdpa

    def forward(self, x):
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(t).reshape(b, h * w, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        if self.sdpa:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = (q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).softmax(-1) @ v
        out = self.proj(out.transpose(1, 2).reshape(b, h * w, c))
        return out.transpose(1, 2).reshape(b, c, h, w)


def test_attention_block_by_hand():
    dim, heads, h, w = 12, 3, 4, 5
    n = h * w
    expected_linear = n * dim * 3 * dim + n * dim * dim
    expected_attention = heads * n * n * (dim // heads) * 2  # QK^T and AV
    for sdpa in (False, True):
        ops = count_ops(_Wrap(_Attention(dim, heads, sdpa)), (h, w), in_channels=dim)
        assert ops.total_macs == expected_linear + expected_attention, (sdpa, ops.macs)
    ops = count_ops(_Wrap(_Attention(dim, heads, False)), (h, w), in_channels=dim)
    assert ops.element_ops.get("softmax", 0) == 3 * heads * n * n


def test_imdn_720p_matches_published_mult_adds():
    # IMDN, 1280x720 output: 158.8 G at x2, 71.5 G at x3, 40.9 G at x4 (SwinIR Table 3 / SSIU table)
    published = {2: 158.8, 3: 71.5, 4: 40.9}
    for scale, gmacs in published.items():
        model = litesr.create_model("imdn", scale=scale)
        ops = count_ops(model, lr_size_for_output((720, 1280), scale))
        assert abs(ops.total_macs / 1e9 - gmacs) / gmacs < 0.02, (scale, ops.total_macs)


def test_counting_uses_no_real_compute():
    with torch.device("meta"):
        model = litesr.create_model("imdn", scale=4)
    ops = count_ops(model, (2160 // 4, 3840 // 4))  # a 4K output counts instantly on the meta device
    assert ops.total_macs > 0


class _DataDependent(SRModel):
    """A conv whose output is masked by ``nonzero`` (as SMSR's sparse masks): no meta kernel exists for it."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = 1
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        keep = torch.nonzero(y.flatten() > 0).numel()
        return y[:, :3] * (keep > 0)


def test_data_dependent_models_are_counted_on_the_cpu():
    ops = count_ops(_DataDependent(), (6, 7))
    assert ops.counted_on == "cpu"
    assert ops.macs == {"conv": 4 * 6 * 7 * 3 * 9}


def test_interpolation_and_normalisation_are_counted_apart_from_macs():
    class Body(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(3)

        def forward(self, x):
            x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)

    ops = count_ops(_Wrap(Body(), scale=2), (5, 4))
    assert ops.total_macs == 0
    assert ops.element_ops == {"normalisation": 5 * 3 * 5 * 4, "interpolate": 8 * 3 * 10 * 8}


def test_profile_cli_reports_every_precision_and_thread_count_and_restores_threads(tmp_path, capsys):
    before = torch.get_num_threads()
    out = tmp_path / "p.json"
    rc = main(["profile", "--model", "imdn", "--scale", "2", "--latency-size", "24x16", "--runs", "2",
               "--warmup", "1", "--precision", "fp32", "--precision", "bf16", "--threads", "1", "--json", str(out)])
    assert rc == 0 and torch.get_num_threads() == before
    report = json.loads(out.read_text())
    assert report["params"] == 694_404
    assert abs(report["ops_1280x720_output"]["total_macs"] / 1e9 - 158.8) < 0.5
    assert report["ops_256x256_input"]["input_hw"] == [256, 256]
    assert [(r["precision"], r["threads"]) for r in report["latency"]] == [("fp32", 1), ("bf16", 1)]
    assert all(r["median_ms"] > 0 and (r["peak_memory_mb"] is None or r["peak_memory_mb"] > 0)
               for r in report["latency"])
    assert "conv (MACs)" in capsys.readouterr().out


def test_fp16_on_the_cpu_is_a_config_error():
    with pytest.raises(litesr.ConfigError, match="fp16"):
        measure_latency(_Wrap(nn.Conv2d(3, 3, 1)), (4, 4), precision="fp16")
