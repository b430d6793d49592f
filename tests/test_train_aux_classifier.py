"""Auxiliary classification head: labels are the training folder's index, the head learns, the term is logged."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from strategy_helpers import Recorder, tiny_config

from litesr.errors import ConfigError
from litesr.train import build_config


def test_aux_head_labels_from_folders_and_learns(tmp_path: Path) -> None:
    cfg = build_config(tiny_config(tmp_path, folders=2, train={
        "iterations": 3, "batch_size": 2, "ema": {"enabled": False},
        "aux_classifier": {"weight": 0.5, "layer": "fuse"}}))
    trainer = Recorder(cfg)
    aux = trainer.strategies.aux
    assert aux.labels.tolist() == [0, 0, 0, 1, 1, 1]  # three images per folder
    assert aux.head.out_features == 2 and aux.head.in_features == 8
    before = aux.head.weight.detach().clone()
    trainer.fit()
    assert not torch.equal(before, aux.head.weight)
    losses = trainer.seen[-1]["losses"]
    assert losses["aux_ce"] > 0 and 0.0 <= losses["aux_acc"] <= 1.0
    assert abs(losses["loss"] - losses["l1"] - losses["aux_ce"]) < 1e-5  # accuracy is logged, not added
    trainer.close()


def test_aux_head_needs_several_folders_and_a_layer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="aux.yml: train.aux_classifier needs datasets.train.hr_dir to list"):
        build_config(tiny_config(tmp_path, train={"aux_classifier": {"weight": 0.5, "layer": "fuse"}}),
                     source="aux.yml")
    with pytest.raises(ConfigError, match="aux.yml: train.aux_classifier.layer is not set"):
        build_config(tiny_config(tmp_path, folders=2, train={"aux_classifier": {"weight": 0.5}}), source="aux.yml")
