"""The training engine: config validation, losses, schedules, data, NaN handling, signals, warm start, validation."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from safetensors.torch import load_file

from litesr.cli import main
from litesr.data.train import LRCache, TrainPatches, collect_pairs, make_synthetic_set
from litesr.errors import ConfigError, DatasetError
from litesr.losses import build_loss
from litesr.train import Trainer, TrainingError, build_config, load_config, read_state, register_trainer, run
from litesr.train.schedule import Schedule
from litesr.train.trainer import warm_start

REPO = Path(__file__).resolve().parents[1]



def tiny(tmp_path: Path, **sections) -> dict:
    """A seconds-long config: IMDN with 16 channels, 24-pixel HR patches of three synthetic images."""
    hr = tmp_path / "hr"
    if not hr.exists():
        make_synthetic_set(hr, count=3, size=32)
    cfg = {
        "name": "t",
        "output": str(tmp_path / "runs"),
        "device": "cpu",
        "model": {"name": "imdn", "scale": 2, "options": {"nf": 16, "num_modules": 1}},
        "datasets": {"train": {"hr_dir": str(hr), "patch_size": 24, "workers": 0,
                               "cache_dir": str(tmp_path / "cache")}},
        "train": {"iterations": 4, "batch_size": 2},
        "val": {"every": 0},
        "checkpoint": {"every": 0},
        "logger": {"print_every": 1, "tensorboard": False, "progress": False},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values} if isinstance(values, dict) else values
    return cfg


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# ---- configs ---------------------------------------------------------------------------------------------------


def test_config_typo_names_file_key_and_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "typo.yml"
    path.write_text(yaml.safe_dump({"model": {"name": "imdn"}, "train": {"batchsize": 8}}))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert str(path) in msg and "'train.batchsize'" in msg and "did you mean 'train.batch_size'" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    ("section", "needle"),
    [
        ({"datasets": {"train": {"patch_sise": 64}}}, "did you mean 'datasets.train.patch_size'"),
        ({"train": {"scheduler": {"type": "cosine", "milestones": [10]}}}, "not used by the 'cosine' scheduler"),
        ({"train": {"scheduler": {"type": "cosin"}}}, "did you mean 'cosine'"),
        ({"train": {"losses": [{"type": "l1", "wieght": 2}]}}, "did you mean 'weight'"),
        ({"train": {"losses": [{"type": "charbonier"}]}}, "did you mean 'charbonnier'"),
        ({"model": {"name": "imdn", "options": {"nff": 4}}}, "did you mean 'nf'"),
        ({"model": {"name": "imdn", "scale": 5}}, "not model.scale 5"),
        ({"val": {"datasets": [{"hr_dri": "x"}]}}, "did you mean 'val.datasets[0].hr_dir'"),
        ({"train": {"batch_size": "many"}}, "train.batch_size must be a number"),
    ],
)
def test_config_errors_are_one_line_with_hints(tmp_path: Path, section: dict, needle: str) -> None:
    base = {"model": {"name": "imdn"}}
    for key, value in section.items():
        base[key] = {**base.get(key, {}), **value}
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(base))
    with pytest.raises(ConfigError, match="bad.yml") as err:
        load_config(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_overrides_and_yaml_float_strings(tmp_path: Path) -> None:
    path = tmp_path / "c.yml"
    path.write_text("model: {name: imdn}\ntrain: {optimizer: {lr: 2e-4}}\n")  # PyYAML reads 2e-4 as a string
    cfg = load_config(path, ["train.batch_size=8", "train.optimizer.betas=[0.9, 0.999]", "model.scale=3"])
    assert cfg["train"]["batch_size"] == 8 and cfg["train"]["optimizer"]["betas"] == [0.9, 0.999]
    assert cfg["train"]["optimizer"]["lr"] == pytest.approx(2e-4) and cfg["name"] == "imdn_x3"
    with pytest.raises(ConfigError, match=r"override 'train\.bach_size=8'.*did you mean 'train\.batch_size'"):
        load_config(path, ["train.bach_size=8"])


def test_shipped_configs_validate() -> None:
    from litesr.registry import list_models

    files = sorted((REPO / "configs").glob("*.yml"))
    assert {"ssiu_x2", "ssiu_x3", "ssiu_x4", "ssiu_x2_cpu", "rdesa_x2"} <= {f.stem for f in files}
    for path in files:
        raw = yaml.safe_load(path.read_text())
        if raw["model"]["name"] not in list_models():
            continue  # an architecture not in this checkout yet (its config is still checked once it lands)
        cfg = load_config(path)
        if "_x" in path.stem:  # a multi-scale config (vdsr_multiscale) names no single factor
            assert cfg["model"]["scale"] == int(path.stem.split("_x")[1][0])
        packaged = REPO / "litesr" / "configs" / path.name
        assert packaged.read_text() == path.read_text(), f"litesr/configs/{path.name} is out of date"
    if "ssiu" in list_models():
        paper = load_config("ssiu_x4")  # by name, from the package
        assert paper["train"]["batch_size"] == 40 and paper["datasets"]["train"]["patch_size"] == 256
        assert paper["train"]["optimizer"] == {**paper["train"]["optimizer"], "type": "adamw", "lr": 1e-3,
                                               "betas": [0.9, 0.99], "weight_decay": 1e-4}
        assert [loss["type"] for loss in paper["train"]["losses"]] == ["l1", "fft"]


def test_cli_flags_map_to_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make_synthetic_set(tmp_path / "hr", count=2, size=32)
    code = main(["train", "--model", "imdn", "--model-opt", "nf=16", "--model-opt", "num_modules=1",
                 "--train_dir", str(tmp_path / "hr"), "--scale", "2", "--iters", "2", "--batch_size", "2",
                 "--patch_size", "16", "--lr", "1e-3", "--output", str(tmp_path / "runs"), "--workers", "0",
                 "--seed", "7", "logger.print_every=1", "val.every=0", "train.ema.enabled=false"])
    out = capsys.readouterr()
    assert code == 0, out.err
    saved = yaml.safe_load((tmp_path / "runs" / "imdn_x2" / "config.yml").read_text())
    assert saved["model"]["options"] == {"nf": 16, "num_modules": 1}
    assert saved["datasets"]["train"]["patch_size"] == 16 and saved["seed"] == 7
    assert saved["train"]["optimizer"]["lr"] == 1e-3 and not saved["train"]["ema"]["enabled"]
    # A typo in a flag-given option is a one-line error, exit status 1.
    code = main(["train", "--model", "imdn", "--model-opt", "nff=3", "--train_dir", "x", "--iters", "1"])
    err = capsys.readouterr().err
    assert code == 1 and "did you mean 'nf'" in err and err.count("\n") == 1


# ---- losses and schedules --------------------------------------------------------------------------------------


def test_losses_weighted_sum() -> None:
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    crit = build_loss([{"type": "l1"}, {"type": "fft", "weight": 0.01}, {"type": "l2", "weight": 2},
                       {"type": "charbonnier", "weight": 0.5, "eps": 1e-6}])
    total, parts = crit(pred, target)
    fft = (torch.view_as_real(torch.fft.rfft2(pred)) - torch.view_as_real(torch.fft.rfft2(target))).abs().mean()
    assert parts["fft"] == pytest.approx(0.01 * fft.item(), rel=1e-5)
    assert parts["l2"] == pytest.approx(2 * ((pred - target) ** 2).mean().item(), rel=1e-5)
    assert parts["charbonnier"] == pytest.approx(0.5 * torch.sqrt((pred - target) ** 2 + 1e-6).mean().item(), rel=1e-5)
    assert total.item() == pytest.approx(sum(v.item() for v in parts.values()), rel=1e-6)


def test_schedules() -> None:
    cos = Schedule({"type": "cosine", "warmup_iters": 10, "eta_min": 1e-6}, 110)
    assert cos.lr(1e-3, 0) == pytest.approx(1e-4) and cos.lr(1e-3, 9) == pytest.approx(1e-3)
    assert cos.lr(1e-3, 60) == pytest.approx((1e-3 + 1e-6) / 2) and cos.lr(1e-3, 110) == pytest.approx(1e-6)
    step = Schedule({"type": "multistep", "milestones": [5, 8], "gamma": 0.5}, 10)
    assert [step.lr(1.0, i) for i in (4, 5, 8)] == [1.0, 0.5, 0.25]
    restarts = Schedule({"type": "cosine_restarts", "periods": [10, 20], "restart_weights": [1, 0.5],
                         "eta_min": 0.0}, 30)
    assert restarts.lr(1.0, 0) == 1.0 and restarts.lr(1.0, 10) == 0.5
    assert restarts.lr(1.0, 5) == pytest.approx(0.5) and restarts.lr(1.0, 20) == pytest.approx(0.25)


# ---- data ------------------------------------------------------------------------------------------------------


def test_lr_cache_is_matlab_bicubic_and_keyed_by_mtime(tmp_path: Path) -> None:
    from litesr.imresize import bicubic_downsample_uint8

    hr_dir = make_synthetic_set(tmp_path / "hr", count=1, size=30)
    hr_file = next(hr_dir.iterdir())
    cache = LRCache(tmp_path / "cache")
    lr = cache.get(hr_file, 3)
    hr = np.asarray(Image.open(hr_file).convert("RGB"))
    assert np.array_equal(lr, bicubic_downsample_uint8(hr, 3))
    first = cache.path_for(hr_file, 3)
    assert first.is_file()
    os.utime(hr_file, ns=(0, 10**9))  # an edited file gets a new entry
    assert cache.path_for(hr_file, 3) != first


def test_div2k_layout_and_aligned_augmented_crops(tmp_path: Path) -> None:
    """LR = 2x2 block mean of HR, so any flip/rotation of an aligned crop keeps LR == block-mean(HR patch)."""
    rng = np.random.default_rng(0)
    hr_dir, lr_dir = tmp_path / "DIV2K_train_HR", tmp_path / "DIV2K_train_LR_bicubic" / "X2"
    hr_dir.mkdir()
    lr_dir.mkdir(parents=True)
    for i in range(2):
        hr = rng.integers(0, 256, (20, 26, 3), dtype=np.uint8)
        lr = hr.reshape(10, 2, 13, 2, 3).mean(axis=(1, 3)).round().astype(np.uint8)
        Image.fromarray(hr).save(hr_dir / f"{i + 1:04d}.png")
        Image.fromarray(lr).save(lr_dir / f"{i + 1:04d}x2.png")
    pairs = collect_pairs([hr_dir], ["auto"], 2)
    assert [p.lr.name for p in pairs] == ["0001x2.png", "0002x2.png"]
    data = TrainPatches(pairs, 2, 8, data_repeat=5, preload=True)
    assert len(data) == 10
    seen = set()
    for i in range(40):
        sample = data[(i % 10, (0, 0, i))]
        lr, hr = sample["lr"], sample["hr"]
        assert lr.shape == (3, 4, 4) and hr.shape == (3, 8, 8)
        mean = torch.nn.functional.avg_pool2d(hr[None], 2)[0]
        assert (mean - lr).abs().max() <= 0.5 / 255 + 1e-6
        seen.add(hr.numpy().tobytes())
    assert len(seen) > 20  # crops and augmentation vary with the key
    again = data[(3, (0, 0, 7))]
    assert torch.equal(again["hr"], data[(3, (0, 0, 7))]["hr"])  # and are fixed by it


def test_dataset_errors(tmp_path: Path) -> None:
    make_synthetic_set(tmp_path / "hr", count=1, size=20)
    with pytest.raises(DatasetError, match="smaller than the HR patch size 32"):
        TrainPatches(collect_pairs([tmp_path / "hr"], [None], 2), 2, 32, cache_dir=tmp_path / "c")
    make_synthetic_set(tmp_path / "mixed", count=2, size=40)
    Image.new("RGB", (20, 30)).save(tmp_path / "mixed" / "small.png")
    mixed = TrainPatches(collect_pairs([tmp_path / "mixed"], [None], 2), 2, 32, cache_dir=tmp_path / "c")
    assert len(mixed.pairs) == 2 and [p.name for p in mixed.skipped] == ["small.png"]
    with pytest.raises(DatasetError, match="no such dataset folder"):
        collect_pairs([tmp_path / "missing"], [None], 2)
    (tmp_path / "lr").mkdir()
    with pytest.raises(DatasetError, match="no LR image for 0000.png"):
        collect_pairs([tmp_path / "hr"], [tmp_path / "lr"], 2)


# ---- the loop --------------------------------------------------------------------------------------------------


class NaNAt(Trainer):
    """Returns a NaN loss at chosen iterations (through the training_step seam)."""

    bad: set[int] | None = None  # None: always

    def training_step(self, batch):
        losses = super().training_step(batch)
        if self.bad is None or self.iteration + 1 in self.bad:
            losses["loss"] = losses["loss"] * float("nan")
        return losses


def fit(trainer: Trainer) -> dict:
    try:
        return trainer.fit()
    finally:
        trainer.close()


def test_nonfinite_loss_skips_step(tmp_path: Path) -> None:
    class OneBad(NaNAt):
        bad = {2}

    cfg = build_config(tiny(tmp_path))
    summary = fit(OneBad(cfg))
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 1
    events = records(Path(summary["run_dir"]))
    assert [e["iter"] for e in events if e.get("event") == "nonfinite_loss"] == [2]
    assert all(math.isfinite(v) for v in load_file(Path(summary["run_dir"]) / "net_last.safetensors")["fea_conv.weight"]
               .flatten().tolist())


def test_too_many_nonfinite_losses_stop_the_run(tmp_path: Path) -> None:
    cfg = build_config(tiny(tmp_path, train={"iterations": 20, "batch_size": 2, "max_nan_steps": 3}))
    with pytest.raises(TrainingError, match=r"^stopped at iteration 3: 3 non-finite losses in a row") as err:
        fit(NaNAt(cfg))
    assert "\n" not in str(err.value)


def test_sigint_writes_checkpoint_and_exits_cleanly(tmp_path: Path) -> None:
    class CtrlC(Trainer):
        def on_iteration_end(self, metrics):
            if self.iteration == 2:
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    summary = fit(CtrlC(build_config(tiny(tmp_path, train={"iterations": 50, "batch_size": 2}))))
    assert summary["status"] == "interrupted" and summary["iteration"] == 2
    run_dir = Path(summary["run_dir"])
    state = read_state(run_dir)
    assert state["iteration"] == 2 and set(state["rng"]) >= {"python", "numpy", "torch"}
    assert (run_dir / "net_last.safetensors").is_file() and (run_dir / "net_ema_last.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is before  # handlers are restored
    # A fresh run into the same folder is refused rather than overwriting it.
    with pytest.raises(ConfigError, match="already holds a training run"):
        run(build_config(tiny(tmp_path)))


def test_warm_start_skips_upsampler(tmp_path: Path) -> None:
    from litesr.checkpoint import save_safetensors
    from litesr.registry import create_model

    x2 = create_model("imdn", scale=2, nf=16, num_modules=1)
    save_safetensors(x2.state_dict(), tmp_path / "x2.safetensors")
    x3 = create_model("imdn", scale=3, nf=16, num_modules=1)
    loaded, skipped = warm_start(x3, tmp_path / "x2.safetensors")
    assert [s.split(" ")[0] for s in skipped] == ["upsampler.0.weight", "upsampler.0.bias"]
    assert torch.equal(x3.fea_conv.weight, x2.fea_conv.weight) and len(loaded) == len(x3.state_dict()) - 2


def test_bf16_channels_last_on_cpu(tmp_path: Path) -> None:
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        pytest.skip("this CPU has no bf16 instructions")
    cfg = build_config(tiny(tmp_path, train={"iterations": 2, "batch_size": 2, "precision": "bf16"}))
    trainer = Trainer(cfg)
    assert trainer.channels_last and trainer.precision == "bf16"
    summary = fit(trainer)
    assert summary["status"] == "completed"
    weights = load_file(Path(summary["run_dir"]) / "net_last.safetensors")
    assert all(t.dtype == torch.float32 for t in weights.values())  # master weights stay fp32
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        Trainer(build_config(tiny(tmp_path, name="fp16", train={"precision": "fp16"})))


def test_validation_keeps_best_and_last(tmp_path: Path) -> None:
    pytest.importorskip("litesr.evaluate")
    make_synthetic_set(tmp_path / "val", count=1, size=24, seed=5)
    cfg = build_config(tiny(tmp_path, datasets={"train": tiny(tmp_path)["datasets"]["train"],
                                                "val": {"hr_dir": str(tmp_path / "val")}},
                            val={"every": 2}))
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    vals = [r for r in records(run_dir) if r.get("dataset") == "val"]
    assert [r["iter"] for r in vals] == [2, 4] and all(r["psnr"] > 0 for r in vals)
    assert summary["best"]["psnr"] == max(r["psnr"] for r in vals)
    assert (run_dir / "net_best.safetensors").is_file() and (run_dir / "net_last.safetensors").is_file()


# ---- the extension seam ----------------------------------------------------------------------------------------


@register_trainer("test_two_models")
class TwoModels(Trainer):
    """A GAN-shaped trainer: a second model with its own optimiser and an extra config key."""

    extra_config = {"aux_weight": 0.5}

    def build_models(self):
        return {**super().build_models(), "aux": torch.nn.Conv2d(3, 3, 3, padding=1)}

    def build_optimizers(self):
        from litesr.train.trainer import make_optimizer

        opt = self.cfg["train"]["optimizer"]
        return {**super().build_optimizers(), "aux": make_optimizer(self.models["aux"].parameters(), opt, self.device)}

    def optimization_step(self, batch):
        metrics = super().optimization_step(batch)
        opt = self.optimizers["aux"]
        opt.zero_grad(set_to_none=True)
        with self.autocast():
            aux_loss = self.cfg["train"]["aux_weight"] * (self.models["aux"](batch["hr"]) - batch["hr"]).abs().mean()
        if metrics is None or not self.all_finite(aux_loss):
            return None
        self.backward_and_step(aux_loss, opt, self.models["aux"])
        return {**metrics, "aux": float(aux_loss.detach())}


def test_trainer_type_selects_a_subclass_with_its_own_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key 'train.aux_weight'"):
        build_config(tiny(tmp_path, train={"aux_weight": 1.0}))
    with pytest.raises(ConfigError, match="did you mean 'test_two_models'"):
        build_config(tiny(tmp_path, train={"type": "test_two_model"}))
    cfg = build_config(tiny(tmp_path, train={"type": "test_two_models", "aux_weight": 2.0, "iterations": 2,
                                             "batch_size": 2}))
    summary = run(cfg)
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "aux_last.safetensors").is_file()
    state = read_state(run_dir)
    assert set(state["models"]) == set(state["optimizers"]) == {"net", "aux"}
    assert all("aux" in r for r in records(run_dir) if "loss" in r)


def test_ema_warm_up_forgets_the_initialisation():
    """After a few hundred updates the EMA must follow the trained weights, not the random initial ones."""
    from litesr.train.ema import ModelEMA

    net = torch.nn.Linear(4, 4)
    ema = ModelEMA(net, decay=0.999)
    with torch.no_grad():
        net.weight.fill_(1.0)
        net.bias.fill_(1.0)
    for _ in range(300):
        ema.update(net)
    # a constant 0.999 would leave 0.999^300 = 74% of the initial weights; the warm-up leaves under 5%
    assert torch.allclose(ema.module.weight, torch.ones(4, 4), atol=0.05 * (1 + net.weight.abs().max().item()))
    assert ema.updates == 300
