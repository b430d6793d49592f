"""ESRGAN / RRDBNet against spandrel 0.4.2: the three key layouts (BasicSR, BSRGAN, the original flattened
``model.N``), Real-ESRGAN's pixel-unshuffle x2 / x1, x8, ESRGAN+; and that the new spandrel architectures make no
official checkpoint of ../shared/weights ambiguous."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from spandrel_parity import load_both, max_difference, randomise

import litesr
from litesr.checkpoint import load_state_dict
from litesr.detect import detect_architecture

SPANDREL_ARCHS = {"esrgan", "compact", "swiftsrgan", "realcugan", "mosr", "moesr", "dctlsa"}


def _old_names(sd: dict) -> dict:
    return {f"model.{k}": v for k, v in sd.items()}  # the prefix the original files carry (litesr strips it)


CASES = [
    ({"scale": 4}, dict),
    ({"scale": 2, "pixel_unshuffle": 2}, dict),  # RealESRGAN_x2plus: 12-channel first conv
    ({"scale": 1, "pixel_unshuffle": 4}, dict),  # 48-channel first conv
    ({"scale": 2, "key_format": "bsrgan"}, dict),
    ({"scale": 4, "key_format": "esrgan_old"}, _old_names),
    ({"scale": 8, "key_format": "esrgan_old"}, _old_names),
    ({"scale": 1, "key_format": "esrgan_old"}, _old_names),
    ({"scale": 4, "key_format": "esrgan_old", "plus": True}, _old_names),  # ESRGAN+
]


@pytest.mark.parametrize(("config", "to_file"), CASES)
def test_matches_spandrel(config: dict, to_file, spandrel, tmp_path: Path) -> None:
    # spandrel fixes the growth channels to 32; litesr reads them off the shapes.
    model = randomise(litesr.create_model("esrgan", num_feat=8, num_block=2, num_grow_ch=32, **config)).eval()
    descriptor, ours = load_both(spandrel, model, tmp_path, to_file)
    assert type(descriptor.model).__name__ == "RRDBNet"
    assert {k: ours.litesr_config[k] for k in model.litesr_config} == model.litesr_config
    hp = descriptor.model.hyperparameters
    assert descriptor.scale == ours.scale == config["scale"]
    assert hp["num_filters"] == 8 and hp["num_blocks"] == 2 and hp["plus"] == config.get("plus", False)
    assert (hp["shuffle_factor"] or 1) == ours.pixel_unshuffle
    assert descriptor.input_channels == 3 and descriptor.output_channels == 3
    x = torch.rand(1, 3, 12, 16, generator=torch.Generator().manual_seed(1))
    assert max_difference(descriptor.model, ours, x) <= 1e-5


def test_growth_channels_spandrel_cannot_read() -> None:
    """A superset: growth 16 (spandrel assumes 32) is detected and round-trips."""
    model = litesr.create_model("esrgan", scale=4, num_feat=8, num_block=1, num_grow_ch=16)
    matches = detect_architecture(model.state_dict())
    assert [(m.arch, m.config["num_grow_ch"]) for m in matches] == [("esrgan", 16)]


def test_unshuffle_model_pads_odd_sizes() -> None:
    model = randomise(litesr.create_model("esrgan", scale=2, pixel_unshuffle=2, num_feat=8, num_block=1)).eval()
    assert model.pad_multiple == 2
    with torch.no_grad():
        assert model(torch.rand(1, 3, 7, 9)).shape == (1, 3, 14, 18)


def test_layouts_have_their_official_names() -> None:
    keys = {fmt: set(litesr.create_model("esrgan", key_format=fmt, num_block=1).state_dict())
            for fmt in ("basicsr", "bsrgan", "esrgan_old")}
    assert {"conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_up2.weight",
            "conv_hr.weight", "conv_last.weight"} <= keys["basicsr"]
    assert {"RRDB_trunk.0.RDB3.conv5.weight", "trunk_conv.weight", "upconv1.weight", "HRconv.weight"} <= keys["bsrgan"]
    assert {"0.weight", "1.sub.0.RDB1.conv1.0.weight", "1.sub.1.weight", "3.weight", "6.weight", "8.weight",
            "10.weight"} <= keys["esrgan_old"]
    assert not {"2.weight", "4.weight", "9.weight", "11.weight"} & keys["esrgan_old"]


def test_paper_size() -> None:
    # RRDB_ESRGAN_x4.pth: 23 blocks of 64 channels, growth 32 -> 16,697,987 parameters.
    assert litesr.count_parameters(litesr.create_model("esrgan", scale=4)) == 16_697_987


@pytest.mark.slow
def test_shared_weights_stay_unambiguous(weights_dir: Path) -> None:
    """No official checkpoint of ../shared/weights is claimed by one of the spandrel architectures added here."""
    claimed = []
    for path in sorted(weights_dir.rglob("*.pth")):
        archs = {m.arch for m in detect_architecture(load_state_dict(path))}
        if archs & SPANDREL_ARCHS:
            claimed.append(f"{path.relative_to(weights_dir)}: {sorted(archs)}")
    assert not claimed, claimed
