"""The training engine: :class:`Trainer` runs one config from start (or a checkpoint) to the last iteration.

Extension seam (GAN, multi-task pre-training): subclass :class:`Trainer`, register it with
``@register_trainer("name")`` in a module under ``litesr/train/`` and select it with ``train.type: name``. Override

- :meth:`build_models` -> ``{"net": generator, "disc": discriminator}`` (every entry is checkpointed by name),
- :meth:`build_optimizers` -> ``{"net": opt_g, "disc": opt_d}`` (every entry is checkpointed; the schedule applies),
- :meth:`build_criteria` -> named loss modules,
- :meth:`training_step` -> ``dict`` of named losses (``"loss"`` is the total that is back-propagated), or, for
  several optimisers per iteration, :meth:`optimization_step` using :meth:`backward_and_step`,
- :attr:`extra_config` -> extra ``train`` keys with their defaults (validated like every other key).
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import os
import random
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from ..checkpoint import save_safetensors
from ..descriptor import bind_contract, describe, with_scale
from ..errors import ConfigError
from ..forward import model_target, run_model_with_luma
from .curriculum import build_curriculum_set
from .ema import ModelEMA
from .environment import DistInfo, pick_device, precision_choice, resolve_precision
from .monitor import Monitor
from .schedule import Schedule
from .state import (  # noqa: F401 - STATE_VERSION is re-exported
    STATE_VERSION,
    ResumableState,
    TrainingError,
    find_state_file,
    pause_for_crash_test,
    read_state,
    warm_start,
)
from .strategies import TrainingStrategies
from .strategy_config import STRATEGY_TRAINERS
from .trainer_registry import TRAINERS, register_trainer, trainer_class

# Re-exported: they lived here before the engine was split (environment, state, trainer_registry).
__all__ = ["TRAINERS", "DistInfo", "Trainer", "TrainingError", "find_state_file", "make_optimizer",
           "pick_device", "read_state", "register_trainer", "resolve_precision", "trainer_class", "warm_start"]


def make_optimizer(params: Iterator[nn.Parameter] | list, cfg: Mapping[str, Any], device: torch.device) -> Any:
    kind = cfg["type"]
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[kind]
    params = [p for p in params if p.requires_grad]
    fused = cfg.get("fused", "auto")
    if fused == "auto":
        fused = device.type in ("cpu", "cuda")
    kwargs: dict[str, Any] = {"lr": float(cfg["lr"]), "weight_decay": float(cfg["weight_decay"])}
    if kind == "sgd":
        kwargs["momentum"] = float(cfg["momentum"])
    else:
        kwargs.update(betas=tuple(float(b) for b in cfg["betas"]), eps=float(cfg["eps"]))
    if fused:
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):
            pass  # this torch has no fused kernel for the device: the default implementation is just slower
    return cls(params, **kwargs)


_UNSET = object()  # build_train_set: "the config's degradation" (None means none)

# ----------------------------------------------------------------------------------------------------------------


@register_trainer("sr")
class Trainer(ResumableState):
    """Supervised SR training: one network, pixel/frequency losses, optional EMA. See the module doc for the seam."""

    extra_config: ClassVar[dict[str, Any]] = {}
    # Whether this trainer's training step applies train.udl/distill/aux_classifier (litesr.train.strategies).
    uses_strategies: ClassVar[bool] = True
    # Keyword arguments of DistributedDataParallel (a multi-task trainer that leaves some heads unused in a step needs
    # find_unused_parameters=True).
    ddp_options: ClassVar[dict[str, Any]] = {}

    @classmethod
    def check_config(cls, cfg: Mapping[str, Any], source: str) -> None:
        """Validate this trainer's own keys once the config is merged (raise ConfigError naming ``source``)."""

    def __init__(self, cfg: Mapping[str, Any], *, resume: str | os.PathLike | None = None,
                 state: Mapping[str, Any] | None = None) -> None:
        self.cfg: dict[str, Any] = dict(cfg)
        self.dist = DistInfo()
        self.device = pick_device(str(cfg["device"]), self.dist.local_rank)
        self.dist.init(self.device)
        tcfg = cfg["train"]
        self.precision_choice = precision_choice(tcfg["precision"], self.device)
        self.precision = self.precision_choice.precision
        cl = tcfg["channels_last"]
        self.channels_last = self.precision != "fp32" if cl == "auto" else bool(cl)
        self.scale = int(cfg["model"]["scale"])
        self.iteration = 0
        self.nan_total = 0
        self.nan_in_row = 0
        self.best: dict[str, Any] = {}
        self.elapsed_before = 0.0
        self._stop_signal: str | None = None
        self.log_window: dict[str, Any] = {"sums": {}, "steps": 0}
        self.resume_log_bytes: int | None = None
        self.run_dir = Path(cfg["output"]) / str(cfg["name"])
        if state is None and resume is not None:
            state = read_state(resume)
        self.resumed = state is not None
        self._seed_everything(int(cfg["seed"]))
        self._was_deterministic = torch.are_deterministic_algorithms_enabled()
        if cfg["deterministic"]:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False

        # Build everything; the order (models, then EMA, then optimisers) is fixed so seeded init is reproducible.
        self.models = self.build_models()
        for model in self.models.values():
            model.to(self.device)
            if self.channels_last:
                model.to(memory_format=torch.channels_last)
        self.net = self.models["net"]
        if state is None and cfg["model"]["init_from"]:
            self._warm_start(cfg["model"]["init_from"])
        # A patch/degradation curriculum is the sr trainer's; multi-scale training reads its scale curriculum itself.
        by_stage = bool(tcfg.get("curriculum")) and tcfg["type"] in STRATEGY_TRAINERS
        self.train_set = build_curriculum_set(self) if by_stage else self.build_train_set()
        ema_cfg = tcfg["ema"]
        self.ema = ModelEMA(self.net, ema_cfg["decay"]) if ema_cfg["enabled"] else None
        # Learning strategies (UDL, distillation, auxiliary head): their trainable modules train and checkpoint with
        # the network. Built after the EMA copy, so the copy does not carry their forward hooks.
        self.strategies = TrainingStrategies(self) if type(self).uses_strategies else None
        if self.strategies is not None:
            for name, module in self.strategies.modules().items():
                self.models[name] = module.to(self.device)
        self.optimizers = self.build_optimizers()
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.criteria = self.build_criteria()
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.per_rank_batch = self._per_rank_batch()
        self.total_iterations = self._total_iterations()
        self.schedule = Schedule(tcfg["scheduler"], self.total_iterations)
        self.forward_net = self._wrap_for_training(self.net)
        if state is not None:
            self.load_state(state)
        self.monitor: Monitor | None = None

    # ---- seams -------------------------------------------------------------------------------------------------

    def build_models(self) -> dict[str, nn.Module]:
        """Named models; ``"net"`` is the SR network that is validated and exported."""
        from ..registry import create_model

        mcfg = self.cfg["model"]
        if mcfg.get("type") == "fusion":  # several trained models and a learned fusion layer (litesr.archs.fusion)
            from ..archs.fusion import build_fusion

            return {"net": build_fusion(mcfg["members"], self.scale, freeze_members=bool(mcfg["freeze_members"]))}
        return {"net": create_model(mcfg["name"], scale=self.scale, **(mcfg["options"] or {}))}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers, checkpointed by name; the schedule scales each group's ``initial_lr``."""
        extra = self.strategies.parameters() if self.strategies is not None else []
        return {"net": make_optimizer([*self.net.parameters(), *extra], self.cfg["train"]["optimizer"], self.device)}

    def build_criteria(self) -> dict[str, nn.Module]:
        from ..losses import build_loss

        return {"pixel": build_loss(self.cfg["train"]["losses"], source="config").to(self.device)}

    def build_train_set(self, scale: int | None = None, *, patch_size: int | None = None, degradation: Any = _UNSET,
                        pairs: Any = None) -> Any:
        """Patches of the training folders at ``scale`` (default: the model's); a multi-scale trainer asks for each.
        A curriculum asks for each stage's ``patch_size`` and ``degradation`` (of the same ``pairs``)."""
        from ..data.degradations import build_degradation
        from ..data.texture_sampling import parse_sampling
        from ..data.train import TrainPatches, collect_pairs

        scale = self.scale if scale is None else scale
        dcfg = self.cfg["datasets"]["train"]
        if not dcfg["hr_dir"]:
            raise ConfigError("datasets.train.hr_dir is not set (a folder of HR training images; --train_dir)")
        hr_dirs = dcfg["hr_dir"] if isinstance(dcfg["hr_dir"], list) else [dcfg["hr_dir"]]
        lr_dirs = dcfg["lr_dir"] if isinstance(dcfg["lr_dir"], list) else [dcfg["lr_dir"]] * len(hr_dirs)
        if len(lr_dirs) != len(hr_dirs):
            raise ConfigError(f"datasets.train.lr_dir lists {len(lr_dirs)} folders for {len(hr_dirs)} hr_dir folders")
        cache_dir = dcfg["cache_dir"] or Path(self.cfg["output"]) / ".lr_cache"
        spec = dcfg.get("degradation") if degradation is _UNSET else degradation
        degradation = build_degradation(spec, scale, where="datasets.train.degradation")
        dataset = TrainPatches(
            collect_pairs(hr_dirs, lr_dirs, scale) if pairs is None else pairs, scale,
            int(dcfg["patch_size"] if patch_size is None else patch_size),
            data_repeat=int(dcfg["data_repeat"]), flip=bool(dcfg["flip"]), rot90=bool(dcfg["rot90"]),
            preload=False, cache_dir=cache_dir, degradation=degradation,
        )
        if dataset.skipped and self.dist.is_main:
            print(f"note: {len(dataset.skipped)} training image(s) smaller than the {dataset.patch_size}-pixel patch "
                  f"left out (e.g. {dataset.skipped[0]})")
        # Rank 0 makes the LR cache while the others wait, then everyone (pre)loads from it.
        if self.dist.is_main:
            dataset.prepare_cache()
        self.dist.barrier()
        if dcfg["preload"]:
            dataset = TrainPatches(dataset.pairs, scale, dataset.patch_size, data_repeat=dataset.data_repeat,
                                   flip=dataset.flip, rot90=dataset.rot90, preload=True, cache_dir=cache_dir,
                                   degradation=degradation)
        sampling = parse_sampling(dcfg.get("sampling"))
        if sampling is not None:
            sampler = dataset.use_texture_sampling(**sampling)
            if self.dist.is_main:
                print(f"note: x{scale} {sampler.summary()}")
        return dataset

    def sr_forward(self, net: Callable[..., Tensor], lr: Tensor, scale: int | None = None) -> Tensor:
        """``net`` on an RGB [0, 1] batch through the one run path (:func:`litesr.forward.run_model_with_luma`), which
        honours the model's input range, colour space and size multiple; Y models return their luma plane.

        ``scale``: for multi-scale models, the factor of this batch (passed on as ``net(x, scale)``)."""
        if self.channels_last:
            lr = lr.contiguous(memory_format=torch.channels_last)
        runner = _AsModel(net, self.net, scale)
        return run_model_with_luma(runner, lr, recombine=False)[0]

    def target(self, hr: Tensor) -> Tensor:
        return model_target(self.net, hr)

    def training_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Forward pass and losses of one batch (under autocast); ``"loss"`` is what is back-propagated."""
        setup = self.strategies.before_forward(self.iteration) if self.strategies is not None else {}
        try:
            sr = self.sr_forward(self.forward_net, batch["lr"])
        finally:
            if self.strategies is not None:
                self.strategies.after_forward()
        target = self.target(batch["hr"])
        criterion = self.criteria["pixel"]
        criterion.set_iteration(self.iteration)  # scheduled loss weights
        total, parts = criterion(sr, target, lr=batch["lr"])
        if self.strategies is None:
            return {"loss": total, **parts}
        terms, logged = self.strategies.losses(batch, sr, target, self.iteration)
        total = total + sum(terms.values())
        return {"loss": total, **parts, **terms, **logged, **setup}

    def optimization_step(self, batch: Mapping[str, Tensor]) -> dict[str, float] | None:
        """One parameter update; returns the losses as floats, or None when the step was skipped (non-finite loss)."""
        opt = self.optimizers["net"]
        opt.zero_grad(set_to_none=True)
        with self.autocast():
            losses = self.training_step(batch)
        if not self.all_finite(losses["loss"]):
            return None
        self.backward_and_step(losses["loss"], opt, self.net)
        return {k: float(v.detach()) for k, v in losses.items()}

    def on_iteration_end(self, metrics: dict[str, float] | None) -> None:
        """Called after every iteration (``self.iteration`` already counts it); a hook for subclasses and tests."""

    # ---- building blocks for optimization_step ------------------------------------------------------------------

    def autocast(self) -> Any:
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def all_finite(self, loss: Tensor) -> bool:
        """Whether every process's loss is finite (all skip together, or DDP's all-reduce would hang)."""
        bad = torch.tensor([0.0 if bool(torch.isfinite(loss.detach()).all()) else 1.0], device=self._flag_device())
        if self.dist.enabled:
            dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        return bad.item() == 0.0

    def backward_and_step(self, loss: Tensor, opt: torch.optim.Optimizer, model: nn.Module) -> None:
        """Backward, optional gradient clipping, optimiser step (through the GradScaler with fp16)."""
        clip = self.cfg["train"]["clip_grad"]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if clip:
                self.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
            self.scaler.step(opt)
            self.scaler.update()
            return
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), float(clip))
        opt.step()

    # ---- the loop ----------------------------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train to ``total_iterations`` (or until SIGINT/SIGTERM); returns a summary dict."""
        cfg = self.cfg
        main = self.dist.is_main
        if self.validation_sets() and importlib.util.find_spec("litesr.evaluate") is None:
            raise ConfigError("validation sets are configured but litesr.evaluate is not available in this install")
        if main:
            self._prepare_run_folder()
        self.monitor = Monitor(self.run_dir, cfg, total=self.total_iterations, start=self.iteration, enabled=main)
        mon = self.monitor
        if self.resumed and self.iteration >= self.total_iterations:
            mon.print(f"{self.run_dir}: already trained {self.iteration} of {self.total_iterations} iterations; "
                      "nothing to do (extend it with train.iterations=N or train.epochs=N)")
            mon.close()
            return {"status": "completed", "iteration": self.iteration, "run_dir": str(self.run_dir),
                    "best": dict(self.best), "nonfinite_steps": self.nan_total}
        mon.print(f"{'resuming' if self.resumed else 'training'} {cfg['model']['name'] or 'fusion'} x{self.scale} "
                  f"({sum(p.numel() for p in self.net.parameters()):,} parameters) on {self.device} {self.precision}"
                  f"{f' x{self.dist.world_size} processes' if self.dist.enabled else ''}: "
                  f"{len(self.train_set):,} samples/epoch, batch {cfg['train']['batch_size']}, "
                  f"iterations {self.iteration}->{self.total_iterations}, run folder {self.run_dir}")
        if self.precision_choice.requested == "auto":
            mon.print(str(self.precision_choice))  # what auto chose, and why (CPU flags, GPU)
        val_every = int(cfg["val"]["every"])
        ckpt_every = int(cfg["checkpoint"]["every"])
        print_every = mon.print_every
        window = self.log_window  # losses summed since the last logged step (in the state: resuming logs the same)
        started = time.perf_counter()
        status = "completed"
        loader = self.make_loader()
        batches = iter(loader)
        previous = self._install_signal_handlers()
        try:
            while self.iteration < self.total_iterations:
                if self._should_stop():
                    status = "interrupted"
                    break
                batch = {k: v.to(self.device, non_blocking=True) for k, v in next(batches).items()}
                lr = self._apply_schedule()
                metrics = self.optimization_step(batch)
                self.iteration += 1
                if metrics is None:
                    self.nan_total += 1
                    self.nan_in_row += 1
                    mon.record({"iter": self.iteration, "event": "nonfinite_loss", "in_row": self.nan_in_row})
                    limit = int(cfg["train"]["max_nan_steps"])
                    if self.nan_in_row >= limit:
                        raise TrainingError(
                            f"stopped at iteration {self.iteration}: {self.nan_in_row} non-finite losses in a row "
                            f"(limit train.max_nan_steps={limit}); lower train.optimizer.lr or set train.clip_grad")
                else:
                    self.nan_in_row = 0
                    if self.ema is not None:
                        self.ema.update(self.net)
                    for k, v in metrics.items():
                        window["sums"][k] = window["sums"].get(k, 0.0) + v
                    window["steps"] += 1
                self.on_iteration_end(metrics)
                if self.iteration % print_every == 0 or self.iteration == self.total_iterations:
                    mean = {k: v / max(1, window["steps"]) for k, v in window["sums"].items()}
                    mon.step(self.iteration, self.epoch, mean, lr)
                    window["sums"], window["steps"] = {}, 0
                pause_for_crash_test("step", self.iteration)
                if val_every and self.iteration % val_every == 0 and self.iteration < self.total_iterations:
                    self.validate()
                if ckpt_every and self.iteration % ckpt_every == 0 and self.iteration < self.total_iterations:
                    self.save_checkpoint()
            if status == "completed" and self.validation_sets():
                self.validate()
            if status == "interrupted":  # recorded before the checkpoint, whose state keeps the log up to here
                mon.record({"iter": self.iteration, "event": "interrupted", "signal": self._stop_signal})
            self.save_checkpoint()
            if status == "interrupted":
                mon.print(f"stopped by {self._stop_signal} at iteration {self.iteration}; checkpoint written. "
                          f"Continue with: litesr train --resume {self.run_dir}")
            else:
                mon.print(f"finished {self.iteration} iterations; weights in {self.run_dir}")
            # The other ranks wait for rank 0's validation and checkpoint before tearing gloo down: a rank that left
            # early aborted once under load ("terminate called without an active exception").
            self.dist.barrier()
        finally:
            self._restore_signal_handlers(previous)
            del batches, loader
            mon.close()
        self.elapsed_before += time.perf_counter() - started
        return {"status": status, "iteration": self.iteration, "run_dir": str(self.run_dir), "best": dict(self.best),
                "nonfinite_steps": self.nan_total}

    def close(self) -> None:
        """Leave the process as it was: the process group (when this trainer made it), deterministic mode."""
        self.dist.close()
        torch.use_deterministic_algorithms(self._was_deterministic)

    @property
    def epoch(self) -> int:
        per_epoch = max(1, math.ceil(len(self.train_set) / self.dist.world_size) // self.per_rank_batch)
        return self.iteration // per_epoch

    def make_loader(self) -> DataLoader:
        from ..data.train import SampleStream, seed_worker

        seed = int(self.cfg["seed"])
        sampler = SampleStream(len(self.train_set), seed, rank=self.dist.rank, world_size=self.dist.world_size,
                               start=self.iteration * self.per_rank_batch)
        workers = int(self.cfg["datasets"]["train"]["workers"])
        generator = torch.Generator().manual_seed(seed + 1000 * self.dist.rank)
        return DataLoader(self.train_set, batch_size=self.per_rank_batch, sampler=sampler, num_workers=workers,
                          pin_memory=self.device.type == "cuda", drop_last=True, worker_init_fn=seed_worker,
                          generator=generator, persistent_workers=False, prefetch_factor=2 if workers else None)

    # ---- validation --------------------------------------------------------------------------------------------

    def validation_sets(self) -> list[dict[str, Any]]:
        sets = []
        first = self.cfg["datasets"].get("val") or {}
        if first.get("hr_dir"):
            sets.append(dict(first))
        for entry in self.cfg["val"]["datasets"]:
            sets.append({"hr_dir": entry} if isinstance(entry, str) else dict(entry))
        for entry in sets:
            entry.setdefault("name", None)
            entry["name"] = entry["name"] or Path(str(entry["hr_dir"])).name
        return sets

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.net

    def validate(self) -> dict[str, dict[str, float]]:
        """Y-PSNR/SSIM (border = scale) of the EMA (or plain) network on every validation set; rank 0 only.

        The first set decides ``best``."""
        sets = self.validation_sets()
        results: dict[str, dict[str, float]] = {}
        if not sets or not self.dist.is_main:
            return results
        from ..evaluate import evaluate

        model = self.eval_model()
        was_training = model.training
        model.eval()
        accepted = inspect.signature(evaluate).parameters
        for entry in sets:
            kwargs: dict[str, Any] = {}
            if "device" in accepted:
                kwargs["device"] = self.device
            if entry.get("lr_dir") and "lr_dir" in accepted:
                kwargs["lr_dir"] = entry["lr_dir"]
            if self.cfg["val"].get("self_ensemble"):
                kwargs["self_ensemble"] = True  # x8 geometric self-ensemble (litesr.evaluate)
            with torch.no_grad():
                result = evaluate(model, entry["hr_dir"], self.scale, **kwargs)
            results[entry["name"]] = {"psnr": float(result.psnr), "ssim": float(result.ssim)}
            pause_for_crash_test("validation", self.iteration)
        model.train(was_training)
        first_name = sets[0]["name"]
        psnr = results[first_name]["psnr"]
        improved = not self.best or psnr > self.best["psnr"]
        for name, r in results.items():
            assert self.monitor is not None
            self.monitor.record({"iter": self.iteration, "dataset": name, **r})
            self.monitor.print(f"val {name} @ {self.iteration}: PSNR {r['psnr']:.3f} dB  SSIM {r['ssim']:.4f}"
                               f"{'  (best)' if name == first_name and improved else ''}")
        if improved:
            self.best = {"psnr": psnr, "ssim": results[first_name]["ssim"], "iteration": self.iteration,
                         "dataset": first_name}
            save_safetensors(model.state_dict(), self.run_dir / "net_best.safetensors", self._metadata())
        return results

    # ---- signals -----------------------------------------------------------------------------------------------

    def request_stop(self, reason: str = "request") -> None:
        """Finish the current iteration, write a checkpoint and return from :meth:`fit` (what SIGINT/SIGTERM do)."""
        self._stop_signal = reason

    def _on_signal(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self._stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without a checkpoint
        self.request_stop(name)
        if self.monitor is not None:
            self.monitor.print(f"{name}: finishing iteration {self.iteration + 1} and writing a checkpoint "
                               "(Ctrl-C again to abort without one)")

    def _install_signal_handlers(self) -> dict[int, Any]:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    def _restore_signal_handlers(self, previous: Mapping[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _should_stop(self) -> bool:
        """Whether any process was asked to stop (they must agree, or the next all-reduce hangs)."""
        flag = self._stop_signal is not None
        if not self.dist.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self._flag_device())
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        if t.item() and self._stop_signal is None:
            self._stop_signal = "peer"
        return bool(t.item())

    # ---- internals ---------------------------------------------------------------------------------------------

    def _flag_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _seed_everything(self, seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _per_rank_batch(self) -> int:
        batch = int(self.cfg["train"]["batch_size"])
        if batch < 1 or batch % self.dist.world_size:
            raise ConfigError(f"train.batch_size {batch} must be a positive multiple of the {self.dist.world_size} "
                              "processes (it is the total batch)")
        return batch // self.dist.world_size

    def _total_iterations(self) -> int:
        tcfg = self.cfg["train"]
        iters, epochs = tcfg["iterations"], tcfg["epochs"]
        if iters is not None and epochs is not None:
            raise ConfigError("give train.iterations or train.epochs, not both")
        if iters is not None:
            return int(iters)
        if epochs is None:
            raise ConfigError("give train.iterations (--iters) or train.epochs (--epochs)")
        per_rank = math.ceil(len(self.train_set) / self.dist.world_size)
        return int(epochs) * max(1, per_rank // self.per_rank_batch)

    def schedule_for(self, optimizer: str) -> Schedule:
        """The learning-rate schedule of the optimiser named ``optimizer`` (a GAN's discriminator may have its own)."""
        return self.schedule

    def _apply_schedule(self) -> float:
        """Set every optimiser's rate for this iteration; returns the network's (``"net"``), which is logged."""
        rates: dict[str, float] = {}
        for name, opt in self.optimizers.items():
            schedule = self.schedule_for(name)
            for group in opt.param_groups:
                group["lr"] = rates[name] = schedule.lr(group["initial_lr"], self.iteration)
        return rates.get("net", next(iter(rates.values()), 0.0))

    def _wrap_for_training(self, net: nn.Module) -> Callable[[Tensor], Tensor]:
        module: Any = net
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            module = DistributedDataParallel(net, device_ids=ids, **self.ddp_options)
        if self.cfg["train"]["compile"]:
            module = torch.compile(module)
        net.train()
        return module

    def _warm_start(self, path: str | os.PathLike) -> None:
        loaded, skipped = warm_start(self.net, path)
        if self.dist.is_main:
            text = f"init from {path}: loaded {len(loaded)}/{len(loaded) + len(skipped)} tensors"
            if skipped:
                text += f"; skipped {len(skipped)}: {', '.join(skipped)}"
            print(text)


class _AsModel(nn.Module):
    """A training-time callable (the DDP/compiled ``net``) dressed with the raw model's descriptor, at the batch's
    scale, so that training runs the same forward path as inference."""

    def __init__(self, net: Callable[..., Tensor], raw: nn.Module, scale: int | None) -> None:
        super().__init__()
        self.__dict__["net"] = net  # not a submodule: no parameters are registered twice
        self.extra = () if scale is None else (scale,)
        descriptor = describe(raw)
        bind_contract(self, descriptor if scale is None else with_scale(descriptor, scale))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x, *self.extra)
