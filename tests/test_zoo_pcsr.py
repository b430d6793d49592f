"""PCSR: parity with the official code (3587jjh/PCSR) on shared random weights, pixel routing and its MAC report."""

from __future__ import annotations

import pytest
import torch
from test_official_parity import official_modules

from litesr.dynamic import mac_report
from litesr.registry import create_model

REPO = "3587jjh/PCSR"
FILES = {p: p for p in ("models/models.py", "models/pcsr.py", "models/sampler.py", "models/fsrcnn.py",
                        "models/mlp.py", "models/utils.py", "utils/utils.py")}
CONFIG = {"name": "pcsr-phase1", "args": {
    "encoder_spec": {"name": "fsrcnn", "args": {"d": 48, "no_upsampling": True}},
    "heavy_sampler_spec": {"name": "liif-sampler", "args": {"imnet_spec": {"name": "mlp",
                                                                           "args": {"hidden_list": [58] * 4}}}},
    "light_sampler_spec": {"name": "liif-sampler", "args": {"imnet_spec": {"name": "mlp",
                                                                           "args": {"hidden_list": [10] * 3}}}},
    "classifier_spec": {"name": "liif-sampler", "args": {"imnet_spec": {"name": "mlp", "args": {"hidden_list": []}}}},
}}


def _official(tmp_path):  # noqa: ANN001, ANN202 - the official package
    (tmp_path / "models").mkdir(exist_ok=True)
    # Only the modules PCSR-FSRCNN needs; the k-means and FLOP helpers (CUDA, pandas) are stubbed.
    (tmp_path / "models" / "__init__.py").write_text("from .models import register, make\n"
                                                     "from . import mlp, pcsr, sampler, fsrcnn\n")
    (tmp_path / "utils").mkdir(exist_ok=True)
    (tmp_path / "utils" / "__init__.py").write_text("from utils.utils import *\n")
    (tmp_path / "flops.py").write_text("def get_model_flops(*a, **k):\n    raise RuntimeError('stub')\n")
    (tmp_path / "fast_pytorch_kmeans.py").write_text("class KMeans:\n    def __init__(self, *a, **k):\n        pass\n")
    import models
    from utils import make_coord

    return models, make_coord


@pytest.mark.parametrize("hw", [(13, 17), (8, 8)])
def test_pcsr_matches_official_code(tmp_path, hw) -> None:
    with official_modules(tmp_path, REPO, FILES):
        models, make_coord = _official(tmp_path)
        torch.manual_seed(0)
        off = models.make(CONFIG).eval()
        off.cost_list[4] = torch.tensor([0.5, 0.5])  # precomputed: the official code measures it on CUDA
        ours = create_model("pcsr_fsrcnn", scale=4).eval()
        ours.load_state_dict(off.state_dict())
        assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in off.parameters()) == 24_502
        # Random weights everywhere (the official init zeroes biases, which routes every pixel alike).
        with torch.no_grad():
            for p in off.parameters():
                p.normal_(0, 0.1)
        ours.load_state_dict(off.state_dict())
        lr = torch.rand(1, 3, *hw)
        big_h, big_w = 4 * hw[0], 4 * hw[1]
        coord = make_coord((big_h, big_w)).unsqueeze(0)
        cell = torch.ones_like(coord)
        cell[:, :, 0] *= 2 / big_h
        cell[:, :, 1] *= 2 / big_w
        with torch.no_grad():
            expected, flag = off(lr, coord, cell, scale=4, k=0.0)
            got = ours(lr)
        expected = expected.transpose(1, 2).reshape(1, 3, big_h, big_w)
        assert 0 < int(flag.sum()) < flag.numel(), "the test needs pixels on both paths"
        assert ours.last_routing["heavy_pixels"] == int(flag.sum())
        # float32 (the official coordinates are float32): relative to the output magnitude
        assert (got - expected).abs().max().item() < 1e-5 * max(1.0, expected.abs().max().item())


def _mlp_macs(sampler: torch.nn.Module) -> int:
    return sum(m.weight.numel() for m in sampler.modules() if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_threshold_sends_every_pixel_to_one_path_and_the_report_counts_it(threshold: float) -> None:
    torch.manual_seed(1)
    model = create_model("pcsr_fsrcnn", scale=3, threshold=threshold)
    h, w = 9, 11
    report = mac_report(model, torch.rand(1, 3, h, w))
    pixels = 9 * h * w
    heavy = pixels if threshold == 0.0 else 0
    assert report.routing == {"pixels": pixels, "heavy_pixels": heavy, "light_pixels": pixels - heavy}
    encoder = sum(m.weight.numel() for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)) * h * w
    path = _mlp_macs(model.heavy_sampler) if heavy else _mlp_macs(model.light_sampler)
    assert report.spent_macs == encoder + pixels * (_mlp_macs(model.classifier) + path)
    full = encoder + pixels * (_mlp_macs(model.classifier) + _mlp_macs(model.heavy_sampler))
    assert report.full_macs == full
    assert (report.skipped_macs == 0) == (threshold == 0.0)


def test_paper_rule_is_the_argmax_and_bad_thresholds_fail() -> None:
    model = create_model("pcsr_fsrcnn", scale=2)
    prob = torch.tensor([[0.6, 0.4], [0.4, 0.6], [0.5, 0.5]])
    assert model.route(prob).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="threshold"):
        model.set_threshold(1.5)


def test_profile_input_prints_the_mac_report(tmp_path, capsys) -> None:
    import numpy as np
    from PIL import Image

    from litesr.cli import main

    path = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((10, 12, 3)) * 255).astype("uint8")).save(path)
    assert main(["profile", "--model", "pcsr_fsrcnn", "--scale", "2", "--input", str(path)]) == 0
    out = capsys.readouterr().out
    assert "G MACs of" in out and "heavy_pixels" in out
    assert main(["profile", "--model", "imdn", "--scale", "2", "--input", str(path)]) == 1
    assert "not a dynamic-inference model" in capsys.readouterr().err
