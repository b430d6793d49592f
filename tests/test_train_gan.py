"""SRGAN training (train.type gan): SRResNet pre-training, then generator + discriminator from the warm start, with a
VGG19-shaped feature network made here (random weights, torchvision key layout)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from litesr.cli import main
from litesr.data.train import make_synthetic_set
from litesr.detect import load_model
from litesr.errors import ConfigError
from litesr.perceptual import VGG19_LAYERS, build_vgg19_features
from litesr.train import build_config, read_state, register_trainer, run
from litesr.train.gan import GANTrainer

G_OPTIONS = {"num_blocks": 1, "num_feat": 8}
PATCH = 32  # HR patch at x4 (LR 8): the smallest size the discriminator takes (a multiple of 16)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Training and validation images, a VGG19 file cut after relu2_2, and an SRResNet warm start (4 L1 steps)."""
    root = tmp_path_factory.mktemp("gan")
    make_synthetic_set(root / "hr", count=3, size=48, seed=2)
    make_synthetic_set(root / "val", count=1, size=32, seed=5)
    features = build_vgg19_features(VGG19_LAYERS["relu2_2"] + 1)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, root / "vgg19.pth")
    pre = build_config(base(root, "pre", **{"model": {"name": "srresnet", "scale": 4, "options": G_OPTIONS},
                                            "train": {"iterations": 4, "batch_size": 2, "losses": [{"type": "l1"}],
                                                      "optimizer": {"type": "adam", "lr": 1e-3},
                                                      "ema": {"enabled": False}}}))
    assert run(pre)["status"] == "completed"
    return root


def base(root: Path, name: str, **sections) -> dict:
    cfg = {
        "name": name,
        "output": str(root / "runs"),
        "device": "cpu",
        "seed": 1,
        "model": {"name": "srgan", "scale": 4, "options": G_OPTIONS},
        "datasets": {"train": {"hr_dir": str(root / "hr"), "patch_size": PATCH, "workers": 0,
                               "cache_dir": str(root / "cache")}},
        "val": {"every": 0},
        "checkpoint": {"every": 0},
        "logger": {"print_every": 1, "tensorboard": False, "progress": False},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    return cfg


def gan(root: Path, name: str, iterations: int = 3, **train) -> dict:
    return base(root, name, model={"init_from": str(root / "runs" / "pre" / "net_last.safetensors")},
                datasets={"val": {"hr_dir": str(root / "val")}},
                train={"type": "gan", "iterations": iterations, "batch_size": 2,
                       "discriminator": {"num_feat": 8},
                       "perceptual": {"vgg_weights": str(root / "vgg19.pth"), "layer_weights": {"relu2_2": 1.0}},
                       "texture": {"weight": 1e-3, "layer_weights": {"conv1_1": 1.0, "relu2_1": 1.0}},
                       "losses": [{"type": "l1", "weight": 0.01}, {"type": "tv", "weight": 1e-4}], **train})


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@register_trainer("test_gan_probe")
class Probe(GANTrainer):
    """Records, at each generator loss, whether the discriminator could receive gradients."""

    def generator_losses(self, sr, target):
        self.__dict__.setdefault("disc_trainable", []).append(any(p.requires_grad for p in self.disc.parameters()))
        return super().generator_losses(sr, target)


def test_gan_run_from_srresnet(data: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = build_config(gan(data, "srgan"))
    trainer = Probe(cfg)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    out = capsys.readouterr().out
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 0
    assert trainer.disc_trainable == [False] * 3  # frozen during every generator step ...
    assert all(p.requires_grad for p in trainer.disc.parameters())  # ... and trainable again after it
    assert "init from" in out and "loaded" in out and "skipped" not in out  # every SRResNet tensor fits
    run_dir = Path(summary["run_dir"])
    net, disc = load_file(run_dir / "net_last.safetensors"), load_file(run_dir / "disc_last.safetensors")
    assert "classifier.2.weight" in disc and "conv_block1.0.weight" in net
    state = read_state(run_dir)
    assert set(state["models"]) == set(state["optimizers"]) == {"net", "disc"}
    steps = [r for r in records(run_dir) if "loss" in r]
    assert len(steps) == 3
    for record in steps:
        for key in ("loss", "l1", "tv", "perceptual", "texture", "adversarial", "d_loss", "d_real", "d_fake"):
            assert math.isfinite(record[key]), (key, record)
        assert 0.0 <= record["d_real"] <= 1.0
    assert any("psnr" in r for r in records(run_dir))  # validation ran on the generator
    model = load_model(run_dir / "net_last.safetensors")  # the generator is an ordinary SRResNet checkpoint
    assert model.litesr_arch == "srresnet" and model.scale == 4


def test_gan_resume_is_exact(data: Path) -> None:
    """Both networks, both optimisers and D's BatchNorm statistics come back: 2 + 2 steps == 4 steps."""
    straight = build_config(gan(data, "straight", iterations=4, texture={"weight": 0.0}) | {"deterministic": True})
    run(straight)

    class StopAtTwo(GANTrainer):
        def on_iteration_end(self, metrics):
            if self.iteration == 2:
                self.request_stop("test")

    cfg = build_config(gan(data, "stopped", iterations=4, texture={"weight": 0.0}) | {"deterministic": True})
    trainer = StopAtTwo(cfg)
    try:
        assert trainer.fit()["status"] == "interrupted"
    finally:
        trainer.close()
    run_dir = data / "runs" / "stopped"
    assert run(cfg, resume=run_dir)["iteration"] == 4
    for name in ("net", "disc"):
        a = load_file(data / "runs" / "straight" / f"{name}_last.safetensors")
        b = load_file(run_dir / f"{name}_last.safetensors")
        worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
        assert worst <= 1e-6, f"{name}: resumed weights differ by {worst}"


def test_missing_vgg_file_is_one_line(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "nowhere" / "vgg19-dcbb9e9d.pth"
    cfg = gan(data, "novgg", perceptual={"vgg_weights": str(missing)})
    cfg["output"] = str(tmp_path / "runs")
    path = tmp_path / "srgan.yml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "VGG19" in err and err.count("\n") == 1
    assert not (tmp_path / "runs" / "novgg" / "net_last.safetensors").exists()


@pytest.mark.parametrize(("train", "needle"), [
    ({"perceptual": {"vgg_weights": None}}, "train.perceptual.vgg_weights is not set"),
    ({"perceptual": {"layer_weights": {"relu5_5": 1.0}}}, "did you mean 'relu5_4'"),
    ({"discriminator": {"input_size": 48}}, "differs from datasets.train.patch_size 32"),
    ({"optimizer_d": {"type": "adam", "momentum": 0.5}}, "train.optimizer_d.momentum is not used by the 'adam'"),
    ({"scheduler_d": {"type": "cosin"}}, "did you mean 'cosine'"),
    ({"texture": {"patch_size": 16, "layer_weights": {"conv3_1": 1.0}}}, "does not fit the 8x8 conv3_1 features"),
])
def test_gan_config_errors(data: Path, train: dict, needle: str) -> None:
    cfg = gan(data, "bad")
    for key, value in train.items():
        cfg["train"][key] = {**cfg["train"].get(key, {}), **value}
    with pytest.raises(ConfigError, match="gan test") as err:
        build_config(cfg, source="gan test")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_gan_under_torchrun_two_processes(data: Path, tmp_path: Path) -> None:
    """DDP: the generator's pass uses the bare discriminator, D's two passes its DDP wrapper; rank 0 checkpoints."""
    cfg = gan(data, "ddp", texture={"weight": 0.0}) | {"output": str(tmp_path / "runs")}
    cfg["train"]["batch_size"] = 4
    path = tmp_path / "ddp.yml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "litesr.cli", "train", "--config", str(path)],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "x2 processes" in proc.stdout and proc.stdout.count("iter 3/3") == 1
    run_dir = tmp_path / "runs" / "ddp"
    assert (run_dir / "disc_last.safetensors").is_file()
    assert all(math.isfinite(r["d_loss"]) for r in records(run_dir) if "loss" in r)
