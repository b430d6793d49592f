"""litesr's shipped weights: every file loads as its registered architecture and scale, and reproduces the Set5 PSNR
recorded when it was trained (one image, bird, MATLAB protocol: Y channel, border crop = scale), to 0.01 dB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import litesr
from litesr.descriptor import describe
from litesr.evaluate import evaluate
from litesr.registry import all_variants
from litesr.upscale_jobs import DEFAULT_MODELS, FAST_MODELS

# Set5 "bird" PSNR of each shipped file, measured with evaluate() when the file was added.
RECORDED_BIRD_PSNR: dict[tuple[str, int], float] = {
    ("rdesa_s", 2): 41.0252,
    ("rdesa_s", 3): 35.2133,
    ("rdesa_s", 4): 32.5809,
    ("ssiu", 2): 41.7274,
    ("ssiu", 3): 35.9676,
    ("ssiu", 4): 33.0737,
}

SHIPPED = sorted((name, scale) for name, v in all_variants().items() for scale in v.pretrained)
WEIGHTS = Path(litesr.__file__).parent / "weights"


def test_every_default_model_ships_weights_for_its_scale():
    for defaults in (DEFAULT_MODELS, FAST_MODELS):
        for scale, name in defaults.items():
            assert scale in all_variants()[name].pretrained, (name, scale)


def test_shipped_weights_stay_small():
    assert sum(p.stat().st_size for p in WEIGHTS.glob("*.safetensors")) < 20 * 10**6


@pytest.mark.parametrize("name,scale", SHIPPED)
def test_shipped_file_loads_as_its_architecture(name: str, scale: int):
    model = litesr.create_model(name, scale=scale, pretrained=True)
    d = describe(model)
    assert d.variant == name and d.scale == scale
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name,scale", [k for k in SHIPPED if k in RECORDED_BIRD_PSNR])
def test_shipped_file_reproduces_its_recorded_psnr(name: str, scale: int, datasets_dir: Path, tmp_path: Path):
    folder = tmp_path / "HR"
    folder.mkdir()
    (folder / "bird.png").write_bytes((datasets_dir / "Set5" / "HR" / "bird.png").read_bytes())
    model = litesr.create_model(name, scale=scale, pretrained=True)
    result = evaluate(model, tmp_path, scale=scale)
    assert np.isclose(result.psnr, RECORDED_BIRD_PSNR[(name, scale)], atol=0.01), result.psnr
