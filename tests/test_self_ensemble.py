"""`litesr eval --self-ensemble` (x8 geometric ensemble, EDSR+/RCAN+) and the SSIM exponents alpha/beta/gamma."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from litesr import create_model
from litesr.cli import main
from litesr.evaluate import evaluate, run_ensemble_with_luma
from litesr.inference import run_model_with_luma
from litesr.metrics.psnr_ssim import SSIMExponents, checked_ssim_exponents, ssim


def _edsr_style_ensemble(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """EDSR-PyTorch's ``forward_x8`` written out: the 8 inputs from 'v' (flip W), 'h' (flip H) and 't' (transpose)
    applied cumulatively, outputs undone in reverse order, then averaged: an enumeration independent of litesr's."""

    def op(t: torch.Tensor, kind: str) -> torch.Tensor:
        return {"v": t.flip(-1), "h": t.flip(-2), "t": t.transpose(-2, -1)}[kind]

    inputs = [(x, [])]
    for kind in ("v", "h", "t"):
        inputs += [(op(t, kind), ops + [kind]) for t, ops in inputs]
    outs = []
    for t, ops in inputs:
        y = run_model_with_luma(model, t)[0]
        for kind in reversed(ops):
            y = op(y, kind)
        outs.append(y)
    return torch.stack(outs).mean(0)


def test_ensemble_matches_the_edsr_forward_x8_enumeration() -> None:
    torch.manual_seed(0)
    model = create_model("espcn", scale=2).eval()
    x = torch.rand(1, 3, 13, 17)
    with torch.inference_mode():
        ours, luma = run_ensemble_with_luma(model, x)
        plain = run_model_with_luma(model, x)[0]
        reference = _edsr_style_ensemble(model, x)
    assert luma is None and ours.shape == (1, 3, 26, 34)
    assert torch.allclose(ours, reference, atol=1e-6)
    assert (ours - plain).abs().max() > 1e-3  # a random CNN is not flip-equivariant: the ensemble changes things


def test_ensemble_of_a_y_model_averages_its_luma_plane() -> None:
    torch.manual_seed(0)
    model = create_model("fsrcnn", scale=2, num_channels=1, d=8, s=4, m=1).eval()
    x = torch.rand(1, 3, 12, 15)
    with torch.inference_mode():
        _, luma = run_ensemble_with_luma(model, x)
        lumas = []
        for k in range(4):  # the 4 rotations and their flips, through rot90, another way round the group
            for flip in (False, True):
                t = torch.rot90(x, k, (-2, -1))
                t = t.flip(-1) if flip else t
                y = run_model_with_luma(model, t)[1]
                y = y.flip(-1) if flip else y
                lumas.append(torch.rot90(y, -k, (-2, -1)))
    assert luma is not None and torch.allclose(luma, torch.stack(lumas).mean(0), atol=1e-6)


def _save_set(root: Path) -> Path:
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.uniform(0, 1, size=(1, 3, 6, 6)))
    for i, (h, w) in enumerate(((36, 40), (30, 34))):
        up = nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0].clamp(0, 1)
        folder = root / "Tiny" / "HR"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((up * 255).round().byte().permute(1, 2, 0).numpy()).save(folder / f"{i}.png")
    return root


def test_evaluate_self_ensemble_of_bicubic_changes_nothing_and_of_a_cnn_something(tmp_path: Path) -> None:
    root = _save_set(tmp_path)
    bicubic = create_model("bicubic", scale=2)
    plain = evaluate(bicubic, "Tiny", 2, data_root=root)
    plus = evaluate(bicubic, "Tiny", 2, data_root=root, self_ensemble=True)
    # MATLAB bicubic is symmetric and separable: every flip/transpose commutes with it (up to float rounding).
    assert plus.self_ensemble and plus.psnr == pytest.approx(plain.psnr, abs=1e-3)
    torch.manual_seed(0)
    cnn = create_model("espcn", scale=2)
    assert evaluate(cnn, "Tiny", 2, data_root=root, self_ensemble=True).psnr != evaluate(cnn, "Tiny", 2,
                                                                                          data_root=root).psnr


def test_cli_self_ensemble_and_ssim_exponents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _save_set(tmp_path)
    out = tmp_path / "r.json"
    args = ["eval", "--model", "bicubic", "--data-root", str(root), "--dataset", "Tiny", "--scale", "2",
            "--device", "cpu", "--no-progress"]
    assert main([*args, "--self-ensemble", "--ssim-gamma", "2", "--json", str(out)]) == 0
    payload = json.loads(out.read_text())
    assert payload["self_ensemble"] is True and payload["ssim_exponents"] == [1.0, 1.0, 2.0]
    assert "self-ensemble" in capsys.readouterr().out
    assert main([*args, "--json", str(out)]) == 0
    plain = json.loads(out.read_text())
    assert payload["results"][0]["ssim"] < plain["results"][0]["ssim"]  # structure < 1, squared: lower
    capsys.readouterr()
    assert main([*args, "--ssim-alpha", "0"]) == 1
    assert "alpha" in capsys.readouterr().err


def _ssim_by_windows(a: np.ndarray, b: np.ndarray, alpha: float, beta: float, gamma: float) -> float:
    """Wang et al. (2004) eq. 12 evaluated window by window with an explicit 11x11 Gaussian, C3 = C2 / 2."""
    r = np.arange(11) - 5.0
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    w = g / g.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    c3 = c2 / 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            x, y = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mx, my = (w * x).sum(), (w * y).sum()
            sx, sy = np.sqrt((w * (x - mx) ** 2).sum()), np.sqrt((w * (y - my) ** 2).sum())
            sxy = (w * (x - mx) * (y - my)).sum()
            lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
            con = (2 * sx * sy + c2) / (sx**2 + sy**2 + c2)
            struct = (sxy + c3) / (sx * sy + c3)
            values.append(lum**alpha * con**beta * np.sign(struct) * abs(struct) ** gamma)
    return float(np.mean(values))


@pytest.mark.parametrize("exponents", [(1.0, 1.0, 1.0), (2.0, 0.5, 1.5), (1.0, 3.0, 0.7)])
def test_ssim_exponents_match_the_window_by_window_formula(exponents: tuple[float, float, float]) -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(18, 20)).astype(np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, size=a.shape) + 10, 0, 255).astype(np.uint8)
    ours = ssim(a[..., None], b[..., None], y_channel=False, exponents=SSIMExponents(*exponents))
    assert ours == pytest.approx(_ssim_by_windows(a.astype(float), b.astype(float), *exponents), abs=1e-9)


def test_ssim_exponents_are_checked() -> None:
    assert checked_ssim_exponents() == SSIMExponents(1.0, 1.0, 1.0)
    for bad in ({"alpha": 0}, {"beta": -1}, {"gamma": float("nan")}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            checked_ssim_exponents(**bad)
