"""IPT-style multi-task pre-training and single-task fine-tuning (``train.type: multitask``).

Pre-training (Chen et al., CVPR 2021, "Pre-Trained Image Processing Transformer"): the same HR patches are degraded in
several ways, one per task of the model (``sr_xN``: litesr's MATLAB bicubic downscale by N; ``denoiseS``: additive
Gaussian noise of standard deviation S on the 0-255 scale, clipped to the pixel range as the official test code does;
``derain``: synthetic rain streaks). Each batch belongs to one task, drawn at random or in turn, and trains the shared
body with that task's head, tail and query under an L1 (the configured pixel loss) per task; the paper's patch
contrastive loss on the decoder output is optional (``train.contrastive.weight``, 0.1 in the paper).

Fine-tuning (``train.finetune_task: sr_x2`` with ``model.init_from`` a pre-trained checkpoint) trains that task's
head and tail, and the body unless ``train.freeze_body``; every other task's head, tail and query stay as loaded.

The task of a batch is a function of the iteration (seeded), and the degradations draw from the sample's key, so runs
resume exactly like single-task ones. The model must be multi-task the way :class:`litesr.archs.ipt.IPT` is:
``tasks``, ``set_task``, ``head``/``tail`` module lists indexed like ``tasks`` and a Transformer ``body``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from ..data.train import Pair, SampleKey, TrainPatches, collect_pairs, image_size
from ..errors import ConfigError, DatasetError
from .trainer import Trainer, TrainingError, make_optimizer, register_trainer

TASK_ORDERS = ("random", "round_robin")
_TASK_PATTERN = re.compile(r"sr_x(\d+)|denoise(\d+)|derain")


@dataclass(frozen=True)
class TaskKind:
    """What a task name means for the data: ``sr`` at ``scale``, ``denoise`` at ``sigma`` (0-255 scale), ``derain``."""

    kind: str
    scale: int = 1
    sigma: float = 0.0


def parse_task(name: str) -> TaskKind:
    """``sr_x2`` -> TaskKind("sr", 2); ``denoise30`` -> TaskKind("denoise", sigma=30); ``derain``. ValueError else."""
    m = _TASK_PATTERN.fullmatch(name)
    if m is None:
        raise ValueError(f"unknown task {name!r}: trainable tasks are sr_xN, denoiseS (sigma S on 0-255) and derain")
    if m.group(1):
        return TaskKind("sr", scale=int(m.group(1)))
    if m.group(2):
        return TaskKind("denoise", sigma=float(m.group(2)))
    return TaskKind("derain")


# ---- degradations of size-keeping tasks ---------------------------------------------------------------------------


def add_gaussian_noise(x: Tensor, sigma: float, rng: np.random.Generator) -> Tensor:
    """``x`` in [0, 1] plus N(0, (sigma/255)^2) noise, clipped to [0, 1] (the official IPT denoising test does the
    same on the 0-255 scale; the values are not rounded)."""
    noise = torch.from_numpy(rng.standard_normal(tuple(x.shape), dtype=np.float32)).to(x.device)
    return (x + noise * (sigma / 255.0)).clamp_(0.0, 1.0)


def _line_kernel(length: int, angle: float) -> Tensor:
    """A (k, k) kernel holding a one-pixel line of ``length`` through the centre, ``angle`` radians from vertical."""
    size = length if length % 2 else length + 1
    kernel = torch.zeros(size, size)
    centre = size // 2
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, 4 * length):
        row = int(round(centre + t * math.cos(angle)))
        col = int(round(centre + t * math.sin(angle)))
        kernel[row, col] = 1.0
    return kernel


def rain_streaks(height: int, width: int, rng: np.random.Generator) -> Tensor:
    """A (H, W) rain layer in [0, 1]: sparse drops of random brightness smeared into parallel streaks of one random
    length (5-20 px) and slant (up to 30 degrees off vertical), softened by a 3x3 blur.

    A simple synthetic model in the spirit of the additive streak layers of Rain100L, not its generator."""
    density = rng.uniform(0.002, 0.01)
    drops = (rng.random((height, width)) < density) * rng.uniform(0.5, 1.0, size=(height, width))
    kernel = _line_kernel(int(rng.integers(5, 21)), math.radians(rng.uniform(-30.0, 30.0)))
    blur = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
    layer = torch.from_numpy(drops.astype(np.float32))[None, None]
    layer = F.conv2d(layer, kernel[None, None], padding=kernel.shape[-1] // 2)
    layer = F.conv2d(layer, blur[None, None], padding=1)
    return layer[0, 0].clamp_(0.0, 1.0)


def add_rain(x: Tensor, rng: np.random.Generator) -> Tensor:
    """``x`` (3, H, W) in [0, 1] with whitish rain streaks added at a random opacity (0.6-1.0), clipped."""
    layer = rain_streaks(x.shape[-2], x.shape[-1], rng).to(x.device)
    return (x + rng.uniform(0.6, 1.0) * layer).clamp_(0.0, 1.0)


def degrade(x: Tensor, task: str, rng: np.random.Generator) -> Tensor:
    """The input of a size-keeping ``task`` for the clean image ``x`` (3, H, W) in [0, 1]."""
    kind = parse_task(task)
    if kind.kind == "denoise":
        return add_gaussian_noise(x, kind.sigma, rng)
    if kind.kind == "derain":
        return add_rain(x, rng)
    raise ValueError(f"{task}: SR inputs come from bicubic downscaling, not from degrade()")


# ---- the patch contrastive loss -----------------------------------------------------------------------------------


def patch_contrastive_loss(features: Tensor, temperature: float) -> Tensor:
    """IPT's contrastive loss on decoder features ``(B, P, D)`` (P patch tokens of each of B images):

        -1/(B P^2) sum_{i1, i2, j} log( exp(d(f^j_i1, f^j_i2) / t) / sum_{k != j} exp(d(f^j_i1, f^k_i2) / t) )

    with d the cosine similarity: patches of the same image are pulled together, those of other images pushed
    apart. Needs at least two images; 0 for one."""
    b, p, _ = features.shape
    if b < 2:
        return features.new_zeros(())
    f = F.normalize(features.float(), dim=-1)
    sim = torch.einsum("jad,kbd->jakb", f, f) / temperature  # (B, P, B, P): image j patch a vs image k patch b
    positive = torch.diagonal(sim, dim1=0, dim2=2).permute(2, 0, 1)  # (B, P, P): k = j
    same_image = torch.eye(b, dtype=torch.bool, device=f.device)[:, None, :, None]
    negative = torch.logsumexp(sim.masked_fill(same_image, float("-inf")), dim=2)  # (B, P, P): over k != j
    return (negative - positive).mean()


# ---- data --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskSchedule:
    """Which task each iteration trains: in turn (``round_robin``) or drawn uniformly from (seed, iteration).

    A sample's iteration follows from its :class:`~litesr.data.train.SampleStream` key, so a dataset can label its
    samples without seeing the loader: the key's position in the epoch gives the number of samples this process
    consumed before it, and ``batch_per_rank`` of them make one iteration."""

    count: int
    order: str
    seed: int
    samples_per_rank: int  # SampleStream.per_rank: ceil(len(dataset) / world_size)
    world_size: int = 1
    batch_per_rank: int = 1

    def task_at(self, iteration: int) -> int:
        if self.count == 1:
            return 0
        if self.order == "round_robin":
            return iteration % self.count
        return int(np.random.default_rng([self.seed, iteration, 0x19F7]).integers(self.count))

    def iteration_of(self, key: SampleKey) -> int:
        _, epoch, position = key
        consumed = epoch * self.samples_per_rank + position // self.world_size
        return consumed // self.batch_per_rank


class MultiTaskPatches(Dataset):
    """Training patches for several tasks of the same HR images; ``len`` is ``images * data_repeat``.

    A sample of task ``sr_xN`` is an aligned (LR, HR) crop with LR ``input_size`` (LR images made once with MATLAB
    bicubic and cached, or read from ``lr_dirs``); one of a size-keeping task is an ``input_size`` HR crop and its
    degraded copy. Items carry ``task`` (an index into ``tasks``), chosen by :attr:`schedule` from the sample key, so
    all samples of a batch share it. Images smaller than the largest HR patch are left out of every task.
    """

    def __init__(
        self,
        hr_dirs: Sequence[str | os.PathLike],
        lr_dirs: Sequence[str | os.PathLike | None],
        tasks: Sequence[str],
        input_size: int,
        *,
        data_repeat: int = 1,
        flip: bool = True,
        rot90: bool = True,
        preload: bool = False,
        cache_dir: str | os.PathLike | None = None,
        schedule: TaskSchedule | None = None,
    ) -> None:
        self.tasks = tuple(tasks)
        self.kinds = [parse_task(t) for t in self.tasks]
        self.input_size = int(input_size)
        scales = sorted({k.scale for k in self.kinds})
        largest = self.input_size * scales[-1]
        sizes: dict[Path, int] = {}
        self.skipped: list[Path] = []
        self.by_scale: dict[int, TrainPatches] = {}
        for scale in scales:
            if scale == 1:  # the HR file is both sides of the pair; the degradation happens per sample
                pairs = [Pair(p.hr, p.hr) for p in collect_pairs(hr_dirs, [None] * len(hr_dirs), 1)]
            else:
                pairs = collect_pairs(hr_dirs, lr_dirs, scale)
            for pair in pairs:
                if pair.hr not in sizes:
                    sizes[pair.hr] = min(image_size(pair.hr))
            kept = [p for p in pairs if sizes[p.hr] >= largest]
            if not kept:
                raise DatasetError(f"{pairs[0].hr.parent}: no training image is at least {largest} pixels on each "
                                   f"side (the HR patch of {self.input_size}-pixel inputs at x{scales[-1]})")
            self.skipped = [p.hr for p in pairs if sizes[p.hr] < largest]
            self.by_scale[scale] = TrainPatches(kept, scale, self.input_size * scale, data_repeat=data_repeat,
                                                flip=flip, rot90=rot90, preload=preload, cache_dir=cache_dir)
        self.schedule = schedule or TaskSchedule(len(self.tasks), "round_robin", 0, len(self))

    def __len__(self) -> int:
        return len(next(iter(self.by_scale.values())))

    def prepare_cache(self) -> None:
        for scale, patches in self.by_scale.items():
            if scale > 1:
                patches.prepare_cache()

    def sample(self, index: int, task: int, rng: np.random.Generator) -> dict[str, Tensor]:
        kind = self.kinds[task]
        item = self.by_scale[kind.scale].sample(index, rng)
        if kind.kind != "sr":
            item["lr"] = degrade(item["hr"], self.tasks[task], rng)
        item["task"] = torch.tensor(task)
        return item

    def __getitem__(self, item: int | tuple[int, SampleKey]) -> dict[str, Tensor]:
        if isinstance(item, tuple):
            index, key = item
            task = self.schedule.task_at(self.schedule.iteration_of(key))
            return self.sample(index, task, np.random.default_rng(list(key)))
        index = int(item)
        task = self.schedule.task_at(index // self.schedule.batch_per_rank)
        return self.sample(index, task, np.random.default_rng(index))


# ---- validation of size-keeping tasks ----------------------------------------------------------------------------


def restoration_metrics(model: nn.Module, dataset: str | os.PathLike, task: str, *, seed: int = 0,
                        device: str | torch.device | None = "cpu",
                        data_root: str | os.PathLike | None = None) -> tuple[float, float]:
    """Mean PSNR/SSIM of ``model`` (already on ``task``) restoring the HR images of ``dataset`` degraded for ``task``
    with a fixed seed per image: denoising on RGB, deraining on Y (as Rain100L tables), no border crop."""
    from ..data.benchmark import open_dataset, read_rgb_uint8
    from ..evaluate import quantize_uint8
    from ..inference import run_model
    from ..metrics import calculate_metrics

    data = open_dataset(dataset, 1, root=data_root)
    target = torch.device(device) if device is not None else next(model.parameters()).device
    on_y = parse_task(task).kind == "derain"
    psnrs, ssims = [], []
    with torch.inference_mode():
        for i, image in enumerate(data):
            hr = read_rgb_uint8(image.hr_path)
            clean = torch.from_numpy(hr).permute(2, 0, 1).float().div_(255.0)
            degraded = degrade(clean, task, np.random.default_rng([seed, i]))
            restored = run_model(model, degraded[None].to(target))[0]
            metrics = calculate_metrics(quantize_uint8(restored), hr, 0, y_channel=on_y)
            psnrs.append(metrics.psnr)
            ssims.append(metrics.ssim)
    return float(np.mean(psnrs)), float(np.mean(ssims))


# ---- the trainer -------------------------------------------------------------------------------------------------


def _meta_model(cfg: Mapping[str, Any]) -> nn.Module:
    """The configured model, built on the meta device (no memory, no init) to read its tasks and sizes."""
    from ..registry import create_model

    mcfg = cfg["model"]
    with torch.device("meta"):
        return create_model(mcfg["name"], scale=int(mcfg["scale"]), **(mcfg["options"] or {}))


def _checkpoint_tasks(path: Path) -> tuple[str, ...] | None:
    """The task list recorded in a litesr safetensors checkpoint's metadata (None when it records none)."""
    import json

    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tasks = json.loads(meta.get("config", "{}")).get("tasks")
    except (OSError, ValueError, AttributeError):
        return None
    return tuple(tasks) if isinstance(tasks, list | tuple) else None


@register_trainer("multitask")
class MultiTaskTrainer(Trainer):
    """IPT multi-task pre-training (a task per batch, shared body, per-task heads/tails, optional patch contrastive
    loss) and single-task fine-tuning (``train.finetune_task``). Validation measures every trained task."""

    extra_config = {
        "tasks": None,  # the tasks to pre-train (names of the model's tasks); null: all of them
        "task_order": "random",  # random (drawn per batch from the seed) | round_robin
        "contrastive": {"weight": 0.0, "temperature": 0.1},  # IPT's patch contrastive loss (paper: weight 0.1)
        "finetune_task": None,  # train only this task's head and tail (and the body unless freeze_body)
        "freeze_body": False,  # keep the shared Transformer body as loaded
    }
    ddp_options = {"find_unused_parameters": True}  # the other tasks' heads and tails sit out each step

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], source: str) -> None:
        tcfg = cfg["train"]
        name = cfg["model"]["name"]
        net = _meta_model(cfg)
        tasks = tuple(getattr(net, "tasks", ()) or ())
        if not tasks or not hasattr(net, "set_task") or not hasattr(net, "head") or not hasattr(net, "tail"):
            raise ConfigError(f"{source}: train.type multitask needs a multi-task model with per-task heads and "
                              f"tails (ipt); {name} has none")
        chosen, finetune = tcfg["tasks"], tcfg["finetune_task"]
        if chosen is not None:
            if isinstance(chosen, str):
                chosen = [chosen]
            if not isinstance(chosen, list) or not chosen or len(set(chosen)) != len(chosen):
                raise ConfigError(f"{source}: train.tasks must be a list of distinct task names, not {chosen!r}")
        for key, names in (("train.tasks", chosen or []), ("train.finetune_task", [finetune] if finetune else [])):
            for task in names:
                if task not in tasks:
                    raise ConfigError(f"{source}: {key}: the model has no task {task!r} (its tasks: "
                                      f"{', '.join(tasks)}; set them with model.options.tasks)")
        if finetune and chosen is not None and list(chosen) != [finetune]:
            raise ConfigError(f"{source}: train.tasks and train.finetune_task disagree; fine-tuning trains only "
                              f"{finetune!r} (leave train.tasks null)")
        for task in [finetune] if finetune else (chosen or tasks):
            try:
                parse_task(str(task))
            except ValueError as exc:
                raise ConfigError(f"{source}: {exc}") from None
        if str(tcfg["task_order"]) not in TASK_ORDERS:
            raise ConfigError(f"{source}: train.task_order {tcfg['task_order']!r} is not one of "
                              f"{', '.join(TASK_ORDERS)}")
        contrastive = tcfg["contrastive"]
        if float(contrastive["weight"]) < 0 or float(contrastive["temperature"]) <= 0:
            raise ConfigError(f"{source}: train.contrastive needs weight >= 0 and temperature > 0, not {contrastive}")
        if float(contrastive["weight"]) > 0 and not hasattr(getattr(net, "body", None), "decoder"):
            raise ConfigError(f"{source}: train.contrastive needs a Transformer body with a decoder; {name} has none")
        size = getattr(net, "patch_size", None)
        if size is not None and int(cfg["datasets"]["train"]["patch_size"]) != int(size):
            raise ConfigError(f"{source}: datasets.train.patch_size {cfg['datasets']['train']['patch_size']} must "
                              f"equal the model's patch_size {size}: for train.type multitask it is the input side "
                              "(SR HR patches are that times the scale)")
        init_from = cfg["model"]["init_from"]
        if finetune and init_from and Path(str(init_from)).suffix == ".safetensors" and Path(str(init_from)).is_file():
            saved = _checkpoint_tasks(Path(str(init_from)))
            if saved is not None and saved != tasks:
                raise ConfigError(f"{source}: model.init_from {init_from} was trained with tasks {', '.join(saved)}, "
                                  f"but model.options.tasks gives {', '.join(tasks)}; use the same task list")

    def __init__(self, cfg: Mapping[str, Any], *, resume: str | os.PathLike | None = None,
                 state: Mapping[str, Any] | None = None) -> None:
        self.finetune_task: str | None = cfg["train"]["finetune_task"]
        self.train_tasks: tuple[str, ...] = ()
        super().__init__(cfg, resume=resume, state=state)
        # Registered after the EMA copy exists, so the copy does not carry the hook.
        self._features: Tensor | None = None
        self._capture = float(self.cfg["train"]["contrastive"]["weight"]) > 0
        if self._capture:
            self.net.body.decoder.layers[-1].register_forward_hook(self._keep_decoder_output)
        # Query rows of tasks that are not trained stay as loaded (weight decay and Adam momentum would move them).
        self._fixed_queries: tuple[Tensor, Tensor] | None = None
        query = getattr(self.net.body, "query_embed", None)
        if query is not None and query.weight.requires_grad:
            keep = torch.tensor([t not in self.train_tasks for t in self.net.tasks], device=query.weight.device)
            if bool(keep.any()):
                self._fixed_queries = (keep, query.weight.detach().clone())
        self._task_window: dict[str, list[float]] = {}
        self._step_task: tuple[str, float] | None = None

    # ---- seams -------------------------------------------------------------------------------------------------

    def build_models(self) -> dict[str, nn.Module]:
        models = super().build_models()
        net = models["net"]
        if self.finetune_task:
            self.train_tasks = (self.finetune_task,)
            net.set_task(self.finetune_task)
            self.scale = int(net.scale)
        else:
            self.train_tasks = tuple(self.cfg["train"]["tasks"] or net.tasks)
        if self.cfg["train"]["freeze_body"]:
            for p in net.body.parameters():
                p.requires_grad_(False)
        return models

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """All parameters when pre-training (unused heads get no gradient and Adam skips them); when fine-tuning,
        the task's head and tail and the body (unless frozen)."""
        if not self.finetune_task:
            return super().build_optimizers()
        net = self.net
        i = net.tasks.index(self.finetune_task)
        params = [*net.head[i].parameters(), *net.tail[i].parameters(), *net.body.parameters()]
        return {"net": make_optimizer(params, self.cfg["train"]["optimizer"], self.device)}

    def build_train_set(self) -> MultiTaskPatches:
        dcfg = self.cfg["datasets"]["train"]
        hr_dirs = dcfg["hr_dir"] if isinstance(dcfg["hr_dir"], list) else [dcfg["hr_dir"]]
        lr_dirs = dcfg["lr_dir"] if isinstance(dcfg["lr_dir"], list) else [dcfg["lr_dir"]] * len(hr_dirs)
        if len(lr_dirs) != len(hr_dirs):
            raise ConfigError(f"datasets.train.lr_dir lists {len(lr_dirs)} folders for {len(hr_dirs)} hr_dir folders")
        cache_dir = dcfg["cache_dir"] or str(Path(self.cfg["output"]) / ".lr_cache")

        def make(preload: bool) -> MultiTaskPatches:
            return MultiTaskPatches(hr_dirs, lr_dirs, self.train_tasks, int(dcfg["patch_size"]),
                                    data_repeat=int(dcfg["data_repeat"]), flip=bool(dcfg["flip"]),
                                    rot90=bool(dcfg["rot90"]), preload=preload, cache_dir=cache_dir)

        dataset = make(False)
        if dataset.skipped and self.dist.is_main:
            print(f"note: {len(dataset.skipped)} training image(s) smaller than the largest HR patch left out "
                  f"(e.g. {dataset.skipped[0]})")
        if self.dist.is_main:
            dataset.prepare_cache()
        self.dist.barrier()
        if dcfg["preload"]:
            dataset = make(True)
        dataset.schedule = TaskSchedule(
            len(self.train_tasks), str(self.cfg["train"]["task_order"]), int(self.cfg["seed"]),
            math.ceil(len(dataset) / self.dist.world_size), self.dist.world_size, self._per_rank_batch())
        return dataset

    def training_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        tasks = batch["task"]
        index = int(tasks[0])
        if bool((tasks != index).any()):
            raise TrainingError("a batch mixes tasks; the multitask trainer needs its MultiTaskPatches loader")
        task = self.train_tasks[index]
        self.net.set_task(task)
        self.scale = int(self.net.scale)
        self._features = None
        sr = self.sr_forward(self.forward_net, batch["lr"])
        pixel, parts = self.criteria["pixel"](sr, self.target(batch["hr"]))
        losses = {"loss": pixel, **parts}
        self._step_task = (task, float(pixel.detach()))
        contrastive = self.cfg["train"]["contrastive"]
        if self._capture and self._features is not None:
            features = self._features.permute(1, 0, 2)  # decoder tokens (L, B, D) -> (B, L, D)
            term = float(contrastive["weight"]) * patch_contrastive_loss(features, float(contrastive["temperature"]))
            losses["contrastive"] = term
            losses["loss"] = pixel + term
        self._features = None
        return losses

    def optimization_step(self, batch: Mapping[str, Tensor]) -> dict[str, float] | None:
        metrics = super().optimization_step(batch)
        if metrics is not None and self._fixed_queries is not None:
            keep, reference = self._fixed_queries
            with torch.no_grad():
                self.net.body.query_embed.weight[keep] = reference[keep]
        return metrics

    def on_iteration_end(self, metrics: dict[str, float] | None) -> None:
        """Per-task pixel losses, averaged over the logging window: one ``task_losses`` record and line."""
        if metrics is not None and self._step_task is not None:
            task, value = self._step_task
            total = self._task_window.setdefault(task, [0.0, 0])
            total[0] += value
            total[1] += 1
        self._step_task = None
        mon = self.monitor
        if mon is None or not (self.iteration % mon.print_every == 0 or self.iteration == self.total_iterations):
            return
        if len(self.train_tasks) > 1 and self._task_window:
            means = {t: s / n for t, (s, n) in self._task_window.items()}
            mon.record({"iter": self.iteration, "event": "task_losses",
                        **{f"loss_{t}": v for t, v in means.items()},
                        **{f"steps_{t}": int(n) for t, (_, n) in self._task_window.items()}})
            mon.print(f"  tasks @ {self.iteration}: " + "  ".join(
                f"{t} {means[t]:.4g} ({int(self._task_window[t][1])} steps)" for t in sorted(means)))
        self._task_window = {}

    def _keep_decoder_output(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        if self.net.training:
            self._features = output

    # ---- validation --------------------------------------------------------------------------------------------

    def validate(self) -> dict[str, dict[str, float]]:
        """Every trained task on every validation set: SR tasks with :func:`litesr.evaluate.evaluate` (Y, border =
        scale), size-keeping ones with :func:`restoration_metrics` (fixed-seed degradations). The first set's mean
        PSNR over the tasks decides ``best``."""
        sets = self.validation_sets()
        results: dict[str, dict[str, float]] = {}
        if not sets or not self.dist.is_main:
            return results
        from ..checkpoint import save_safetensors
        from ..evaluate import evaluate

        model = self.eval_model()
        was_training, previous = model.training, model.task
        model.eval()
        try:
            for entry in sets:
                for task in self.train_tasks:
                    model.set_task(task)
                    kind = parse_task(task)
                    with torch.no_grad():
                        if kind.kind == "sr":
                            kwargs: dict[str, Any] = {"device": self.device}
                            if entry.get("lr_dir"):
                                kwargs["lr_dir"] = entry["lr_dir"]
                            result = evaluate(model, entry["hr_dir"], kind.scale, **kwargs)
                            psnr, ssim = float(result.psnr), float(result.ssim)
                        else:
                            psnr, ssim = restoration_metrics(model, entry["hr_dir"], task, seed=int(self.cfg["seed"]),
                                                             device=self.device)
                    results[f"{entry['name']}/{task}"] = {"psnr": psnr, "ssim": ssim}
        finally:
            model.set_task(previous)
            model.train(was_training)
        assert self.monitor is not None
        first = sets[0]["name"]
        firsts = [r for key, r in results.items() if key.startswith(f"{first}/")]
        score = float(np.mean([r["psnr"] for r in firsts]))
        improved = not self.best or score > self.best["psnr"]
        for key, r in results.items():
            dataset, task = key.rsplit("/", 1)
            self.monitor.record({"iter": self.iteration, "dataset": key, "set": dataset, "task": task, **r})
            self.monitor.print(f"val {dataset} {task} @ {self.iteration}: PSNR {r['psnr']:.3f} dB  "
                               f"SSIM {r['ssim']:.4f}")
        if len(firsts) > 1:
            self.monitor.print(f"val {first} mean over {len(firsts)} tasks: PSNR {score:.3f} dB"
                               f"{'  (best)' if improved else ''}")
        if improved:
            self.best = {"psnr": score, "ssim": float(np.mean([r["ssim"] for r in firsts])),
                         "iteration": self.iteration, "dataset": first, "tasks": list(self.train_tasks)}
            save_safetensors(model.state_dict(), self.run_dir / "net_best.safetensors", self._metadata())
        return results
