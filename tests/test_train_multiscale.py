"""Multi-scale training (train.type multiscale): one VDSR trained on x2, x3 and x4 mixed, validated and evaluated at
each factor."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from litesr.cli import main
from litesr.data.train import SampleStream, make_synthetic_set
from litesr.detect import load_model
from litesr.errors import ConfigError
from litesr.train import build_config, read_state
from litesr.train.multiscale import MultiScalePatches, MultiScaleTrainer

VDSR = {"num_layers": 4, "num_feat": 8}
STEPS = 12


def config(root: Path, name: str, **train) -> dict:
    return {
        "name": name,
        "output": str(root / "runs"),
        "device": "cpu",
        "seed": 4,
        "model": {"name": "vdsr", "scale": 2, "options": VDSR},
        "datasets": {"train": {"hr_dir": str(root / "hr"), "patch_size": 24, "workers": 0, "preload": True,
                               "cache_dir": str(root / "cache")},
                     "val": {"name": "val", "hr_dir": str(root / "val")}},
        "train": {"type": "multiscale", "scales": [2, 3, 4], "iterations": STEPS, "batch_size": 2,
                  "optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
                  "scheduler": {"type": "multistep", "milestones": [8], "gamma": 0.1},
                  "losses": [{"type": "l2", "weight": 288.0}], "clip_theta": 1e-3, "ema": {"enabled": False},
                  **train},
        "val": {"every": 0},
        "checkpoint": {"every": 0},
        "logger": {"print_every": 4, "tensorboard": False, "progress": False},
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multiscale")
    make_synthetic_set(root / "hr", count=3, size=48, seed=3)
    make_synthetic_set(root / "val", count=2, size=36, seed=6)
    return root


class Recorder(MultiScaleTrainer):
    """Keeps each step's factor and learning-rate-adjusted clipping limit."""

    def on_iteration_end(self, metrics):
        self.__dict__.setdefault("scales_seen", []).append(self.batch_scale)


def test_vdsr_multiscale_run_then_eval_at_each_scale(root: Path, capsys: pytest.CaptureFixture) -> None:
    trainer = Recorder(build_config(config(root, "vdsr")))
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 0
    assert set(trainer.scales_seen) == {2, 3, 4}, trainer.scales_seen  # every factor drawn within 12 batches
    assert trainer.scales_seen == [trainer.train_set.scale_of(i) for i in range(STEPS)]
    run_dir = Path(summary["run_dir"])
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in log if "loss" in r)
    assert {r["scale"] for r in log if "psnr" in r} == {2, 3, 4}
    assert summary["best"]["scales"] == [2, 3, 4] and (run_dir / "net_best.safetensors").is_file()
    assert read_state(run_dir)["optimizers"]["net"]["param_groups"][0]["momentum"] == 0.9  # SGD

    weights = run_dir / "net_last.safetensors"
    model = load_model(weights)  # detected as the multi-scale VDSR it is
    assert model.litesr_arch == "vdsr" and model.multi_scale
    capsys.readouterr()
    code = main(["eval", "--weights", str(weights), "--dataset", str(root / "val"), "--scale", "2", "--scale", "3",
                 "--scale", "4", "--json", str(root / "eval.json"), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((root / "eval.json").read_text())["results"]
    assert [r["scale"] for r in results] == [2, 3, 4]
    assert all(10.0 < r["psnr"] < 60.0 for r in results), results
    # the same numbers as the run's final validation, factor by factor
    final = {r["scale"]: r["psnr"] for r in log if "psnr" in r and r["iter"] == STEPS}
    assert all(abs(final[r["scale"]] - r["psnr"]) < 1e-6 for r in results)


def test_batches_share_a_factor_across_epochs_and_workers(root: Path) -> None:
    """Factors follow the iteration, also when a batch straddles two epochs and when the stream is sharded."""
    from litesr.data.train import TrainPatches, collect_pairs

    sets = {s: TrainPatches(collect_pairs([root / "hr"], [None], s), s, 24, data_repeat=1,
                            cache_dir=root / "cache") for s in (2, 3, 4)}
    for world_size in (1, 2):
        dataset = MultiScalePatches(sets, seed=4, batch_per_rank=2, world_size=world_size)
        stream = iter(SampleStream(len(dataset), 4, rank=world_size - 1, world_size=world_size))
        for iteration in range(5):  # 3 images, batch 2: iterations 1 and 3 cross an epoch boundary
            batch = [dataset[next(stream)] for _ in range(2)]
            factor = dataset.scale_of(iteration)
            assert [int(s["scale"]) for s in batch] == [factor, factor]
            assert batch[0]["lr"].shape[-1] * factor == batch[0]["hr"].shape[-1] == 24


@pytest.mark.parametrize(("change", "needle"), [
    (lambda c: c["model"].update(name="imdn", options={}), "needs a multi-scale model"),
    (lambda c: c["datasets"]["train"].update(patch_size=20), "use a multiple of 12"),
    (lambda c: c["train"].update(scales=[2, 5]), "not x5"),
    (lambda c: c["train"].update(clip_mode="elementwise"), "train.clip_mode 'elementwise' is not one of norm, value"),
    (lambda c: c["train"].update(clip_grad=1.0), "not both"),
    (lambda c: c["train"]["optimizer"].update(betas=[0.9, 0.9]), "train.optimizer.betas is not used by the 'sgd'"),
])
def test_multiscale_config_errors(root: Path, change, needle: str) -> None:
    cfg = config(root, "bad")
    change(cfg)
    with pytest.raises(ConfigError, match="multiscale test") as err:
        build_config(cfg, source="multiscale test")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_adjustable_clipping_follows_the_learning_rate(root: Path) -> None:
    """With clip_theta, the gradient norm is at most theta / lr (VDSR): larger limits at smaller rates."""
    norms: list[tuple[float, float]] = []

    class Clipped(MultiScaleTrainer):
        def backward_and_step(self, loss, opt, model):
            original = opt.step

            def step(*args, **kwargs):
                grads = [p.grad for p in model.parameters() if p.grad is not None]
                norms.append((torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item(),
                              opt.param_groups[0]["lr"]))
                return original(*args, **kwargs)

            opt.step = step
            try:
                super().backward_and_step(loss, opt, model)
            finally:
                del opt.step

    trainer = Clipped(build_config(config(root, "clipped", iterations=10, clip_theta=1e-4),
                                   overrides=["datasets.val.hr_dir=null"]))
    try:
        trainer.fit()
    finally:
        trainer.close()
    assert len(norms) == 10
    assert all(norm <= 1e-4 / lr * (1 + 1e-4) for norm, lr in norms), norms
    assert any(norm > 1e-4 / 0.01 * 1.01 for norm, lr in norms if lr < 0.01)  # above the first rate's limit later
