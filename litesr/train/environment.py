"""Where a training process runs: its place in a torchrun job, its device and its numeric precision."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from ..device import PrecisionChoice, choose_precision
from ..errors import ConfigError


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


def precision_choice(precision: str, device: torch.device) -> PrecisionChoice:
    """The training precision for this device, with its reason (the one rule: :func:`litesr.device.choose_precision`;
    fp16 trains with a gradient scaler, so CUDA only)."""
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision fp16 needs CUDA (GradScaler); use bf16 or fp32 on CPU")
    try:
        return choose_precision(precision, device)
    except ConfigError as exc:
        raise ConfigError(f"train.precision: {exc}") from None


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp32 | bf16 | fp16 for this device (``auto`` resolved by :func:`litesr.device.choose_precision`)."""
    return precision_choice(precision, device).precision
