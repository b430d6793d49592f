"""The config keys of the learning strategies (UDL, distillation, curriculum, auxiliary classification, fusion),
their defaults and the checks that run before any training starts.

Kept apart from :mod:`litesr.train.config` (which merges these into its schema) so that the schema file stays short
and the checks sit next to the keys they check. No torch at import time: the config reader stays light.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

FREE: dict[str, Any] = {"__free__": True}  # as config.FREE (not imported: config imports this module)

TRAIN_STRATEGY_DEFAULTS: dict[str, Any] = {
    # Uncertainty-driven loss (Ning et al. 2021): a variance head; stage 1 learns the uncertainty (ESU loss), stage 2
    # weights the L1 by it (UDL). stage1_iters: 0 = off.
    "udl": {"stage1_iters": 0, "weight": 1.0, "head_channels": 16},
    # Knowledge distillation from a frozen teacher (a zoo model + its weights file), in the same batch.
    "distill": {
        "teacher": None,  # zoo model name (`litesr models`), e.g. imdn
        "teacher_weights": None,  # its weights file (.pth/.safetensors)
        "teacher_options": FREE,  # constructor options the weights file does not tell
        "output_weight": 1.0,  # L1 between the student's and the teacher's SR
        "features": FREE,  # {student_layer: teacher_layer}: feature distillation through 1x1 adapters
        "feature_weight": 1.0,
    },
    # Curriculum: stages of increasing difficulty, each {iterations, patch_size?, degradation?}; the last stage runs to
    # the end of training.
    "curriculum": [],
    # Auxiliary classification head: class = index of the training folder in datasets.train.hr_dir.
    "aux_classifier": {"weight": 0.0, "layer": None},
    # Supernet training (ARM supernets): each iteration trains one subnet width, drawn with probability ~ its MACs^2
    # (ARM's rule, "cost2") or evenly ("uniform"); validation runs at full width. litesr.train.supernet
    "supernet": {"enabled": False, "width_weights": "cost2"},
}

MODEL_STRATEGY_DEFAULTS: dict[str, Any] = {
    "type": "single",  # single | fusion
    "members": [],  # fusion: [{name, weights, options?}] of trained models
    "freeze_members": True,  # fusion: train only the fusion layer
}

VAL_STRATEGY_DEFAULTS: dict[str, Any] = {"self_ensemble": False}  # x8 geometric self-ensemble at validation

CURRICULUM_STAGE_KEYS = ("iterations", "patch_size", "degradation")
SCALE_CURRICULUM_KEYS = ("iterations", "scales")  # train.type multiscale: the factors each stage draws from
MEMBER_KEYS = ("name", "weights", "options")
STRATEGY_TRAINERS = ("sr",)  # trainers whose training step applies udl/distill/aux/curriculum


def _hint(key: str, valid: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def strategies_in_use(cfg: Mapping[str, Any]) -> list[str]:
    train = cfg["train"]
    used = []
    if int(train["udl"]["stage1_iters"]) > 0:
        used.append("udl")
    if train["distill"]["teacher"]:
        used.append("distill")
    if train["curriculum"]:
        used.append("curriculum")
    if float(train["aux_classifier"]["weight"]) > 0:
        used.append("aux_classifier")
    if train["supernet"]["enabled"]:
        used.append("supernet")
    return used


def check_strategies(cfg: dict[str, Any], source: str) -> None:
    """Validate the strategy keys once the config is merged; raise one ConfigError line naming file and key."""
    train = cfg["train"]
    used = strategies_in_use(cfg)
    kind = str(train["type"])
    if kind == "multiscale" and used == ["curriculum"]:
        used = []  # a scale curriculum: multi-scale training's own (checked in _check_curriculum)
    if used and kind not in STRATEGY_TRAINERS:
        raise ConfigError(f"{source}: train.{used[0]} works with train.type sr, not {kind!r}")
    total = train["iterations"]
    udl = train["udl"]
    if udl["stage1_iters"] < 0 or udl["head_channels"] < 1:
        raise ConfigError(f"{source}: train.udl.stage1_iters must be >= 0 and head_channels >= 1")
    if udl["stage1_iters"] and total is not None and udl["stage1_iters"] >= int(total):
        raise ConfigError(f"{source}: train.udl.stage1_iters {udl['stage1_iters']} leaves no iteration for stage 2 "
                          f"(train.iterations {total})")
    _check_curriculum(cfg, source)
    if str(train["supernet"]["width_weights"]).lower() not in ("cost2", "uniform"):
        raise ConfigError(f"{source}: train.supernet.width_weights must be cost2 or uniform, "
                          f"not {train['supernet']['width_weights']!r}")
    if "distill" in used:
        _check_distill(cfg, source)
    aux = train["aux_classifier"]
    if float(aux["weight"]) > 0:
        hr = cfg["datasets"]["train"]["hr_dir"]
        if not aux["layer"]:
            raise ConfigError(f"{source}: train.aux_classifier.layer is not set (a module name of the model whose "
                              "features the classifier reads, e.g. fuse for rdesa)")
        if not isinstance(hr, list) or len(hr) < 2:
            raise ConfigError(f"{source}: train.aux_classifier needs datasets.train.hr_dir to list at least two "
                              "folders (one class per folder)")
    _check_fusion(cfg, source)


def _check_curriculum(cfg: dict[str, Any], source: str) -> None:
    stages = cfg["train"]["curriculum"]
    if not isinstance(stages, list):
        raise ConfigError(f"{source}: train.curriculum must be a list of stages "
                          "{iterations, patch_size, degradation}")
    scale = int(cfg["model"]["scale"])
    multiscale = cfg["train"]["type"] == "multiscale"
    keys = SCALE_CURRICULUM_KEYS if multiscale else CURRICULUM_STAGE_KEYS
    for i, stage in enumerate(stages):
        where = f"train.curriculum[{i}]"
        if not isinstance(stage, Mapping):
            raise ConfigError(f"{source}: {where} must be a mapping {{{', '.join(keys)}}}")
        for key in stage:
            if key not in keys:
                other = "train.type sr" if multiscale else "train.type multiscale"
                raise ConfigError(f"{source}: unknown key '{where}.{key}'{_hint(str(key), list(keys), where + '.')}; "
                                  f"a stage has {', '.join(keys)} here (the others: {other})")
        last = i == len(stages) - 1
        iters = stage.get("iterations")
        if not last and (not isinstance(iters, int) or iters < 1):
            raise ConfigError(f"{source}: {where}.iterations must be a positive integer (the last stage may omit it)")
        if multiscale:
            factors = stage.get("scales")
            allowed = set(cfg["train"]["scales"])
            if not isinstance(factors, list) or not factors or not set(factors) <= allowed:
                raise ConfigError(f"{source}: {where}.scales must be a non-empty list of factors from train.scales "
                                  f"{sorted(allowed)}, not {factors!r}")
            continue
        patch = stage.get("patch_size", cfg["datasets"]["train"]["patch_size"])
        if not isinstance(patch, int) or patch < scale or patch % scale:
            raise ConfigError(f"{source}: {where}.patch_size {patch!r} must be a positive multiple of the scale "
                              f"x{scale}")
        if stage.get("degradation") is not None:
            from ..data.degradations import build_degradation

            try:
                build_degradation(stage["degradation"], scale, where=f"{where}.degradation")
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None


def _teacher_check(cfg: Mapping[str, Any], source: str) -> None:
    """The teacher's weights exist and are for the student's scale (read from the file's tensor shapes)."""
    from ..detect import load_model
    from ..errors import CheckpointError

    d = cfg["train"]["distill"]
    try:
        teacher = load_model(d["teacher_weights"], str(d["teacher"]), **(d["teacher_options"] or {}))
    except (CheckpointError, ConfigError, TypeError) as exc:
        raise ConfigError(f"{source}: train.distill.teacher_weights: {exc}") from None
    t_scale = int(getattr(teacher, "scale", 0))
    if t_scale != int(cfg["model"]["scale"]):
        raise ConfigError(f"{source}: train.distill.teacher_weights {d['teacher_weights']} is an x{t_scale} "
                          f"{d['teacher']}, but the student (model.scale) is x{cfg['model']['scale']}")


def _check_distill(cfg: dict[str, Any], source: str) -> None:
    from .. import registry

    d = cfg["train"]["distill"]
    try:
        registry.get_variant(str(d["teacher"]))
    except ConfigError as exc:
        raise ConfigError(f"{source}: train.distill.teacher: {exc}") from None
    if not d["teacher_weights"]:
        raise ConfigError(f"{source}: train.distill.teacher_weights is not set (the teacher's trained weights file)")
    if not Path(str(d["teacher_weights"])).is_file():
        raise ConfigError(f"{source}: train.distill.teacher_weights {d['teacher_weights']}: no such file")
    if not isinstance(d["features"], Mapping):
        raise ConfigError(f"{source}: train.distill.features must map student layer names to teacher layer names")
    _teacher_check(cfg, source)


def _check_fusion(cfg: dict[str, Any], source: str) -> None:
    from .. import registry

    mcfg = cfg["model"]
    kind = str(mcfg["type"])
    if kind not in ("single", "fusion"):
        raise ConfigError(f"{source}: model.type {kind!r} is not one of single, fusion"
                          f"{_hint(kind, ['single', 'fusion'], '')}")
    if kind == "single":
        if mcfg["members"]:
            raise ConfigError(f"{source}: model.members is set but model.type is single (set model.type: fusion)")
        return
    members = mcfg["members"]
    if not isinstance(members, list) or len(members) < 2:
        raise ConfigError(f"{source}: model.members must list at least two trained models {{name, weights}} to fuse")
    for i, member in enumerate(members):
        where = f"model.members[{i}]"
        if not isinstance(member, Mapping) or "name" not in member or "weights" not in member:
            raise ConfigError(f"{source}: {where} must be a mapping {{name, weights, options}}")
        for key in member:
            if key not in MEMBER_KEYS:
                raise ConfigError(f"{source}: unknown key '{where}.{key}'"
                                  f"{_hint(str(key), list(MEMBER_KEYS), where + '.')}")
        try:
            registry.get_variant(str(member["name"]))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {where}.name: {exc}") from None
        if not Path(str(member["weights"])).is_file():
            raise ConfigError(f"{source}: {where}.weights {member['weights']}: no such file")
