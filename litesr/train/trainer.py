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

import importlib
import importlib.util
import inspect
import math
import os
import pkgutil
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

from ..checkpoint import atomic_torch_save, load_state_dict, save_safetensors
from ..errors import ConfigError, LitesrError
from ..inference import model_luma
from .config import dump_config
from .ema import ModelEMA
from .monitor import Monitor
from .schedule import Schedule

STATE_VERSION = 1


class TrainingError(LitesrError):
    """Training cannot go on (diverged, or a checkpoint does not belong to this run)."""


TRAINERS: dict[str, type[Trainer]] = {}


def register_trainer(name: str) -> Callable[[type[Trainer]], type[Trainer]]:
    """Class decorator: make a Trainer subclass selectable with ``train.type: name``."""

    def decorator(cls: type[Trainer]) -> type[Trainer]:
        if name in TRAINERS and TRAINERS[name] is not cls:
            raise RuntimeError(f"trainer {name!r} registered twice")
        TRAINERS[name] = cls
        return cls

    return decorator


def trainer_class(name: str, source: str = "config") -> type[Trainer]:
    """The Trainer registered as ``name``; every module in ``litesr/train/`` is imported first so it can register."""
    from .. import train as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{info.name}")
    if name not in TRAINERS:
        import difflib

        close = difflib.get_close_matches(name, list(TRAINERS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{source}: unknown train.type {name!r}{hint}; known: {', '.join(sorted(TRAINERS))}")
    return TRAINERS[name]


# ----------------------------------------------------------------------------------------------------------------
# Environment: processes, device, precision


class DistInfo:
    """This process's place in a torchrun job (rank 0 of 1 when run alone)."""

    def __init__(self) -> None:
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.owns_group = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def init(self, device: torch.device) -> None:
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.owns_group = True

    def barrier(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
            self.owns_group = False


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device (cpu, cuda, cuda:N, auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def cpu_has_amx() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp32 | bf16 | fp16 for this device; ``auto`` is bf16 on CUDA with bf16 and on CPUs with AMX, else fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if cpu_has_amx() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision fp16 needs CUDA (GradScaler); use bf16 or fp32 on CPU")
    if precision == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise ConfigError("train.precision bf16: this CPU has no bf16 instructions (avx512_bf16 or AMX); use fp32")
    return precision


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


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint helpers


def _rng_state(device: torch.device) -> dict[str, Any]:
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def find_state_file(path: str | os.PathLike) -> Path:
    """``--resume`` takes a run folder or its state file."""
    path = Path(path)
    if path.is_dir():
        path = path / "state_last.pt"
    if not path.is_file():
        raise ConfigError(f"{path}: no training state to resume from (expected a run folder or its state_last.pt)")
    return path


def read_state(path: str | os.PathLike) -> dict[str, Any]:
    path = find_state_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user-facing error
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise TrainingError(f"{path}: not a readable litesr training state ({first})") from None
    if not isinstance(state, dict) or state.get("format") != "litesr-train-state":
        raise TrainingError(f"{path}: not a litesr training state")
    return state


def warm_start(model: nn.Module, path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Load every tensor of ``path`` whose name and shape match ``model`` (x2 -> x3/x4: all but the upsampler).

    Returns (loaded keys, skipped keys with the reason)."""
    source = load_state_dict(path)
    own = model.state_dict()
    loaded, skipped = [], []
    for key, tensor in own.items():
        if key not in source:
            skipped.append(f"{key} (not in checkpoint)")
        elif tuple(source[key].shape) != tuple(tensor.shape):
            skipped.append(f"{key} (shape {tuple(source[key].shape)} vs {tuple(tensor.shape)})")
        else:
            loaded.append(key)
    if not loaded:
        raise ConfigError(f"{path}: no tensor of this checkpoint fits the model (wrong architecture?)")
    model.load_state_dict({k: source[k] for k in loaded}, strict=False)
    return loaded, skipped


# ----------------------------------------------------------------------------------------------------------------


@register_trainer("sr")
class Trainer:
    """Supervised SR training: one network, pixel/frequency losses, optional EMA. See the module doc for the seam."""

    extra_config: ClassVar[dict[str, Any]] = {}
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
        self.precision = resolve_precision(tcfg["precision"], self.device)
        cl = tcfg["channels_last"]
        self.channels_last = self.precision != "fp32" if cl == "auto" else bool(cl)
        self.scale = int(cfg["model"]["scale"])
        self.iteration = 0
        self.nan_total = 0
        self.nan_in_row = 0
        self.best: dict[str, Any] = {}
        self.elapsed_before = 0.0
        self._stop_signal: str | None = None
        self.run_dir = Path(cfg["output"]) / str(cfg["name"])
        if state is None and resume is not None:
            state = read_state(resume)
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
        ema_cfg = tcfg["ema"]
        self.ema = ModelEMA(self.net, ema_cfg["decay"]) if ema_cfg["enabled"] else None
        self.optimizers = self.build_optimizers()
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
        self.criteria = self.build_criteria()
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.train_set = self.build_train_set()
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
        return {"net": create_model(mcfg["name"], scale=self.scale, **(mcfg["options"] or {}))}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers, checkpointed by name; the schedule scales each group's ``initial_lr``."""
        return {"net": make_optimizer(self.net.parameters(), self.cfg["train"]["optimizer"], self.device)}

    def build_criteria(self) -> dict[str, nn.Module]:
        from ..losses import build_loss

        return {"pixel": build_loss(self.cfg["train"]["losses"], source="config").to(self.device)}

    def build_train_set(self, scale: int | None = None) -> Any:
        """Patches of the training folders at ``scale`` (default: the model's); a multi-scale trainer asks for each."""
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
        dataset = TrainPatches(
            collect_pairs(hr_dirs, lr_dirs, scale), scale, int(dcfg["patch_size"]),
            data_repeat=int(dcfg["data_repeat"]), flip=bool(dcfg["flip"]), rot90=bool(dcfg["rot90"]),
            preload=False, cache_dir=cache_dir,
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
                                   flip=dataset.flip, rot90=dataset.rot90, preload=True, cache_dir=cache_dir)
        return dataset

    def sr_forward(self, net: Callable[..., Tensor], lr: Tensor, scale: int | None = None) -> Tensor:
        """``net`` on an RGB [0, 1] batch, honouring the model's input range, colour space and size multiple.

        ``scale``: for multi-scale models, the factor of this batch (passed on as ``net(x, scale)``)."""
        from ..archs.blocks import pad_to_multiple

        raw = self.net
        input_range = float(getattr(raw, "input_range", 1.0))
        x = model_luma(raw, lr) if getattr(raw, "color_space", "rgb") == "y" else lr
        h, w = x.shape[-2:]
        multiple = int(getattr(raw, "pad_multiple", 1))
        if multiple > 1:
            x, _, _ = pad_to_multiple(x, multiple)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        extra = () if scale is None else (scale,)
        out = net(x * input_range, *extra) if input_range != 1.0 else net(x, *extra)
        if input_range != 1.0:
            out = out / input_range
        scale = self.scale if scale is None else scale
        return out[..., : h * scale, : w * scale]

    def target(self, hr: Tensor) -> Tensor:
        return model_luma(self.net, hr) if getattr(self.net, "color_space", "rgb") == "y" else hr

    def training_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Forward pass and losses of one batch (under autocast); ``"loss"`` is what is back-propagated."""
        sr = self.sr_forward(self.forward_net, batch["lr"])
        total, parts = self.criteria["pixel"](sr, self.target(batch["hr"]))
        return {"loss": total, **parts}

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
            self.run_dir.mkdir(parents=True, exist_ok=True)
            dump_config(cfg, self.run_dir / "config.yml")
        self.monitor = Monitor(self.run_dir, cfg, total=self.total_iterations, start=self.iteration, enabled=main)
        mon = self.monitor
        resumed = self.iteration > 0
        mon.print(f"{'resuming' if resumed else 'training'} {cfg['model']['name']} x{self.scale} "
                  f"({sum(p.numel() for p in self.net.parameters()):,} parameters) on {self.device} {self.precision}"
                  f"{f' x{self.dist.world_size} processes' if self.dist.enabled else ''}: "
                  f"{len(self.train_set):,} samples/epoch, batch {cfg['train']['batch_size']}, "
                  f"iterations {self.iteration}->{self.total_iterations}, run folder {self.run_dir}")
        val_every = int(cfg["val"]["every"])
        ckpt_every = int(cfg["checkpoint"]["every"])
        print_every = mon.print_every
        window: dict[str, float] = {}
        window_steps = 0
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
                        window[k] = window.get(k, 0.0) + v
                    window_steps += 1
                self.on_iteration_end(metrics)
                if self.iteration % print_every == 0 or self.iteration == self.total_iterations:
                    mean = {k: v / max(1, window_steps) for k, v in window.items()}
                    mon.step(self.iteration, self.epoch, mean, lr)
                    window, window_steps = {}, 0
                if val_every and self.iteration % val_every == 0 and self.iteration < self.total_iterations:
                    self.validate()
                if ckpt_every and self.iteration % ckpt_every == 0 and self.iteration < self.total_iterations:
                    self.save_checkpoint()
            if status == "completed" and self.validation_sets():
                self.validate()
            self.save_checkpoint()
            if status == "interrupted":
                mon.print(f"stopped by {self._stop_signal} at iteration {self.iteration}; checkpoint written. "
                          f"Continue with: litesr train --resume {self.run_dir}")
                mon.record({"iter": self.iteration, "event": "interrupted", "signal": self._stop_signal})
            else:
                mon.print(f"finished {self.iteration} iterations; weights in {self.run_dir}")
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
            with torch.no_grad():
                result = evaluate(model, entry["hr_dir"], self.scale, **kwargs)
            results[entry["name"]] = {"psnr": float(result.psnr), "ssim": float(result.ssim)}
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

    # ---- checkpoints -------------------------------------------------------------------------------------------

    def _metadata(self) -> dict[str, str]:
        import json

        net = self.net
        config = getattr(net, "litesr_config", {"scale": self.scale})
        return {"arch": str(getattr(net, "litesr_arch", type(net).__name__)), "config": json.dumps(config),
                "iteration": str(self.iteration), "run": str(self.cfg["name"])}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as plain tensors/lists/dicts (loads with ``weights_only=True``)."""
        return {
            "format": "litesr-train-state",
            "version": STATE_VERSION,
            "iteration": self.iteration,
            "config": self.cfg,
            "models": {name: m.state_dict() for name, m in self.models.items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "ema_updates": self.ema.updates if self.ema is not None else 0,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "scheduler": {"type": self.schedule.kind, "iteration": self.iteration, "total": self.total_iterations},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": _rng_state(self.device),
            "data": {"consumed_per_rank": self.iteration * self.per_rank_batch, "world_size": self.dist.world_size,
                     "batch_per_rank": self.per_rank_batch, "seed": int(self.cfg["seed"])},
            "counters": {"nonfinite_total": self.nan_total, "nonfinite_in_row": self.nan_in_row,
                         "elapsed_s": self.elapsed_before},
            "best": dict(self.best),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        for name, model in self.models.items():
            model.load_state_dict(state["models"][name], strict=True)
        if self.ema is not None:
            if state.get("ema") is None:
                raise TrainingError("the training state has no EMA weights but train.ema.enabled is true")
            self.ema.load_state_dict(state["ema"])
            self.ema.updates = int(state.get("ema_updates", 0))
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.iteration = int(state["iteration"])
        counters = state.get("counters", {})
        self.nan_total = int(counters.get("nonfinite_total", 0))
        self.nan_in_row = int(counters.get("nonfinite_in_row", 0))
        self.elapsed_before = float(counters.get("elapsed_s", 0.0))
        self.best = dict(state.get("best") or {})
        data = state.get("data", {})
        if data.get("world_size", 1) != self.dist.world_size or data.get("batch_per_rank") != self.per_rank_batch:
            print(f"warning: resuming with {self.dist.world_size} process(es) x batch {self.per_rank_batch} "
                  f"(was {data.get('world_size')} x {data.get('batch_per_rank')}): the data order differs")
        if self.dist.is_main:
            _set_rng_state(state["rng"], self.device)

    def save_checkpoint(self) -> None:
        """net_last / net_ema_last safetensors and state_last.pt, each written atomically; rank 0 only."""
        if not self.dist.is_main:
            return
        meta = self._metadata()
        for name, model in self.models.items():
            save_safetensors(model.state_dict(), self.run_dir / f"{name}_last.safetensors", meta)
            if self.cfg["checkpoint"]["keep_history"]:
                save_safetensors(model.state_dict(), self.run_dir / f"{name}_iter{self.iteration}.safetensors", meta)
        if self.ema is not None:
            save_safetensors(self.ema.state_dict(), self.run_dir / "net_ema_last.safetensors", meta)
        atomic_torch_save(self.state_dict(), self.run_dir / "state_last.pt")
        if self.monitor is not None:
            self.monitor.record({"iter": self.iteration, "event": "checkpoint"})

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
