"""``litesr train``: train a zoo model from a YAML config or from flags.

    litesr train --config configs/ssiu_x2.yml train.batch_size=8
    litesr train --model ssiu --train_dir DIV2K_train_HR --val_dir Set5/HR --scale 2 --epochs 100 --batch_size 16
    litesr train --train_dir DIV2K_train_HR --val_dir Set5/HR --scale 2 --epochs 100 --batch_size 16   # rdesa
    litesr train --resume runs/ssiu_x2
    torchrun --nproc_per_node 2 -m litesr.cli train --config ...      # several processes (DDP)
"""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_MODEL = "rdesa"  # what the flag form trains without --model

# (flag names, dotted config key, type, help)
_FLAGS: list[tuple[tuple[str, ...], str, Any, str]] = [
    (("--model",), "model.name", str, f"zoo model name (`litesr models`; default {DEFAULT_MODEL})"),
    (("--scale",), "model.scale", int, "upscaling factor"),
    (("--train_dir", "--train-dir"), "datasets.train.hr_dir", str, "folder of HR training images"),
    (("--train_lr_dir", "--train-lr-dir"), "datasets.train.lr_dir", str,
     "folder of matching LR images ('auto': DIV2K layout; default: made with MATLAB bicubic and cached)"),
    (("--val_dir", "--val-dir"), "datasets.val.hr_dir", str, "folder of HR validation images"),
    (("--epochs",), "train.epochs", int, "epochs (of images x data_repeat)"),
    (("--iters", "--iterations"), "train.iterations", int, "optimiser steps (instead of --epochs)"),
    (("--batch_size", "--batch-size"), "train.batch_size", int, "total batch size over all processes"),
    (("--patch_size", "--patch-size"), "datasets.train.patch_size", int, "HR patch side (LR = patch / scale)"),
    (("--lr",), "train.optimizer.lr", float, "peak learning rate"),
    (("--output",), "output", str, "root folder of runs (the run is OUTPUT/NAME)"),
    (("--name",), "name", str, "run name (default MODEL_xSCALE)"),
    (("--device",), "device", str, "auto, cpu, cuda or cuda:N"),
    (("--precision",), "train.precision", str, "fp32, bf16, fp16 (CUDA) or auto"),
    (("--workers",), "datasets.train.workers", int, "DataLoader worker processes"),
    (("--seed",), "seed", int, "random seed"),
    (("--init-from", "--init_from"), "model.init_from", str,
     "warm start from a checkpoint (e.g. x2 weights for x3/x4; tensors of other shapes are skipped)"),
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (YAML config or flags; resumable; torchrun for several processes)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted config overrides, e.g. train.batch_size=8")
    p.add_argument("--config", "-c", default=None, help="YAML config file, or a shipped config's name (ssiu_x2)")
    p.add_argument("--resume", default=None, help="continue a run: its folder or its state_last.pt")
    for names, key, typ, text in _FLAGS:
        p.add_argument(*names, dest=key.replace(".", "__"), type=typ, default=None, help=text)
    p.add_argument("--model-opt", "--model_opt", dest="model_opts", action="append", default=[], metavar="KEY=VALUE",
                   help="architecture option (repeatable), e.g. --model-opt num_modules=4")
    p.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic algorithms (bitwise-reproducible runs, slower)")
    p.set_defaults(run=run)


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def flags_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The nested config update that the short-form flags describe."""
    import yaml

    from ..errors import ConfigError

    flags: dict[str, Any] = {}
    for _, key, _, _ in _FLAGS:
        value = getattr(args, key.replace(".", "__"))
        if value is not None:
            _set(flags, key, value)
    if args.deterministic:
        flags["deterministic"] = True
    for text in args.model_opts:
        if "=" not in text:
            raise ConfigError(f"--model-opt {text!r} must look like key=value")
        key, raw = text.split("=", 1)
        _set(flags, f"model.options.{key.strip()}", yaml.safe_load(raw))
    return flags


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..train import build_config, load_config, read_state
    from ..train import run as run_training
    from ..train.state import find_state_file

    flags = flags_from_args(args)
    if args.resume is not None:
        if args.config is not None:
            raise ConfigError("--resume takes its config from the run's state; give only key=value overrides with it")
        state_file = find_state_file(args.resume)
        state = read_state(state_file)
        run_dir = state_file.parent
        # The run continues where its files are, even if the folder was moved.
        flags.setdefault("output", str(run_dir.parent))
        flags.setdefault("name", run_dir.name)
        cfg = build_config(state["config"], source=str(state_file), overrides=args.overrides, flags=flags)
        summary = run_training(cfg, resume=state_file)
    else:
        if args.config is not None:
            cfg = load_config(args.config, args.overrides, flags)
        else:
            if "name" not in flags.get("model", {}) and not any(o.split("=", 1)[0].strip() == "model.name"
                                                                  for o in args.overrides):
                if "datasets" not in flags:
                    raise ConfigError("give --config FILE, or at least --train_dir (see litesr train --help)")
                # The study notes pair their training command with this architecture (RDB blocks, concat fusion,
                # ESA): the command runs as written.
                _set(flags, "model.name", DEFAULT_MODEL)
                print(f"no --model given: training {DEFAULT_MODEL} (residual dense blocks, concat fusion, ESA; "
                      "--model NAME picks another, `litesr models` lists them)", flush=True)
            cfg = build_config({}, source="command line", overrides=args.overrides, flags=flags)
        summary = run_training(cfg)
    # An interrupted run wrote its checkpoint and said how to resume: that is a clean exit too.
    return 0 if summary["status"] in ("completed", "interrupted") else 1


if __name__ == "__main__":  # pragma: no cover - `python -m litesr.cli.train ...`
    import sys

    from . import main

    sys.exit(main(["train", *sys.argv[1:]]))
