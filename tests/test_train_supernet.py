"""Supernet training (``train.supernet``): each step trains the width ARM's rule draws (probability ~ MACs^2), the
draw is a function of seed and iteration, the network is back at full width after every step, only the drawn
subnet's channels learn, and a model without subnets is refused with the key named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from strategy_helpers import Recorder, tiny_config

import litesr
from litesr.errors import ConfigError
from litesr.train import build_config
from litesr.train.supernet import SupernetWidths

TINY_ARM = {"nf": 8, "s": 4, "m": 1, "widths": [0, 4, 6, 8]}


def _arm_config(tmp_path: Path, **supernet: object) -> dict:
    raw = tiny_config(tmp_path, train={"iterations": 6, "batch_size": 2, "ema": {"enabled": False},
                                       "supernet": {"enabled": True, **supernet}})
    raw["model"] = {"name": "arm_fsrcnn", "scale": 4, "options": dict(TINY_ARM)}
    return raw


def test_widths_follow_arms_cost_squared_rule() -> None:
    net = litesr.create_model("arm_fsrcnn", scale=4, **TINY_ARM)
    widths = SupernetWidths({"width_weights": "cost2"}, net, 6, seed=0)
    costs = net.subnet_macs(6, 6)[1:]
    np.testing.assert_allclose(widths.probability, costs ** 2 / (costs ** 2).sum())
    drawn = [widths.width_at(i) for i in range(4000)]
    share = np.array([drawn.count(w) for w in (4, 6, 8)]) / len(drawn)
    np.testing.assert_allclose(share, widths.probability, atol=0.03)
    assert drawn[:50] == [SupernetWidths({"width_weights": "cost2"}, net, 6, seed=0).width_at(i) for i in range(50)]
    uniform = SupernetWidths({"width_weights": "uniform"}, net, 6, seed=0)
    np.testing.assert_allclose(uniform.probability, [1 / 3] * 3)


def test_each_step_trains_the_drawn_width_and_returns_to_full(tmp_path: Path) -> None:
    trainer = Recorder(build_config(_arm_config(tmp_path, width_weights="uniform")))
    trainer.fit()
    logged = [int(step["losses"]["width"]) for step in trainer.seen]
    expected = [trainer.strategies.supernet.width_at(i) for i in range(6)]
    assert logged == expected and len(set(logged)) > 1
    assert trainer.net.width == 8
    trainer.close()


def test_a_narrow_step_leaves_the_other_channels_alone(tmp_path: Path) -> None:
    raw = _arm_config(tmp_path, width_weights="uniform")
    raw["train"]["optimizer"] = {"weight_decay": 0.0}  # AdamW's decay would move every weight, trained or not
    trainer = Recorder(build_config(raw))
    supernet = trainer.strategies.supernet
    supernet.width_at = lambda iteration: 4  # type: ignore[method-assign]
    head = trainer.net.head_conv[0].weight
    before = head.detach().clone()
    trainer.fit()
    changed = (head.detach() - before).abs().flatten(1).amax(1)
    assert torch.all(changed[:4] > 0) and torch.all(changed[4:] == 0)  # only the 4-channel subnet learned
    trainer.close()


def test_a_model_without_subnets_is_refused(tmp_path: Path) -> None:
    raw = tiny_config(tmp_path, train={"supernet": {"enabled": True}})
    with pytest.raises(ConfigError, match="train.supernet needs a supernet"):
        Recorder(build_config(raw))
    raw = _arm_config(tmp_path, width_weights="square")
    with pytest.raises(ConfigError, match="width_weights must be cost2 or uniform"):
        build_config(raw)
