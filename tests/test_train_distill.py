"""Knowledge distillation: the teacher never changes, runs without autograd, and both distillation terms train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from strategy_helpers import Recorder, tiny_config

from litesr.errors import ConfigError
from litesr.registry import create_model
from litesr.train import build_config


def _teacher_file(tmp_path: Path, scale: int = 2) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(1)
    teacher = create_model("imdn", scale=scale, nf=16, num_modules=2)
    path = tmp_path / f"imdn_x{scale}.safetensors"
    save_file(teacher.state_dict(), str(path))
    return path


def _distill(tmp_path: Path, weights: Path, **extra) -> dict:
    train = {"iterations": 3, "batch_size": 2, "ema": {"enabled": False},
             "distill": {"teacher": "imdn", "teacher_weights": str(weights), "features": {"fuse": "c"}, **extra}}
    return tiny_config(tmp_path, train=train)


def test_teacher_frozen_no_grad_and_feature_adapters_train(tmp_path: Path) -> None:
    trainer = Recorder(build_config(_distill(tmp_path, _teacher_file(tmp_path))))
    teacher = trainer.strategies.distill.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    outputs = []
    teacher.register_forward_hook(lambda m, i, o: outputs.append(o))
    adapter = trainer.models["distill_adapters"]
    adapter_before = [p.detach().clone() for p in adapter.parameters()]
    trainer.fit()
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())  # never changes
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    assert outputs and all(not o.requires_grad for o in outputs)  # computed under torch.no_grad
    assert any(not torch.equal(a, b) for a, b in zip(adapter_before, adapter.parameters()))  # adapters learn
    assert adapter["fuse"].in_channels == 8 and adapter["fuse"].out_channels == 16  # student -> teacher channels
    losses = trainer.seen[-1]["losses"]
    assert losses["distill_out"] > 0 and losses["distill_feat"] > 0
    assert not (Path(trainer.run_dir) / "teacher_last.safetensors").exists()  # the teacher is not checkpointed
    trainer.close()


def test_teacher_of_another_scale_is_refused_before_training(tmp_path: Path) -> None:
    cfg = _distill(tmp_path, _teacher_file(tmp_path, scale=4))
    with pytest.raises(ConfigError, match=r"cfg\.yml: train\.distill\.teacher_weights .* x4 imdn.* x2"):
        build_config(cfg, source="cfg.yml")


def test_unknown_layer_and_missing_file_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cfg\.yml: train\.distill\.teacher_weights .*no such file"):
        build_config(_distill(tmp_path, tmp_path / "absent.pth"), source="cfg.yml")
    with pytest.raises(ConfigError, match="unknown key 'train.distil'.*did you mean 'train.distill'"):
        build_config(tiny_config(tmp_path, train={"distil": {"teacher": "imdn"}}), source="cfg.yml")
    cfg = build_config(_distill(tmp_path, _teacher_file(tmp_path), features={"fusee": "c"}))
    with pytest.raises(ConfigError, match="student has no layer 'fusee'.*fuse"):
        Recorder(cfg)


def test_ema_copy_carries_no_distillation_hooks(tmp_path: Path) -> None:
    cfg = _distill(tmp_path, _teacher_file(tmp_path))
    cfg["train"]["ema"] = {"enabled": True, "decay": 0.9}
    trainer = Recorder(build_config(cfg))
    assert trainer.net.fuse._forward_hooks  # the student's hooked layer
    assert not trainer.ema.module.fuse._forward_hooks  # the EMA copy was made before the hooks
    trainer.fit()
    trainer.close()
