"""rdesa's normalisation option: none keeps the shipped state dict, batch/layer add n1-n3 and are detected."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from strategy_helpers import Recorder, tiny_config
from torch import nn

from litesr.archs.blocks import LayerNorm2d
from litesr.detect import load_model
from litesr.registry import create_model
from litesr.train import build_config


def test_default_norm_keeps_the_shipped_weights_loading() -> None:
    plain = create_model("rdesa_s", scale=2)
    assert not any(".n1." in k for k in plain.state_dict())
    create_model("rdesa_s", scale=2, pretrained=True)  # strict load of the shipped file


@pytest.mark.parametrize(("norm", "cls"), [("batch", nn.BatchNorm2d), ("layer", LayerNorm2d)])
def test_norm_layers_are_built_trained_and_detected(tmp_path: Path, norm: str, cls: type) -> None:
    net = create_model("rdesa", scale=2, norm=norm, channels=8, num_blocks=2, reduction=4, esa_channels=4)
    assert isinstance(net.blocks[0].n2, cls)
    again = load_model(net.state_dict())
    assert isinstance(again.blocks[1].n3, cls)
    cfg = build_config(tiny_config(tmp_path, model={"options": {"channels": 8, "num_blocks": 2, "reduction": 4,
                                                                 "esa_channels": 4, "norm": norm}},
                                   train={"iterations": 2, "batch_size": 2, "ema": {"enabled": False}}))
    trainer = Recorder(cfg)
    before = trainer.net.blocks[0].n1.weight.detach().clone()
    trainer.fit()
    assert not torch.equal(before, trainer.net.blocks[0].n1.weight)
    trainer.close()


def test_unknown_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="norm must be one of none, batch, layer"):
        create_model("rdesa", scale=2, norm="group")
