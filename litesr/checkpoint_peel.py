"""Where in a checkpoint the model's state dict is: containers and wrappers peeled by one rule, not a list of names.

Training code wraps weights in many ways: ``{"params_ema": ...}`` (BasicSR), ``{"state_dict": {"model.x": ...}}``
(Lightning), ``module.`` (DataParallel), ``net_g.``, or an ``nn.Sequential`` around the network, sometimes next to a
normaliser (``0.mean``, ``1.conv_first.weight``). Rather than knowing those names, :func:`state_dict_candidates` lists
every dict of tensors in the file (nested dicts included) and, in each, every subtree the dotted names imply: the
chain of prefixes all keys share (``module.model.``) and, one level below it, each child that carries most of the
weights (``1.`` next to a small ``0.``). Detection then tries them in order and keeps the ones an architecture fits
exactly; the tensors left outside are reported.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

_THOP_COUNTERS = frozenset({"total_ops", "total_params"})
_MAX_NESTING = 4
_MIN_SHARE = 0.5  # a subtree next to others must hold at least this share of the weights to be taken alone


@dataclass(frozen=True)
class Candidate:
    """One place a state dict may be: the path through nested dicts, the key prefix, the tensors below it (prefix
    removed) and the keys of the same dict left outside."""

    path: tuple[str, ...]
    prefix: str
    tensors: dict[str, Tensor]
    ignored: tuple[str, ...] = ()

    def where(self) -> str:
        parts = [f"[{p!r}]" for p in self.path]
        if self.prefix:
            parts.append(f"keys under {self.prefix!r}")
        return " ".join(parts) or "top level"


def _tensor_dicts(obj: Any, path: tuple[str, ...] = (), depth: int = 0) -> list[tuple[tuple[str, ...], dict]]:
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping) or depth > _MAX_NESTING:
        return []
    found = []
    tensors = {str(k): v for k, v in obj.items()
               if isinstance(v, Tensor) and str(k).rsplit(".", 1)[-1] not in _THOP_COUNTERS}
    if tensors:
        found.append((path, tensors))
    for key, value in obj.items():
        if isinstance(value, Mapping | nn.Module):
            found += _tensor_dicts(value, (*path, str(key)), depth + 1)
    return found


def _common_chain(keys: list[str]) -> list[str]:
    """The prefixes every key shares, shortest first: ``["module.", "module.model."]``."""
    chain: list[str] = []
    parts = [k.split(".")[:-1] for k in keys]
    for depth in range(min(len(p) for p in parts)):
        segment = parts[0][depth]
        if any(p[depth] != segment for p in parts):
            break
        chain.append(".".join(parts[0][: depth + 1]) + ".")
    return chain


def _numel(tensors: Mapping[str, Tensor]) -> int:
    return sum(t.numel() for t in tensors.values())


def state_dict_candidates(obj: Any) -> list[Candidate]:
    """Every place in ``obj`` a model's state dict may be, most likely first (see the module docstring)."""
    out: list[Candidate] = []
    for path, tensors in _tensor_dicts(obj):
        keys = list(tensors)
        prefixes = [""] + _common_chain(keys)
        for prefix in prefixes:
            out.append(Candidate(path, prefix, {k[len(prefix):]: v for k, v in tensors.items()}))
        base = prefixes[-1]
        total = _numel(tensors)
        children: dict[str, list[str]] = {}
        for key in keys:
            rest = key[len(base):]
            if "." in rest:
                children.setdefault(base + rest.split(".", 1)[0] + ".", []).append(key)
        for prefix, inside in children.items():
            sub = {k[len(prefix):]: tensors[k] for k in inside}
            if total and _numel(sub) >= _MIN_SHARE * total and len(inside) < len(keys):
                ignored = tuple(k for k in keys if not k.startswith(prefix))
                out.append(Candidate(path, prefix, sub, ignored))
    return out
