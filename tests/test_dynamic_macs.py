"""litesr.dynamic.mac_report: the MACs SMSR's sparse masks skip, and refusal for static models."""

from __future__ import annotations

import pytest
import torch

from litesr.dynamic import is_dynamic, mac_report
from litesr.errors import ConfigError
from litesr.profile import count_ops
from litesr.registry import create_model


def _tiny_smsr() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("smsr", scale=2, n_feats=16, n_blocks=2, n_layers=2)


def test_smsr_report_counts_the_pixels_its_masks_skip() -> None:
    model = _tiny_smsr()
    x = torch.rand(1, 3, 12, 14)
    report = mac_report(model, x)
    kept, total = report.routing["kept_pixels"], report.routing["mask_pixels"]
    assert total == 2 * 12 * 14 and 0 < kept < total, "random weights should keep some pixels, not all"
    assert 0 < report.skipped_macs < report.full_macs
    # The full cost equals what the sparse path computes when every pixel is kept: forcing the masks on by hand.
    with model.full_cost():
        assert count_ops(model, (12, 14)).total_macs == mac_report(model, x).full_macs  # image-independent


def test_smsr_full_cost_leaves_the_output_of_sparse_inference_alone() -> None:
    model = _tiny_smsr().eval()
    x = torch.rand(1, 3, 8, 10)
    with torch.no_grad():
        before = model(x)
        with model.full_cost():
            model(x)
        after = model(x)
    torch.testing.assert_close(before, after, rtol=0, atol=0)


def test_static_models_are_refused() -> None:
    model = create_model("fsrcnn", scale=2)
    assert not is_dynamic(model)
    with pytest.raises(ConfigError, match="not a dynamic-inference model"):
        mac_report(model, torch.rand(1, 3, 8, 8))
