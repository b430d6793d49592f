"""Network fusion: members frozen when asked (fine-tuned otherwise), the untrained fusion is the members' mean."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from strategy_helpers import TINY_RDESA, Recorder, tiny_config

from litesr.archs.fusion import build_fusion
from litesr.errors import ConfigError
from litesr.forward import run_model
from litesr.registry import create_model
from litesr.train import build_config


def _members(tmp_path: Path) -> list[dict]:
    out = []
    for i, (name, options) in enumerate((("rdesa", TINY_RDESA), ("imdn", {"nf": 16, "num_modules": 1}))):
        torch.manual_seed(i)
        path = tmp_path / f"member{i}.safetensors"
        save_file(create_model(name, scale=2, **options).state_dict(), str(path))
        out.append({"name": name, "weights": str(path)})
    return out


def _fusion_cfg(tmp_path: Path, freeze: bool, members: list[dict] | None = None) -> dict:
    return tiny_config(tmp_path, model={"type": "fusion", "name": None, "options": {}, "scale": 2,
                                        "members": members or _members(tmp_path), "freeze_members": freeze})


@pytest.mark.parametrize("freeze", [True, False])
def test_members_frozen_when_asked_and_fusion_learns(tmp_path: Path, freeze: bool) -> None:
    cfg = build_config(_fusion_cfg(tmp_path, freeze))
    assert cfg["name"] == "t"
    trainer = Recorder(cfg)
    net = trainer.net
    members_before = [p.detach().clone() for p in net.members.parameters()]
    fuse_before = net.fuse.weight.detach().clone()
    trainer.fit()
    members_changed = any(not torch.equal(a, b) for a, b in zip(members_before, net.members.parameters()))
    assert members_changed is (not freeze)
    assert not torch.equal(fuse_before, net.fuse.weight)
    if freeze:
        assert not net.members.training  # frozen members stay in eval mode while the fusion layer trains
    trainer.close()


def test_untrained_fusion_is_the_members_mean(tmp_path: Path) -> None:
    members = _members(tmp_path)
    fusion = build_fusion(members, 2).eval()
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        expected = torch.stack([run_model(m, x) for m in fusion.members]).mean(dim=0)
        assert torch.allclose(fusion(x), expected, atol=1e-6)


def test_missing_member_file_is_named_before_training(tmp_path: Path) -> None:
    members = _members(tmp_path)
    members[1]["weights"] = str(tmp_path / "absent.pth")
    with pytest.raises(ConfigError, match=r"fusion\.yml: model\.members\[1\]\.weights .*absent\.pth: no such file"):
        build_config(_fusion_cfg(tmp_path, True, members), source="fusion.yml")
