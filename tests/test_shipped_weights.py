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
from litesr.shipped import shipped_record, shipped_weights
from litesr.upscale_jobs import DEFAULT_MODELS, FAST_MODELS

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


def test_the_record_lists_exactly_the_shipped_files():
    """litesr/weights/shipped.json, the variants' `pretrained` entries and the files on disk name the same files."""
    recorded = {(e.model, scale): e.file for e in shipped_weights() for scale in e.served_scales}
    registered = {(name, scale): all_variants()[name].pretrained[scale] for name, scale in SHIPPED}
    assert recorded == registered
    assert sorted(e.file for e in shipped_weights()) == sorted(p.name for p in WEIGHTS.glob("*.safetensors"))
    for e in shipped_weights():
        datasets = {key.split()[0] for key in e.results}
        assert e.iterations > 0 and e.command.startswith("OMP_NUM_THREADS") and "Set5" in datasets, e.file
        if e.scales:  # an arbitrary-scale file: a bird figure per listed scale
            assert sorted(e.bird_psnr) == sorted(e.scales), e.file


@pytest.mark.parametrize("name,scale", SHIPPED)
def test_shipped_file_reproduces_its_recorded_psnr(name: str, scale: int, datasets_dir: Path, tmp_path: Path):
    folder = tmp_path / "HR"
    folder.mkdir()
    (folder / "bird.png").write_bytes((datasets_dir / "Set5" / "HR" / "bird.png").read_bytes())
    model = litesr.create_model(name, scale=scale, pretrained=True)
    result = evaluate(model, tmp_path, scale=scale)
    assert np.isclose(result.psnr, shipped_record(name, scale).bird_psnr_at(scale), atol=0.01), result.psnr


def test_shipped_arbitrary_scale_file_beats_bicubic_by_1db_between_integer_factors(datasets_dir: Path, tmp_path: Path):
    """The shipped Meta-SR at x2.5 and x3.5 (no integer factor) on bird, Meta-SR's protocol; measured 36.99 dB at
    x2.5 against bicubic's 34.33 when it was added."""
    from litesr.arbitrary import evaluate_at_scale

    (tmp_path / "bird.png").write_bytes((datasets_dir / "Set5" / "HR" / "bird.png").read_bytes())
    model = litesr.create_model("metasr_litesr", scale=4, pretrained=True)
    result = evaluate_at_scale(model, tmp_path, 2.5)
    assert np.isclose(result.psnr, 36.990, atol=0.01), result.psnr
    assert result.psnr > result.bicubic_psnr + 1.0
    result = evaluate_at_scale(model, tmp_path, 3.5)
    assert result.psnr > result.bicubic_psnr + 1.0
