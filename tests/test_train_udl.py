"""UDL: the variance head learns in stage 1 (it gets gradients), is frozen in stage 2, and the logged terms switch."""

from __future__ import annotations

from pathlib import Path

import torch
from strategy_helpers import Recorder, tiny_config

from litesr.train import build_config
from litesr.train.udl import esu_loss, udl_loss


def test_udl_head_learns_in_stage1_and_is_frozen_in_stage2(tmp_path: Path) -> None:
    cfg = build_config(tiny_config(tmp_path, train={"iterations": 4, "batch_size": 2, "ema": {"enabled": False},
                                                    "udl": {"stage1_iters": 2}}))
    trainer = Recorder(cfg)
    head = trainer.models["udl_head"]
    assert any(p is q for p in head.parameters() for g in trainer.optimizers["net"].param_groups for q in g["params"])
    before = [p.detach().clone() for p in head.parameters()]
    grads: list[bool] = []
    original = trainer.backward_and_step

    def spy(loss, opt, model):  # noqa: ANN001, ANN202
        loss.backward()
        grads.append(all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in head.parameters()))
        opt.step()

    trainer.backward_and_step = spy
    trainer.fit()
    trainer.backward_and_step = original
    assert grads[:2] == [True, True]  # stage 1: the ESU loss reaches every head parameter
    assert "udl_esu" in trainer.seen[0]["losses"] and "udl" not in trainer.seen[0]["losses"]
    assert "udl" in trainer.seen[3]["losses"] and "udl_esu" not in trainer.seen[3]["losses"]
    after_stage1 = [p.detach().clone() for p in head.parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(before, after_stage1))
    assert (Path(cfg["output"]) / "t" / "udl_head_last.safetensors").is_file()
    trainer.close()


def test_udl_losses_follow_the_paper_formulas() -> None:
    sr, hr = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    s = torch.zeros(1, 1, 4, 4)
    assert float(esu_loss(sr, hr, s)) == 1.0  # exp(0) * 1 + 2 * 0
    s[..., 0, 0] = 2.0
    # s_hat = s - min(s): only the pixel with s = 2 counts, with weight 2, on 3 channels of 16 pixels
    assert abs(float(udl_loss(sr, hr, s)) - 2.0 / 16) < 1e-6


def test_udl_run_resumes_with_its_head(tmp_path: Path) -> None:
    from litesr.train import run

    base = tiny_config(tmp_path, train={"iterations": 2, "batch_size": 2, "ema": {"enabled": False},
                                        "udl": {"stage1_iters": 1}})
    first = run(build_config(base))
    base["train"]["iterations"] = 3
    second = run(build_config(base), resume=first["run_dir"])
    assert second["iteration"] == 3 and second["status"] == "completed"
