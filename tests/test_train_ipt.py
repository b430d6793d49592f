"""IPT multi-task pre-training and fine-tuning (``train.type: multitask``) on tiny synthetic data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from litesr.checkpoint import save_safetensors
from litesr.data.train import SampleStream, make_synthetic_set
from litesr.errors import ConfigError
from litesr.train import build_config, load_config, trainer_class
from litesr.train.multitask import (
    MultiTaskPatches,
    TaskSchedule,
    add_gaussian_noise,
    add_rain,
    parse_task,
    patch_contrastive_loss,
)

REPO = Path(__file__).resolve().parents[1]
# The registry's tiny IPT (tasks sr_x2, sr_x3, sr_x4, denoise30; 8x8 inputs); two of its tasks are trained.
TASKS = ["sr_x2", "sr_x3", "sr_x4", "denoise30"]
TINY = {"tasks": TASKS, "n_feats": 4, "patch_size": 8, "patch_dim": 2, "num_heads": 2, "num_layers": 1}
TRAINED = ["sr_x2", "denoise30"]
OTHERS = ["sr_x3", "sr_x4"]


@pytest.fixture(autouse=True)
def one_thread():
    """Single-threaded, as the other training tests: on a shared 2-core machine, 2 threads mostly wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def config(tmp_path: Path, name: str, **train) -> dict:
    hr = tmp_path / "hr"
    if not hr.exists():
        make_synthetic_set(hr, count=3, size=40)
        make_synthetic_set(tmp_path / "val", count=1, size=24, seed=5)
    return {
        "name": name, "output": str(tmp_path / "runs"), "device": "cpu", "seed": 3,
        "model": {"name": "ipt", "scale": 2, "options": {**TINY, "tasks": list(TASKS)}},
        "datasets": {"train": {"hr_dir": str(hr), "patch_size": 8, "workers": 0, "cache_dir": str(tmp_path / "c")},
                     "val": {"hr_dir": str(tmp_path / "val")}},
        "train": {"type": "multitask", "batch_size": 4, "ema": {"enabled": False},
                  "scheduler": {"type": "constant"}, **train},
        "val": {"every": 0}, "checkpoint": {"every": 0},
        "logger": {"print_every": 2, "tensorboard": False, "progress": False},
    }


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def task_tensors(state: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
    i = TASKS.index(task)
    own = {k: v for k, v in state.items() if k.startswith((f"head.{i}.", f"tail.{i}."))}
    own["query"] = state["body.query_embed.weight"][i]
    return own


def body_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    skip = ("body.query_embed.weight", "body.position_encoding.position_ids")  # the query rows are per task
    return {k: v for k, v in state.items() if k.startswith("body.") and k not in skip}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


def fit(cfg: dict) -> tuple[dict[str, torch.Tensor], object, dict]:
    """Train; returns the weights before training, the trainer and the summary."""
    trainer = trainer_class("multitask")(build_config(cfg))
    before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    return before, trainer, summary


def fixed_batch_l1(net: torch.nn.Module, dataset: MultiTaskPatches, task: str) -> float:
    """L1 of ``net`` on task on the same four samples every time."""
    t = dataset.tasks.index(task)
    items = [dataset.sample(i, t, np.random.default_rng(100 + i)) for i in range(4)]
    lr, hr = torch.stack([x["lr"] for x in items]), torch.stack([x["hr"] for x in items])
    net.eval().set_task(task)
    with torch.no_grad():
        return float((net(lr * net.input_range) / net.input_range - hr).abs().mean())


def test_pretrain_two_tasks_then_finetune_one(tmp_path: Path) -> None:
    # Pre-training: the two tasks alternate; each gets its own head/tail updates, the shared body learns from both,
    # the contrastive term is logged, and the two tasks the run does not train keep their weights (queries too).
    before, trainer, summary = fit(config(tmp_path, "pre", iterations=6, tasks=TRAINED, task_order="round_robin",
                                          contrastive={"weight": 0.1}))
    run_dir = Path(summary["run_dir"])
    after = load_file(run_dir / "net_last.safetensors")
    for task in TRAINED:
        assert changed(task_tensors(before, task), task_tensors(after, task)) == set(task_tensors(before, task)), task
    for task in OTHERS:
        assert not changed(task_tensors(before, task), task_tensors(after, task)), task
    assert changed(body_tensors(before), body_tensors(after)) == set(body_tensors(before))
    logged = records(run_dir)
    steps = [r for r in logged if "loss" in r]
    assert [r["iter"] for r in steps] == [2, 4, 6] and all(r["contrastive"] > 0 for r in steps)
    per_task = [r for r in logged if r.get("event") == "task_losses"]
    assert all(r["steps_sr_x2"] == r["steps_denoise30"] == 1 for r in per_task) and len(per_task) == 3
    vals = {r["task"]: r for r in logged if "psnr" in r}
    assert set(vals) == set(TRAINED) and all(math.isfinite(r["psnr"]) and r["psnr"] > 0 for r in vals.values())
    assert summary["best"]["tasks"] == TRAINED and (run_dir / "net_best.safetensors").is_file()

    # Fine-tuning x2 from that checkpoint: only the x2 head/tail (and the body) move; the L1 on a fixed batch falls.
    checkpoint = str(run_dir / "net_last.safetensors")
    cfg = config(tmp_path, "ft", iterations=12, finetune_task="sr_x2", optimizer={"lr": 2e-3})
    cfg["model"]["init_from"] = checkpoint
    cfg["val"]["every"] = 0
    cfg["datasets"]["val"] = {"hr_dir": None}
    trainer = trainer_class("multitask")(build_config(cfg))
    start = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    assert not changed(after, start)  # loaded as saved
    loss_before = fixed_batch_l1(trainer.net, trainer.train_set, "sr_x2")
    trainer.net.train()
    try:
        trainer.fit()
    finally:
        trainer.close()
    tuned = trainer.net.state_dict()
    for task in ["denoise30", *OTHERS]:
        assert not changed(task_tensors(start, task), task_tensors(tuned, task)), task
    assert changed(task_tensors(start, "sr_x2"), task_tensors(tuned, "sr_x2")) == set(task_tensors(start, "sr_x2"))
    assert changed(body_tensors(start), body_tensors(tuned))
    loss_after = fixed_batch_l1(trainer.net, trainer.train_set, "sr_x2")
    assert loss_after < 0.9 * loss_before, (loss_before, loss_after)

    # With the body frozen, fine-tuning moves the x2 head and tail only.
    cfg = config(tmp_path, "ft_frozen", iterations=2, finetune_task="sr_x2", freeze_body=True)
    cfg["model"]["init_from"] = checkpoint
    start, trainer, _ = fit(cfg)
    tuned = trainer.net.state_dict()
    assert changed(start, tuned) == {k for k in start if k.startswith(("head.0.", "tail.0."))}


def test_resume_is_exact(tmp_path: Path) -> None:
    # Tasks come from the iteration and degradations from the sample key: 3 + 3 resumed steps = 6 straight ones.
    from litesr.train import run

    straight = config(tmp_path, "straight", iterations=6, batch_size=2, tasks=TRAINED, contrastive={"weight": 0.1})
    straight["deterministic"] = True
    run(build_config(straight))
    halves = {**straight, "name": "halves", "train": {**straight["train"], "iterations": 3}}
    run(build_config(halves))
    halves["train"]["iterations"] = 6
    run(build_config(halves), resume=tmp_path / "runs" / "halves")
    a = load_file(tmp_path / "runs" / "straight" / "net_last.safetensors")
    b = load_file(tmp_path / "runs" / "halves" / "net_last.safetensors")
    assert not changed(a, b)

def test_task_schedule_labels_whole_batches_on_every_process() -> None:
    # Two processes, batch 3 each, an epoch that is not a multiple of the batch: every batch each process assembles
    # from its stream (also after a resume mid-epoch) carries one task, the same on both processes.
    length, world, batch = 7, 2, 3
    schedule = TaskSchedule(3, "random", 5, math.ceil(length / world), world, batch)
    for start_iteration in (0, 4):
        tasks_per_rank = []
        for rank in range(world):
            stream = iter(SampleStream(length, 5, rank=rank, world_size=world, start=start_iteration * batch))
            keys = [next(stream)[1] for _ in range(batch * 6)]
            tasks = [schedule.task_at(schedule.iteration_of(k)) for k in keys]
            per_batch = [tasks[i : i + batch] for i in range(0, len(tasks), batch)]
            assert all(len(set(b)) == 1 for b in per_batch)
            tasks_per_rank.append([b[0] for b in per_batch])
            assert [schedule.iteration_of(keys[i * batch]) for i in range(6)] == list(
                range(start_iteration, start_iteration + 6))
        assert tasks_per_rank[0] == tasks_per_rank[1]
    assert len({schedule.task_at(i) for i in range(30)}) == 3  # random order still visits every task
    robin = TaskSchedule(2, "round_robin", 0, 4)
    assert [robin.task_at(i) for i in range(4)] == [0, 1, 0, 1]


def test_degradations_and_contrastive_loss() -> None:
    assert parse_task("sr_x3").scale == 3 and parse_task("denoise50").sigma == 50 and parse_task("derain").kind
    with pytest.raises(ValueError, match="unknown task 'deblur'"):
        parse_task("deblur")
    grey = torch.full((3, 64, 64), 0.5)
    noisy = add_gaussian_noise(grey, 30, np.random.default_rng(1))
    assert abs(float((noisy - grey).std()) - 30 / 255) < 0.01 and noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(noisy, add_gaussian_noise(grey, 30, np.random.default_rng(1)))  # seeded
    rainy = add_rain(grey, np.random.default_rng(2))
    assert (rainy >= grey).all() and 0.002 < float((rainy > 0.6).float().mean()) < 0.6
    assert torch.equal(rainy[0], rainy[2])  # streaks are neutral in colour

    # Patches of the same image alike and images apart score lower than mixed-up features.
    rng = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(4, 1, 16, generator=rng), dim=-1)
    clustered = centres + 0.01 * torch.randn(4, 9, 16, generator=rng)
    shuffled = clustered.reshape(36, 16)[torch.randperm(36, generator=rng)].reshape(4, 9, 16)
    assert patch_contrastive_loss(clustered, 0.1) < patch_contrastive_loss(shuffled, 0.1) - 1.0
    assert float(patch_contrastive_loss(clustered[:1], 0.1)) == 0.0


@pytest.mark.parametrize(
    ("train", "options", "needle"),
    [
        ({"tasks": ["sr_x2", "derain"]}, {}, "has no task 'derain'"),
        ({"finetune_task": "sr_x5"}, {}, "train.finetune_task: the model has no task 'sr_x5'"),
        ({"tasks": ["sr_x2"], "finetune_task": "sr_x3"}, {}, "disagree"),
        ({}, {"tasks": ["sr_x2", "deblur"]}, "unknown task 'deblur'"),
        ({"task_order": "shuffle"}, {}, "train.task_order 'shuffle' is not one of random, round_robin"),
        ({"contrastive": {"temperature": 0}}, {}, "temperature > 0"),
        ({"contrastive": {"wieght": 0.1}}, {}, "did you mean 'train.contrastive.weight'"),
        ({}, {"patch_size": 12}, "must equal the model's patch_size 12"),
    ],
)
def test_config_errors_name_the_file(tmp_path: Path, train: dict, options: dict, needle: str) -> None:
    cfg = config(tmp_path, "bad")
    cfg["train"].update(train)
    cfg["model"]["options"].update(options)
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="bad.yml") as err:
        load_config(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_not_a_multitask_model_and_mismatched_checkpoint(tmp_path: Path) -> None:
    cfg = config(tmp_path, "x")
    cfg["model"] = {"name": "imdn", "scale": 2, "options": {"nf": 16, "num_modules": 1}}
    with pytest.raises(ConfigError, match="needs a multi-task model"):
        build_config(cfg)
    from litesr.registry import create_model

    other = create_model("ipt", scale=2, **{**TINY, "tasks": ("sr_x2", "denoise30")})
    save_safetensors(other.state_dict(), tmp_path / "two.safetensors",
                     {"config": json.dumps({"tasks": ["sr_x2", "denoise30"]})})
    cfg = config(tmp_path, "ft", finetune_task="sr_x2")
    cfg["model"]["init_from"] = str(tmp_path / "two.safetensors")
    with pytest.raises(ConfigError, match="trained with tasks sr_x2, denoise30, but model.options.tasks gives"):
        build_config(cfg)


def test_shipped_ipt_configs_validate() -> None:
    for name in ("ipt_pretrain", "ipt_finetune_x2"):
        path = REPO / "configs" / f"{name}.yml"
        assert (REPO / "litesr" / "configs" / f"{name}.yml").read_text() == path.read_text()
        cfg = load_config(name)
        assert cfg["train"]["type"] == "multitask" and cfg["model"]["name"] == "ipt"
    pretrain, finetune = load_config("ipt_pretrain"), load_config("ipt_finetune_x2")
    assert pretrain["train"]["contrastive"]["weight"] == 0.1 and finetune["train"]["finetune_task"] == "sr_x2"
    assert finetune["model"]["options"] == pretrain["model"]["options"]
    assert finetune["model"]["init_from"].endswith(f"{pretrain['name']}/net_last.safetensors")
