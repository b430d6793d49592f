"""DRCN (Kim et al., CVPR 2016): the paper's parameter count, recursion, skip connection, recursive supervision."""

from __future__ import annotations

import pytest
import torch

from litesr.detect import load_model
from litesr.imresize import imresize
from litesr.registry import count_parameters, create_model, get_variant


def test_paper_parameter_count_is_the_conv_weights() -> None:
    with torch.device("meta"):
        model = create_model("drcn", scale=2)
    conv_weights = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 4)
    assert conv_weights == 1_774_080 == get_variant("drcn").paper_params[2]  # 2304 + 3 * 589,824 + 2304
    assert count_parameters(model) == 1_774_080 + 4 * 256 + 1 + 16  # biases and the 16 fusion weights


def test_one_inference_conv_is_shared_by_every_recursion() -> None:
    model = create_model("drcn", scale=2, n_feats=8, recursions=5)
    assert len(model.inference) == 2 and model.recursion_weights.shape == (5,)
    assert torch.allclose(model.recursion_weights, torch.full((5,), 0.2))


def test_output_is_the_weighted_sum_of_skip_connected_predictions() -> None:
    torch.manual_seed(0)
    model = create_model("drcn", scale=3, n_feats=8, recursions=4).eval()
    with torch.no_grad():
        model.recursion_weights.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
        x = torch.rand(1, 1, 7, 9)
        preds = model.predictions(x)
        out = model(x)
        # With a zero reconstruction net every prediction is the bicubic input: the skip connection.
        for p in model.reconstruction.parameters():
            p.zero_()
        skip = model.predictions(x)
    assert out.shape == (1, 1, 21, 27) and len(preds) == 4
    assert torch.allclose(out, sum(w * p for w, p in zip([0.1, 0.2, 0.3, 0.4], preds)), atol=1e-6)
    assert all(torch.allclose(p, imresize(x, scale=3)) for p in skip)


def test_recursive_supervision_loss_follows_the_paper() -> None:
    torch.manual_seed(0)
    model = create_model("drcn", scale=2, n_feats=8, recursions=3).train()
    x, target = torch.rand(2, 1, 6, 6), torch.rand(2, 1, 12, 12)
    out = model(x)
    preds = model.recursion_outputs
    expected = 0.5 * 0.7 * sum(((p - target) ** 2).mean() for p in preds) / 3 + 0.5 * 0.3 * ((out - target) ** 2).mean()
    assert model.recursive_supervision_loss(out, target, alpha=0.7).item() == pytest.approx(expected.item(), rel=1e-6)
    model.eval()
    model(x)
    with pytest.raises(RuntimeError, match="training-mode"):
        model.recursive_supervision_loss(out, target, 0.5)


def test_detect_reads_the_config_back() -> None:
    model = create_model("drcn", scale=2, n_feats=16, recursions=6)
    loaded = load_model(model.state_dict())
    assert loaded.litesr_arch == "drcn" and loaded.litesr_config["recursions"] == 6
    assert loaded.litesr_config["n_feats"] == 16
