"""`litesr eval --scale 2.5` and `litesr upscale --outscale 2.7`: arbitrary-scale models run at the factor (Meta-SR
protocol), fixed-scale models upscale by their own factor then MATLAB bicubic; bad factors are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from litesr.checkpoint import save_safetensors
from litesr.cli import main
from litesr.data.train import make_synthetic_set
from litesr.registry import create_model


@pytest.fixture(scope="module")
def hr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_set(tmp_path_factory.mktemp("arb") / "HR", count=2, size=40)


def _weights(path: Path, name: str, **config) -> Path:  # noqa: ANN003 - the model's config
    torch.manual_seed(0)
    save_safetensors(create_model(name, **config).state_dict(), path)
    return path


def test_eval_at_non_integer_scale_of_an_arbitrary_model(hr: Path, tmp_path: Path) -> None:
    weights = _weights(tmp_path / "liif.safetensors", "liif_edsr_baseline", n_resblocks=1, n_feats=8,
                       hidden=(16, 16), residual="bicubic")
    out = tmp_path / "r.json"
    assert main(["eval", "--weights", str(weights), "--dataset", str(hr.parent), "--scale", "2.5", "--scale", "3",
                 "--device", "cpu", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert [r["scale"] for r in rows] == [2.5, 3.0] and all(np.isfinite(r["psnr"]) for r in rows)
    # residual=bicubic starts at (torch's) bicubic, and the checkpoint says so: loaded without the residual the
    # untrained model is about 8 dB below MATLAB bicubic
    assert all(abs(r["psnr"] - r["bicubic_psnr"]) < 1.5 for r in rows)


def test_eval_refuses_non_integer_scale_for_integer_models(hr: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    weights = _weights(tmp_path / "espcn.safetensors", "espcn", scale=2)
    assert main(["eval", "--weights", str(weights), "--dataset", str(hr.parent), "--scale", "2.5"]) == 1
    err = capsys.readouterr().err
    assert "espcn" in err and "x2" in err and "x2.5" in err and len(err.strip().splitlines()) == 1
    assert main(["eval", "--model", "bicubic", "--dataset", str(hr.parent), "--scale", "2.5"]) == 1
    assert "bicubic" in capsys.readouterr().err


def test_upscale_outscale_fixed_model_resizes_and_says_so(hr: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    weights = _weights(tmp_path / "espcn.safetensors", "espcn", scale=2)
    source = next(hr.glob("*.png"))
    target = tmp_path / "out.png"
    assert main(["upscale", str(source), "--weights", str(weights), "--outscale", "2.7", "-o", str(target)]) == 0
    assert "then MATLAB bicubic to x2.7" in capsys.readouterr().out
    assert Image.open(target).size == (round(40 * 2.7), round(40 * 2.7))


def test_upscale_outscale_arbitrary_model_and_trained_range(hr: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    weights = _weights(tmp_path / "meta.safetensors", "metasr_edsr_baseline", n_resblocks=1, n_feats=8,
                       residual="bicubic")
    source = next(hr.glob("*.png"))
    target = tmp_path / "out.png"
    assert main(["upscale", str(source), "--weights", str(weights), "--outscale", "1.5", "-o", str(target)]) == 0
    assert "at x1.5 (arbitrary-scale" in capsys.readouterr().out
    assert Image.open(target).size == (60, 60)
    with pytest.warns(UserWarning, match="outside the trained range") as caught:
        assert main(["upscale", str(source), "--weights", str(weights), "--outscale", "4.5", "-o",
                     str(tmp_path / "big.png")]) == 0
    assert len([w for w in caught if "trained range" in str(w.message)]) == 1
    assert main(["upscale", str(source), "--weights", str(weights), "--outscale", "-1", "-o",
                 str(tmp_path / "bad.png")]) == 1
    assert "--outscale" in capsys.readouterr().err and not (tmp_path / "bad.png").exists()
