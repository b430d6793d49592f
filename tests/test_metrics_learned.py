"""LPIPS and DISTS: litesr's networks fed a weights file equal the reference networks fed the same file; the heads
shipped in the lpips package load unchanged; missing files fail in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from litesr.errors import ConfigError
from litesr.metrics import create_metric
from tests.metrics_reference_libs import lpips_package, pyiqa_module


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_lpips_random_weights_equal_the_lpips_package(tmp_path, net):
    lp = lpips_package()
    torch.manual_seed(0)
    ref = lp.LPIPS(net=net, pretrained=False, pnet_rand=True, verbose=False).eval()
    for p in ref.parameters():  # random heads too, so a head mix-up cannot hide behind shared weights
        p.data.uniform_(0, 0.1)
    path = tmp_path / f"{net}.pth"
    torch.save(ref.state_dict(), path)
    metric = create_metric("lpips", net=net, weights=path)
    x, y = torch.rand(2, 3, 64, 80), torch.rand(2, 3, 64, 80)
    expected = ref(x, y, normalize=True).flatten().double()
    got = metric(x, y)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-7), (got, expected)
    assert not torch.allclose(metric(x, x), expected)  # identical images: 0


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_lpips_shipped_heads_load_unchanged_with_a_torchvision_backbone(tmp_path, net):
    lp = lpips_package()
    heads = Path(lp.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    torch.manual_seed(1)
    ref = lp.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()  # package heads, random backbone
    features = {}
    for k, v in ref.state_dict().items():  # the backbone as torchvision would save it: features.<i>.*
        if k.startswith("net.slice"):
            features["features." + k.split(".", 2)[2]] = v
    torch.save(features, tmp_path / "backbone.pth")
    metric = create_metric("lpips", net=net, weights=[heads, tmp_path / "backbone.pth"])
    x, y = torch.rand(1, 3, 64, 64), torch.rand(1, 3, 64, 64)
    assert torch.allclose(metric(x, y), ref(x, y, normalize=True).flatten().double(), rtol=1e-5, atol=1e-7)


def test_dists_random_weights_equal_pyiqa(tmp_path):
    arch = pyiqa_module("dists_arch")
    torch.manual_seed(0)
    ref = arch.DISTS(pretrained=False).eval()
    path = tmp_path / "dists.pth"
    torch.save(ref.state_dict(), path)
    metric = create_metric("dists", weights=path)
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = ref(x, y).flatten().double()
    assert torch.allclose(metric(x, y), expected, rtol=1e-5, atol=1e-7)


def test_learned_metrics_name_the_missing_weights(tmp_path):
    with pytest.raises(ConfigError, match="--metric-weights lpips=FILE"):
        create_metric("lpips")
    with pytest.raises(ConfigError, match="nope.pth: no such weights file"):
        create_metric("dists", weights=tmp_path / "nope.pth")
    torch.save({"lin0.model.1.weight": torch.zeros(1, 64, 1, 1)}, tmp_path / "heads_only.pth")
    with pytest.raises(ConfigError, match="weights missing"):
        create_metric("lpips", weights=tmp_path / "heads_only.pth")
