"""Recognise an architecture and its hyper-parameters from a state dict, without order-dependent guessing.

Every registered architecture's ``detect`` function proposes a configuration read off tensor shapes. A proposal only
counts once the model built from it has exactly the state dict's keys and shapes, so two architectures can never both
"sort of" match: when two proposals fit exactly, loading stops and says so, and the user picks with ``--model``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .checkpoint import extract_state_dict, load_into, read_checkpoint, read_identity
from .checkpoint_peel import Candidate, state_dict_candidates
from .descriptor import describe, is_multi_scale_builder
from .detect_structural import StructuralMatch, remap, structural_matches
from .errors import CheckpointError, ConfigError
from .registry import StateDict, all_archs, all_variants, create_model, get_variant
from .shape_fit import build_on_meta, fits, shape_signature


@dataclass(frozen=True)
class Match:
    arch: str
    config: dict[str, Any]

    def describe(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"{self.arch}({opts})"


def detect_architecture(state_dict: StateDict) -> list[Match]:
    """All (architecture, config) pairs whose model has exactly this state dict's keys and shapes."""
    matches = []
    for name, spec in sorted(all_archs().items()):
        if spec.detect is None:
            continue
        try:
            proposal = spec.detect(state_dict)
        except (KeyError, IndexError, ValueError, TypeError, AttributeError):
            proposal = None
        if proposal is not None and fits(name, proposal, state_dict):
            matches.append(Match(name, dict(proposal)))
    return matches


def closest_architectures(state_dict: StateDict, n: int = 3) -> list[tuple[str, float, list[str]]]:
    """The architectures whose default model shares the most key names: (name, overlap, keys not matched)."""
    keys = set(state_dict)
    ranked = []
    for name in all_archs():
        try:
            own = set(build_on_meta(name, {}).state_dict())
        except Exception:  # noqa: BLE001
            continue
        overlap = len(keys & own) / max(1, len(keys | own))
        ranked.append((name, overlap, sorted(keys - own)))
    ranked.sort(key=lambda r: -r[1])
    return ranked[:n]


def describe_unknown(state_dict: StateDict, source: str) -> str:
    close = closest_architectures(state_dict)
    hints = "; ".join(
        f"{name} ({overlap:.0%} of keys shared; unmatched e.g. {', '.join(extra[:3]) or '-'})"
        for name, overlap, extra in close
    )
    return f"{source}: no litesr architecture fits this state dict ({len(state_dict)} tensors). Closest: {hints}"


@dataclass(frozen=True)
class Resolution:
    """How a checkpoint was recognised: the match, the state dict under litesr's names, where in the file it was,
    the tensors left outside it, and, when the names differed, the structural key mapping."""

    match: Match
    state_dict: dict[str, torch.Tensor]
    candidate: Candidate
    structural: StructuralMatch | None = None

    @property
    def stage(self) -> str:
        return "structure (names differ)" if self.structural is not None else "names"


def _scale_ok(match: Match, scale: int | None) -> bool:
    return scale is None or match.config.get("scale", scale) == scale or _multi_scale(match)


def resolve(raw: Any, source: str, *, scale: int | None = None) -> Resolution:
    """Find the model in a checkpoint: by names, in every container and subtree the file holds
    (:func:`litesr.checkpoint_peel.state_dict_candidates`), then by structure. Two architectures that fit are
    refused, naming both."""
    candidates = state_dict_candidates(raw)
    if not candidates:
        extract_state_dict(raw, source=source)  # raises the usual "contains no tensors" error
    found: list[Resolution] = []
    for cand in candidates:
        found += [Resolution(m, cand.tensors, cand) for m in detect_architecture(cand.tensors) if _scale_ok(m, scale)]
    if not found:
        for cand in candidates:
            for sm in structural_matches(cand.tensors):
                match = Match(sm.arch, sm.config)
                if _scale_ok(match, scale):
                    found.append(Resolution(match, remap(cand.tensors, sm), cand, sm))
    if not found:
        raise CheckpointError(describe_unknown(candidates[0].tensors, source))
    archs = list(dict.fromkeys(r.match.arch for r in found))
    if len(archs) > 1:
        fits_desc = "; ".join(
            f"{r.match.describe()} ({r.candidate.where()}, by {r.stage})"
            for r in {r.match.arch: r for r in reversed(found)}.values()
        )
        raise CheckpointError(f"{source}: fits several architectures: {fits_desc}. Choose one with --model")
    return found[0]


def inspect_checkpoint(path: str | os.PathLike, *, allow_pickle: bool = False, scale: int | None = None) -> Resolution:
    """What :func:`load_model` would do with ``path``, without building the model (``litesr inspect``)."""
    return resolve(read_checkpoint(path, allow_pickle=allow_pickle), str(path), scale=scale)


def load_model(
    checkpoint: str | os.PathLike | StateDict,
    model: str = "auto",
    *,
    scale: int | None = None,
    allow_pickle: bool = False,
    param_key: str | None = None,
    **config: Any,
) -> nn.Module:
    """Build the model a checkpoint belongs to and load it (strict).

    ``model="auto"`` recognises the architecture and its configuration from the tensor shapes. Naming a model
    (``model="imdn"``) skips detection but still infers the hyper-parameters it can from the shapes, unless given.
    """
    raw: Any = None
    if isinstance(checkpoint, Mapping):
        state_dict, source = dict(checkpoint), "state dict"
        raw = state_dict
    else:
        source = str(checkpoint)
        raw = read_checkpoint(checkpoint, allow_pickle=allow_pickle)
        try:
            state_dict = extract_state_dict(raw, param_key=param_key, source=source)
        except CheckpointError:
            if model != "auto" or param_key is not None or not state_dict_candidates(raw):
                raise
            state_dict = {}  # tensors in a container of another name: found by ``resolve`` below

    resolved: Resolution | None = None
    if model == "auto":
        matches = [m for m in detect_architecture(state_dict) if _scale_ok(m, scale)]
        if not matches:
            # Not by names where the usual unwrapping put it: other containers and subtrees, then by structure.
            resolved = resolve(raw if param_key is None else state_dict, source, scale=scale)
            matches, state_dict = [resolved.match], resolved.state_dict
            if resolved.candidate.ignored:
                warnings.warn(f"{source}: loaded {resolved.candidate.where()}; ignored "
                              f"{len(resolved.candidate.ignored)} tensors beside it "
                              f"(e.g. {', '.join(resolved.candidate.ignored[:3])})", stacklevel=2)
        if len({m.arch for m in matches}) > 1:
            raise CheckpointError(
                f"{source}: fits several architectures: {'; '.join(m.describe() for m in matches)}. "
                "Choose one with --model"
            )
        match = matches[0]
        cfg = {**(_recorded_config(checkpoint, match) or match.config), **config}
        name = match.arch
    else:
        variant = get_variant(model)
        spec = all_archs()[variant.arch]
        proposal: dict[str, Any] = {}
        if spec.detect is not None:
            try:
                proposal = dict(spec.detect(state_dict) or {})
            except (KeyError, IndexError, ValueError, TypeError, AttributeError):
                proposal = {}
        cfg = {**variant.config, **proposal, **config}
        name = variant.arch
        if not proposal:
            name = variant.name
            cfg = dict(config)
    if scale is not None:
        built_scale = cfg.get("scale")
        if built_scale is not None and built_scale != scale:
            spec = all_archs()[all_variants()[name].arch]
            if not is_multi_scale_builder(spec.builder):
                raise ConfigError(f"{source}: checkpoint is for x{built_scale}, but x{scale} was asked for")
        else:
            cfg["scale"] = scale
    net = create_model(name, **cfg)
    # BasicSR files hold ``params`` and ``params_ema`` (same shapes); detection used the default preference, but an
    # architecture whose official test reads the other set names it in ``preferred_param_key`` (e.g. light SAFMN++).
    preferred = describe(net).preferred_param_key
    if param_key is None and preferred and resolved is None and isinstance(raw, Mapping) \
            and isinstance(raw.get(preferred), Mapping):
        state_dict = extract_state_dict(raw, param_key=preferred, source=source)
    load_into(net, state_dict, source=source)
    if scale is not None and hasattr(net, "set_scale"):
        net.set_scale(scale)
    net.eval()
    return net


def _recorded_config(checkpoint: Any, match: Match) -> dict[str, Any] | None:
    """The configuration a litesr-written file records (options not given there take the builder's defaults), used
    instead of detection's reading when it is of the detected architecture and builds the same tensors: it carries
    what shapes cannot show (attention heads, window sizes, a scale-free model's scale)."""
    if isinstance(checkpoint, Mapping):
        return None
    identity = read_identity(checkpoint)
    if identity is None or identity[0] != match.arch:
        return None
    recorded = dict(identity[1])
    try:
        same = shape_signature(build_on_meta(match.arch, recorded)) == shape_signature(
            build_on_meta(match.arch, match.config))
    except Exception:  # noqa: BLE001 - an identity the builder refuses is ignored
        return None
    return recorded if same else None


def _multi_scale(match: Match) -> bool:
    return is_multi_scale_builder(all_archs()[match.arch].builder)
