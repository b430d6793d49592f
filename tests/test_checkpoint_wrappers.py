"""Containers and wrappers peeled by one rule: Sequential indices (beside a normaliser), Lightning's ``state_dict``
with ``model.``, ``net_g.``, nested ``params``/``params_ema`` with renamed keys."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from checkpoint_forms import rename_blocks, same_outputs, zoo_model
from torch import nn

import litesr


class _Normaliser(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("std", torch.ones(1, 3, 1, 1))


def _forms(model: nn.Module) -> dict[str, object]:
    sd = model.state_dict()
    beside = nn.Sequential(_Normaliser(), model).state_dict()
    return {
        "sequential": nn.Sequential(model).state_dict(),  # 0.fea_conv.weight ...
        "sequential_beside_normaliser": beside,  # 0.mean, 1.fea_conv.weight ...
        "lightning": {"state_dict": {f"model.{k}": v for k, v in beside.items()}, "epoch": 3},
        "net_g_prefix": {f"net_g.{k}": v for k, v in sd.items()},
        "nested_renamed": {"checkpoint": {"params_ema": rename_blocks(sd)}, "iter": 10},
    }


@pytest.mark.parametrize("form", ["sequential", "sequential_beside_normaliser", "lightning", "net_g_prefix",
                                  "nested_renamed"])
def test_wrapped_checkpoint_loads(form: str, tmp_path: Path) -> None:
    model = zoo_model("imdn")
    path = tmp_path / f"{form}.pth"
    torch.save(_forms(model)[form], path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = litesr.load_model(path)
    assert same_outputs(model, loaded)
    ignored = [w for w in caught if "ignored" in str(w.message)]
    assert bool(ignored) == ("normaliser" in form or form == "lightning")  # what was left aside is said
