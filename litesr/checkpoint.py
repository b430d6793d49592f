"""Reading and writing checkpoints safely: safetensors, or torch files with ``weights_only=True``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoint_formats import read_by_content
from .descriptor import describe
from .errors import CheckpointError
from .fileio import atomic_output

# Containers the training frameworks wrap state dicts in, most specific first (BasicSR keeps EMA weights apart).
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model", "net_g", "generator", "network")


def read_checkpoint(path: str | os.PathLike, *, allow_pickle: bool = False) -> Any:
    """The raw object stored in ``path`` (a dict of tensors, or a nested dict for torch files), read by what its
    bytes are (:mod:`litesr.checkpoint_formats`); pickled modules come back as their state dicts."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    return read_by_content(path, allow_pickle=allow_pickle)


_THOP_COUNTERS = frozenset({"total_ops", "total_params"})


def extract_state_dict(obj: Any, *, param_key: str | None = None, source: str = "checkpoint") -> dict[str, Tensor]:
    """Unwrap ``params_ema``/``params``/``state_dict``/``model`` containers and ``module.`` prefixes; drop the
    ``total_ops``/``total_params`` counters that profiling with thop leaves in a model's buffers (the released
    Omni-SR checkpoints carry them)."""
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a dict of tensors, found {type(obj).__name__}")
    if param_key is not None:
        if param_key not in obj:
            raise CheckpointError(f"{source}: no key {param_key!r} (top-level keys: {', '.join(map(str, obj))[:200]})")
        obj = obj[param_key]
    else:
        for _ in range(3):  # nested wrappers such as {"model": {"state_dict": ...}}
            if any(isinstance(v, Tensor) for v in obj.values()):
                break
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping | nn.Module)), None)
            if inner is None:
                break
            obj = inner.state_dict() if isinstance(inner, nn.Module) else inner
    tensors = {str(k): v for k, v in obj.items()
               if isinstance(v, Tensor) and str(k).rsplit(".", 1)[-1] not in _THOP_COUNTERS}
    if not tensors:
        raise CheckpointError(f"{source}: contains no tensors (top-level keys: {', '.join(map(str, obj))[:200]})")
    for prefix in ("module.", "model.", "_orig_mod."):
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix) :]: v for k, v in tensors.items()}
    # GAN trainers (GRL's real-world files, e.g. bsr_grl_base.ckpt) keep the generator under ``model_g.`` beside the
    # discriminator and losses: the generator is the model.
    if any(k.startswith("model_g.") for k in tensors):
        tensors = {k[len("model_g.") :]: v for k, v in tensors.items() if k.startswith("model_g.")}
    return tensors


def load_state_dict(
    path: str | os.PathLike, *, allow_pickle: bool = False, param_key: str | None = None
) -> dict[str, Tensor]:
    """The state dict in ``path``, unwrapped (see :func:`extract_state_dict`)."""
    return extract_state_dict(read_checkpoint(path, allow_pickle=allow_pickle), param_key=param_key, source=str(path))


def load_into(model: nn.Module, state_dict: Mapping[str, Tensor], *, source: str = "checkpoint") -> None:
    """``load_state_dict(strict=True)`` with a one-line error that lists what does not match."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if missing or unexpected or wrong:
        arch = describe(model).label
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} of other shape (e.g. {k}: {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"{source}: does not fit {arch}: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def read_identity(path: str | os.PathLike) -> tuple[str, dict[str, Any]] | None:
    """The architecture and configuration litesr recorded in a safetensors file's metadata (``arch``, ``config``),
    or None. It carries what tensor shapes cannot show (attention heads, window sizes, a category size)."""
    try:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        config = json.loads(meta["config"]) if "config" in meta else None
    except Exception:  # noqa: BLE001 - not a safetensors file, or no readable identity: detection decides alone
        return None
    if not isinstance(meta.get("arch"), str) or not isinstance(config, dict):
        return None
    return meta["arch"], config


def save_safetensors(
    state_dict: Mapping[str, Tensor], path: str | os.PathLike, metadata: dict[str, str] | None = None
) -> None:
    """Write a safetensors file atomically (see :func:`atomic_output`)."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def packaged_weights_dir() -> Path:
    return Path(__file__).resolve().parent / "weights"


def load_pretrained(model: nn.Module, variant: Any, scale: int) -> None:
    """Load the weights litesr ships for ``variant`` at ``scale``."""
    name = variant.pretrained.get(scale)
    if name is None:
        have = ", ".join(f"x{s}" for s in sorted(variant.pretrained)) or "none"
        raise CheckpointError(f"{variant.name}: litesr ships no pretrained weights at x{scale} (available: {have})")
    path = packaged_weights_dir() / name
    load_into(model, load_state_dict(path), source=str(path))
