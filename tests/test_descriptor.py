"""The model descriptor (litesr.descriptor): one reader of what architectures declare, identity without patching."""

from __future__ import annotations

import torch
from torch import nn

import litesr
from litesr.archs.blocks import CALayer, CCALayer
from litesr.archs.san import SOCA
from litesr.checkpoint import save_safetensors
from litesr.descriptor import ModelDescriptor, copy_model, describe, whole_image_statistics
from litesr.fast import Autocast, fold_deploy, prepare_model
from litesr.registry import get_arch


def tiny(name: str, scale: int = 2) -> nn.Module:
    torch.manual_seed(0)
    return litesr.create_model(name, scale=scale, **get_arch(name).tiny).eval()


def test_create_model_gives_identity_and_contract_without_patching_the_module():
    model = litesr.create_model("imdn", scale=4)
    d = describe(model)
    assert isinstance(d, ModelDescriptor)
    assert (d.arch, d.variant, d.scale, d.input_range, d.color_space, d.in_channels) == ("imdn", "imdn", 4, 1.0,
                                                                                       "rgb", 3)
    assert d.config["scale"] == 4 and "litesr_arch" not in vars(model) and "litesr_config" not in vars(model)
    assert len(d.whole_image_layers) > 0  # IMDN's contrast-aware attention declares its squeeze
    assert litesr.describe is describe


def test_variants_y_models_and_size_rules_are_described():
    rlfn = describe(litesr.create_model("rlfn_s", scale=2))
    assert rlfn.variant == "rlfn_s" and rlfn.input_range == 255.0
    vdsr = describe(litesr.create_model("vdsr", scale=3))
    assert vdsr.color_space == "y" and vdsr.in_channels == 1 and vdsr.multi_scale and vdsr.luma_uint8
    smsr = describe(tiny("smsr"))
    assert smsr.size_multiple == 2


def test_multi_scale_models_follow_set_scale():
    model = litesr.create_model("vdsr", scale=2)
    model.set_scale(4)
    assert describe(model).scale == 4 and describe(model).config["scale"] == 4


def test_checkpoints_loaded_by_detection_carry_their_identity(tmp_path):
    model = tiny("rfdn", scale=3)
    path = tmp_path / "rfdn.safetensors"
    save_safetensors(model.state_dict(), path)
    loaded = litesr.load_model(path)
    assert describe(loaded).arch == "rfdn" and describe(loaded).scale == 3
    assert loaded.litesr_arch == "rfdn"  # the compatibility view reads the descriptor


def test_copies_deploy_forms_and_wrappers_keep_the_descriptor():
    model = tiny("ecbsr")
    assert describe(model).deploy_form == "trainable"
    assert describe(copy_model(model)).arch == "ecbsr"
    folded = fold_deploy(model)
    assert describe(folded).arch == "ecbsr" and describe(folded).deploy_form != "trainable"
    imdn = tiny("imdn")
    wrapped = Autocast(prepare_model(imdn, precision="bf16"), "bf16")
    assert describe(wrapped).arch == "imdn" and describe(wrapped).input_range == describe(imdn).input_range


def test_plain_modules_get_the_defaults():
    net = nn.Sequential(nn.Conv2d(3, 12, 3, padding=1), nn.PixelShuffle(2))
    net.scale = 2
    d = describe(net)
    assert (d.arch, d.scale, d.input_range, d.color_space, d.size_multiple) == ("Sequential", 2, 1.0, "rgb", 1)


def test_whole_image_statistics_are_declared_by_the_layer_that_computes_them():
    assert whole_image_statistics(CALayer(16, 4)) == "mean"
    assert whole_image_statistics(CCALayer(16, 4)) == "mean+std"
    # SAN's second-order attention subclasses CALayer but squeezes otherwise: not honoured unless it declares.
    assert whole_image_statistics(SOCA(16, 4)) is None
