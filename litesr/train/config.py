"""Training configs: BasicSR-like YAML checked against a schema, so a typo is an error and never a silent default.

    cfg = load_config("configs/ssiu_x2.yml", overrides=["train.batch_size=8"])

The schema is :data:`DEFAULTS`: every key a config may set, with its default. Unknown keys anywhere raise
:class:`~litesr.errors.ConfigError` naming the file, the dotted key and the closest valid key. A trainer type may add
keys under ``train`` (see :attr:`litesr.train.Trainer.extra_config`).
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from ..checkpoint import atomic_output
from ..errors import ConfigError
from .strategy_config import MODEL_STRATEGY_DEFAULTS, TRAIN_STRATEGY_DEFAULTS, VAL_STRATEGY_DEFAULTS, check_strategies
from .trainer_registry import trainer_class

# A mapping whose keys are not checked here (model options are checked against the architecture's constructor).
FREE: dict[str, Any] = {"__free__": True}

DEFAULTS: dict[str, Any] = {
    "name": None,  # run name; default "<model>_x<scale>"
    "seed": 0,
    "deterministic": False,  # torch.use_deterministic_algorithms + no cuDNN benchmark
    "output": "runs",  # the run folder is <output>/<name>
    "device": "auto",  # auto | cpu | cuda | cuda:N
    "model": {
        "name": None,  # a zoo model: `litesr models`
        "scale": 2,
        "options": FREE,  # constructor options of the architecture
        "init_from": None,  # warm start from a checkpoint (keys whose shapes differ are skipped)
    },
    "datasets": {
        "train": {
            "hr_dir": None,  # a folder or a list of folders (DF2K = DIV2K + Flickr2K)
            "lr_dir": None,  # None: LR made with MATLAB bicubic and cached; "auto": DIV2K layout; or a folder / list
            "patch_size": 128,  # HR patch side; the LR patch is patch_size / scale
            "data_repeat": 1,  # each image appears this many times per epoch
            "flip": True,
            "rot90": True,
            "preload": False,  # hold every image in RAM
            "workers": 4,  # DataLoader worker processes (0 = in the main process)
            "cache_dir": None,  # where LR made from HR is kept; default <output>/.lr_cache
            # LR made on the fly from each HR patch instead (seeded per sample): realesrgan | bsrgan | classical |
            # bicubic, or a mapping {type, ...} (litesr.data.degradations.build_degradation); lr_dir is then unused
            "degradation": None,
            # uniform crops, or WBSR's texture-balanced Hierarchical Equalization Sampling: hes |
            # {type: hes, levels: 4, equalize: 1.0} (litesr.data.texture_sampling)
            "sampling": "uniform",
        },
        "val": {"name": None, "hr_dir": None, "lr_dir": None},
    },
    "train": {
        "type": "sr",  # which Trainer class (litesr.train.TRAINERS)
        "iterations": None,  # total optimiser steps; or give epochs
        "epochs": None,
        "batch_size": 16,  # total over all processes
        "optimizer": {
            "type": "adamw",  # adam | adamw | sgd
            "lr": 1e-3,
            "betas": [0.9, 0.99],
            "weight_decay": 1e-4,
            "eps": 1e-8,
            "momentum": 0.9,  # sgd
            "fused": "auto",  # fused kernels where torch has them (CPU and CUDA)
        },
        "scheduler": {
            "type": "cosine",  # constant | multistep | cosine | cosine_restarts
            "warmup_iters": 0,  # linear warm-up from 0 (all types)
            "eta_min": 1e-6,  # cosine, cosine_restarts: the final learning rate
            "milestones": [],  # multistep: iterations where lr *= gamma
            "gamma": 0.5,  # multistep
            "periods": [],  # cosine_restarts: length of each cycle (iterations)
            "restart_weights": [],  # cosine_restarts: peak lr factor of each cycle (default 1)
        },
        "losses": [{"type": "l1", "weight": 1.0}],
        "ema": {"enabled": True, "decay": 0.999},  # BasicSR's params_ema
        "clip_grad": None,  # max gradient norm
        "precision": "fp32",  # fp32 | bf16 | fp16 (CUDA) | auto
        "channels_last": "auto",  # on with bf16/fp16
        "compile": False,  # torch.compile the model
        "max_nan_steps": 10,  # stop after this many non-finite losses in a row
    },
    "val": {
        "every": 5000,  # iterations; 0 = never
        "datasets": [],  # more validation sets: folders of HR images or {name, hr_dir, lr_dir}
    },
    "checkpoint": {
        "every": 5000,  # iterations; the last checkpoint is always written at the end
        "keep_history": False,  # also keep net_iter<N>.safetensors
    },
    "logger": {
        "print_every": 100,
        "jsonl": True,  # <run>/metrics.jsonl
        "tensorboard": "auto",  # when the tensorboard package is installed
        "progress": "auto",  # rich progress bar on a terminal, plain lines otherwise
    },
}

SCHEDULER_KEYS = {
    "constant": {"type", "warmup_iters"},
    "multistep": {"type", "warmup_iters", "milestones", "gamma"},
    "cosine": {"type", "warmup_iters", "eta_min"},
    "cosine_restarts": {"type", "warmup_iters", "eta_min", "periods", "restart_weights"},
}
OPTIMIZER_KEYS = {
    "adam": {"type", "lr", "betas", "weight_decay", "eps", "fused"},
    "adamw": {"type", "lr", "betas", "weight_decay", "eps", "fused"},
    "sgd": {"type", "lr", "momentum", "weight_decay", "fused"},
}
VAL_DATASET_KEYS = {"name", "hr_dir", "lr_dir"}

# The learning strategies' keys (litesr.train.strategy_config): train.udl/distill/curriculum/aux_classifier,
# model.type/members/freeze_members, val.self_ensemble.
DEFAULTS["train"].update(copy.deepcopy(TRAIN_STRATEGY_DEFAULTS))
DEFAULTS["model"].update(copy.deepcopy(MODEL_STRATEGY_DEFAULTS))
DEFAULTS["val"].update(copy.deepcopy(VAL_STRATEGY_DEFAULTS))


def default_config(extra_train: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of the schema, with a trainer's extra ``train`` keys."""
    cfg = copy.deepcopy(DEFAULTS)
    if extra_train:
        cfg["train"].update(copy.deepcopy(dict(extra_train)))
    return cfg


def _hint(key: str, valid: Sequence[str], prefix: str) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


_YAML11_MISSED_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _coerce(value: Any, default: Any, where: str, source: str) -> Any:
    """Light type checks against the default's type; numbers written as strings (YAML's ``1e-3``) become floats."""
    if default is None or value is None or isinstance(default, str):
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where} must be true or false, not {value!r}")
        return value
    if isinstance(default, int | float):
        if isinstance(value, bool):
            raise ConfigError(f"{source}: {where} must be a number, not {value!r}")
        if isinstance(value, str):
            # PyYAML reads 1e-3 (no dot, no exponent sign) as a string; any other string is a quoted value, a typo.
            if not _YAML11_MISSED_FLOAT.match(value.strip()):
                raise ConfigError(f"{source}: {where} must be a number, not the string {value!r}")
            value = float(value)
        if isinstance(default, int) and not isinstance(default, bool):
            if not float(value).is_integer():
                raise ConfigError(f"{source}: {where} must be an integer, not {value!r}")
            return int(value)
        return float(value)
    return value


def _schema_default(where: str) -> Any:
    """The schema's default at a dotted path (None where the schema has none, e.g. under a free-form section)."""
    node: Any = DEFAULTS
    for part in where.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def merge_checked(base: dict[str, Any], update: Mapping[str, Any], source: str, path: str = "") -> None:
    """Merge ``update`` into ``base`` in place; keys absent from ``base`` raise ConfigError with a did-you-mean."""
    for key, value in update.items():
        key = str(key)
        where = f"{path}{key}"
        if base.get("__free__"):
            base[key] = value
            continue
        if key not in base:
            valid = [k for k in base if k != "__free__"]
            raise ConfigError(f"{source}: unknown key {where!r}{_hint(key, valid, path)}")
        current = base[key]
        if isinstance(current, dict) and (current.get("__free__") or current):
            if value is None:
                continue
            if not isinstance(value, Mapping):
                # A validation set may be given as a bare folder.
                if where == "datasets.val" and isinstance(value, str):
                    value = {"hr_dir": value}
                elif isinstance(value, str) and isinstance(_schema_default(where), str):
                    # A key whose default is a name but which also takes a mapping of options (``sampling: hes`` or
                    # ``sampling: {type: hes, levels: 4}``): a name from a later source replaces the mapping.
                    base[key] = value
                    continue
                else:
                    raise ConfigError(f"{source}: {where} must be a mapping of keys, not {value!r}")
            if current.get("__free__"):
                current = base[key] = {"__free__": True}
            merge_checked(current, value, source, f"{where}.")
        else:
            base[key] = _coerce(value, current, where, source)


def strip_free_markers(cfg: Any) -> Any:
    if isinstance(cfg, dict):
        return {k: strip_free_markers(v) for k, v in cfg.items() if k != "__free__"}
    if isinstance(cfg, list):
        return [strip_free_markers(v) for v in cfg]
    return cfg


def _typed_sections(train: Mapping[str, Any]) -> list[tuple[str, dict[str, set[str]]]]:
    """``train.scheduler``/``train.optimizer`` and a trainer's further ones (``scheduler_d``, ``optimizer_d`` ...)."""
    sections = []
    for key, value in train.items():
        for prefix, table in (("scheduler", SCHEDULER_KEYS), ("optimizer", OPTIMIZER_KEYS)):
            if key.startswith(prefix) and isinstance(value, Mapping) and "type" in value:
                sections.append((key, table))
    return sections


def _check_choices(cfg: dict[str, Any], source: str) -> None:
    train = cfg["train"]
    for section, table in _typed_sections(train):
        kind = str(train[section]["type"]).lower()
        if kind not in table:
            raise ConfigError(f"{source}: train.{section}.type {kind!r} is not one of {', '.join(table)}"
                              f"{_hint(kind, list(table), '')}")
        train[section]["type"] = kind
    precision = str(train["precision"]).lower()
    if precision not in ("fp32", "bf16", "fp16", "auto"):
        raise ConfigError(f"{source}: train.precision {precision!r} is not one of fp32, bf16, fp16, auto")
    train["precision"] = precision
    val_sets = cfg["val"]["datasets"]
    if not isinstance(val_sets, list):
        raise ConfigError(f"{source}: val.datasets must be a list of folders or {{name, hr_dir, lr_dir}} entries")
    for i, entry in enumerate(val_sets):
        if isinstance(entry, Mapping):
            for key in entry:
                if key not in VAL_DATASET_KEYS:
                    raise ConfigError(f"{source}: unknown key 'val.datasets[{i}].{key}'"
                                      f"{_hint(str(key), sorted(VAL_DATASET_KEYS), f'val.datasets[{i}].')}")
        elif not isinstance(entry, str):
            raise ConfigError(f"{source}: val.datasets[{i}] must be a folder or a mapping, not {entry!r}")
    if not isinstance(train["losses"], list):
        raise ConfigError(f"{source}: train.losses must be a list of {{type, weight}} entries")
    from ..data.texture_sampling import parse_sampling
    from ..losses import build_loss

    build_loss(train["losses"], source=source)  # unknown loss types and options fail here, before any data is read
    parse_sampling(cfg["datasets"]["train"]["sampling"], f"{source}: datasets.train.sampling")


def used_keys_check(cfg: Mapping[str, Any], user: Mapping[str, Any], source: str) -> None:
    """Keys a user set for a scheduler/optimiser type that does not use them are typos too.

    Each source is checked against the type it sets itself (a later source may change the type: then the earlier
    source's keys for the old type are dropped by :func:`prune_unused_keys`, not reported)."""
    for section, table in _typed_sections(cfg["train"]):
        given = (user.get("train") or {}).get(section) or {}
        if not isinstance(given, Mapping):
            continue
        kind = str(given.get("type", cfg["train"][section]["type"])).lower()
        if kind not in table:
            kind = cfg["train"][section]["type"]
        for key in given:
            if key not in table[kind]:
                raise ConfigError(f"{source}: train.{section}.{key} is not used by the {kind!r} {section} "
                                  f"(its keys: {', '.join(sorted(table[kind]))})")


def prune_unused_keys(cfg: dict[str, Any]) -> dict[str, Any]:
    """Drop the keys of ``train.optimizer``/``train.scheduler`` (and a trainer's further ones) that their type does
    not use, in place: the schema carries every type's keys, a run's config only those that apply, so the config a
    run writes is exactly what its resume reads back."""
    train = cfg.get("train")
    if not isinstance(train, dict):
        return cfg
    for section, table in _typed_sections(train):
        kind = str(train[section]["type"]).lower()
        if kind in table:
            train[section] = {k: v for k, v in train[section].items() if k in table[kind]}
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice (lines {seen[key]} and {line})", key_node.start_mark)
                seen[key] = line
            except TypeError:
                continue  # an unhashable key: construct_mapping reports it
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = str(getattr(exc, "problem", None) or exc)
        if "'\\t'" in problem:
            problem += "; YAML indents with spaces, not tabs"
        raise ConfigError(f"{path}: invalid YAML{where} ({problem})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, not {type(data).__name__}")
    return data


def packaged_configs_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "configs"


def resolve_config_path(name: str | os.PathLike) -> Path:
    """A config file path, or a shipped config's name (``ssiu_x2``) from ``litesr/configs``."""
    path = Path(name)
    if path.is_file():
        return path
    if path.suffix == "" and path.parent == Path("."):
        for folder in (packaged_configs_dir(), Path("configs")):
            candidate = folder / f"{path.name}.yml"
            if candidate.is_file():
                return candidate
        shipped = sorted(p.stem for p in packaged_configs_dir().glob("*.yml"))
        raise ConfigError(f"{name}: no such config file or shipped config{_hint(path.name, shipped, '')}; "
                          f"shipped: {', '.join(shipped) or 'none'}")
    raise ConfigError(f"{path}: no such config file")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.batch_size=8`` -> (["train", "batch_size"], 8); the value is read as YAML (lists, numbers, null)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.subkey=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return [k for k in key.strip().split(".") if k], value


def nest(keys: Sequence[str], value: Any) -> dict[str, Any]:
    out: Any = value
    for key in reversed(keys):
        out = {key: out}
    return out


def build_config(
    base: Mapping[str, Any] | None = None,
    *,
    source: str = "config",
    overrides: Sequence[str] = (),
    flags: Mapping[str, Any] | None = None,
    extra_train: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Schema defaults <- ``base`` (a parsed YAML) <- ``flags`` (nested, from command-line options) <- ``overrides``
    (dotted ``key=value``), validated."""

    base = dict(base or {})
    override_maps = [nest(*parse_override(o)) for o in overrides]
    sources = [("command-line options", dict(flags))] if flags else []
    sources += [(f"override {text!r}", o) for text, o in zip(overrides, override_maps)]
    # The trainer type decides which extra keys `train` has, so find it before validating.
    kind = str(((base.get("train") or {}).get("type")) or "sr")
    for _, o in sources:
        if isinstance(o.get("train"), Mapping) and "type" in o["train"]:
            kind = str(o["train"]["type"])
    extra = dict(extra_train or {})
    extra.update(trainer_class(kind, source).extra_config)
    cfg = default_config(extra)
    merge_checked(cfg, base, source)
    for where, o in sources:
        merge_checked(cfg, o, where)
    cfg = strip_free_markers(cfg)
    _coupled_decay_default(cfg, [base] + [o for _, o in sources])
    _check_choices(cfg, source)
    used_keys_check(cfg, base, source)
    for where, o in sources:
        used_keys_check(cfg, o, where)
    prune_unused_keys(cfg)
    fusion = cfg["model"]["type"] == "fusion"
    if cfg["model"]["name"] is None and not fusion:
        raise ConfigError(f"{source}: model.name is not set (a zoo model, e.g. ssiu; `litesr models` lists them)")
    expand_paths(cfg)
    check_strategies(cfg, source)
    if not fusion:
        check_model(cfg, source)
    trainer_class(str(cfg["train"]["type"]), source).check_config(cfg, source)
    if cfg["name"] is None:
        cfg["name"] = f"{cfg['model']['name'] or 'fusion'}_x{cfg['model']['scale']}"
    return cfg


def _coupled_decay_default(cfg: dict[str, Any], given: Sequence[Mapping[str, Any]]) -> None:
    """The schema's ``weight_decay: 1e-4`` is AdamW's decoupled decay. Under ``adam`` or ``sgd`` it would be an L2 term
    in the gradient, which Adam divides by the gradient's own scale: where the true gradients are tiny (a head started
    near zero) it shrinks every weight at the full learning rate, to zero (LIIF did, in ~100 steps). So those two
    types get torch's default, 0, unless a config or override sets ``weight_decay`` itself."""
    for section, _ in _typed_sections(cfg["train"]):
        options = cfg["train"].get(section)
        if not isinstance(options, dict) or options.get("type") not in ("adam", "sgd"):
            continue
        if not any(isinstance((g.get("train") or {}).get(section), Mapping)
                   and "weight_decay" in g["train"][section] for g in given):
            options["weight_decay"] = 0.0


PATH_KEYS = (("output",), ("model", "init_from"), ("datasets", "train", "hr_dir"), ("datasets", "train", "lr_dir"),
             ("datasets", "train", "cache_dir"), ("datasets", "val", "hr_dir"), ("datasets", "val", "lr_dir"),
             ("model", "members"), ("train", "distill", "teacher_weights"))
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def expand_vars(text: str) -> str:
    """``${VAR}`` and ``${VAR:-default}`` from the environment, so shipped configs need no machine paths."""
    return _VAR.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), text)


def expand_paths(cfg: dict[str, Any]) -> None:
    def expand(value: Any) -> Any:
        if isinstance(value, str):
            return expand_vars(value)
        if isinstance(value, list):
            return [expand(v) for v in value]
        if isinstance(value, dict):
            return {k: expand(v) for k, v in value.items()}
        return value

    for keys in PATH_KEYS:
        node = cfg
        for key in keys[:-1]:
            node = node.get(key) or {}
        if keys[-1] in node:
            node[keys[-1]] = expand(node[keys[-1]])
    cfg["val"]["datasets"] = expand(cfg["val"]["datasets"])


def check_model(cfg: Mapping[str, Any], source: str) -> None:
    """The model exists, supports the scale and takes the given options (before any data is read)."""
    from .. import registry

    mcfg = cfg["model"]
    try:
        variant = registry.get_variant(str(mcfg["name"]))
        spec = registry.get_arch(variant.arch)
        registry._check_config(spec, {**variant.config, **(mcfg["options"] or {})}, f"model.options of {variant.name}")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if int(mcfg["scale"]) not in spec.scales:
        raise ConfigError(f"{source}: {variant.name} supports scales {', '.join(f'x{s}' for s in spec.scales)}, "
                          f"not model.scale {mcfg['scale']}")


def load_config(
    path: str | os.PathLike, overrides: Sequence[str] = (), flags: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Read, merge over the defaults and validate a YAML config (a path or a shipped config's name)."""
    resolved = resolve_config_path(path)
    return build_config(read_yaml(resolved), source=str(resolved), overrides=overrides, flags=flags)


def dump_config(cfg: Mapping[str, Any], path: Path) -> None:
    """Write a resolved config as YAML (atomically); :func:`load_config` of it gives ``cfg`` back."""
    with atomic_output(path) as tmp:
        tmp.write_text(yaml.safe_dump(dict(cfg), sort_keys=False), encoding="utf-8")
