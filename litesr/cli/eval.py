"""``litesr eval``: PSNR/SSIM of a model on benchmark sets with the papers' protocol (Y channel, border = scale)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from torch import nn

from ..descriptor import describe
from ..errors import ConfigError
from .metrics import add_metric_arguments, build_metrics, metric_cells


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="PSNR/SSIM on benchmark sets (MATLAB protocol: bicubic LR, Y channel, border = scale)",
        description="Evaluate a model on Set5/Set14/B100/... as the SR papers do. Example: litesr eval --weights "
        "IMDN_x4.pth --data-root datasets --dataset Set5 --dataset Set14 --scale 4",
    )
    p.add_argument("--model", default=None,
                   help="zoo model name; default 'auto' (read off --weights). Without --weights only parameter-free "
                        "models (bicubic) make sense")
    p.add_argument("--weights", type=Path, action="append", default=None, dest="weights_files", metavar="WEIGHTS",
                   help="checkpoint (.pth/.safetensors); repeat for the x2/x3/x4 checkpoints of one model to get "
                        "the multi-scale table")
    p.add_argument("--dataset", action="append", required=True, metavar="NAME_OR_DIR",
                   help="repeatable; a name under --data-root (Set5) or a folder (HR/ inside, or images directly)")
    p.add_argument("--scale", action="append", type=float, default=None,
                   help="repeatable; default: the checkpoint's scale. Arbitrary-scale models (metasr/liif) take any "
                        "factor >= 1 (2.5), with Meta-SR's protocol: LR by MATLAB bicubic at that factor, border "
                        "ceil(factor), bicubic's score beside")
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder holding the datasets (default $LITESR_DATA_ROOT, else ./datasets)")
    p.add_argument("--lr-source", choices=("generate", "given", "replicate"), default="generate",
                   help="generate: MATLAB bicubic from HR (default, the papers' protocol); given: LR_bicubic/X<s> "
                        "files; replicate: LR_bicubic_replicate/X<s> files (SelfExSR) or generated with that border")
    p.add_argument("--lr-dir", type=Path, default=None, help="explicit LR folder (or one holding X<s>)")
    p.add_argument("--per-image", action="store_true", help="also print every image's PSNR/SSIM")
    p.add_argument("--csv", type=Path, default=None, help="write per-image and mean results as CSV")
    p.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    p.add_argument("--save-images", type=Path, default=None, metavar="DIR",
                   help="write SR images to DIR/<dataset>/x<scale>/<name>.png")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N")
    p.add_argument("--rgb", action="store_true", help="measure on RGB instead of Y")
    p.add_argument("--gray", choices=("y", "raw"), default="y",
                   help="gray HR files: y = Y of three equal channels (default, BasicSR/IMDN/SwinIR); raw = their gray "
                        "values (Evaluate_PSNR_SSIM.m on 1-channel HR, as the published bicubic Set14 row)")
    p.add_argument("--crop", type=int, default=None, metavar="N", help="border pixels to ignore (default: the scale)")
    p.add_argument("--degradation", default=None, metavar="NAME_OR_YAML",
                   help="make the LR images from HR with a synthetic degradation instead (bicubic, classical, "
                        "realesrgan, bsrgan, or a YAML file with a `type`), seeded per image: see docs/training.md")
    p.add_argument("--degradation-seed", type=int, default=None, metavar="N",
                   help="seed of --degradation (default: the YAML's `seed`, else 0); same seed, same LR set")
    p.add_argument("--self-ensemble", action="store_true",
                   help="average the 8 flips/transposes of each LR image (x8 time; the '+' rows of EDSR+/RCAN+)")
    for name, letter in (("alpha", "luminance"), ("beta", "contrast"), ("gamma", "structure")):
        p.add_argument(f"--ssim-{name}", type=float, default=1.0, metavar="X",
                       help=f"SSIM exponent of the {letter} term (default 1, as every SR paper)")
    p.add_argument("--allow-pickle", action="store_true",
                   help="let old torch checkpoints unpickle objects (trusted files only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-reference", action="store_true",
                   help="outputs without ground truth: each --dataset is a folder of LR images; the model's outputs "
                        "are scored by no-reference metrics (default sharpness, and niqe with --metric-weights "
                        "niqe=FILE)")
    add_metric_arguments(p)
    p.set_defaults(run=run)


def _models(args: argparse.Namespace) -> list[tuple[int, nn.Module]]:
    """(scale, model) for every scale to evaluate; one model object when a checkpoint is multi-scale."""
    from ..arbitrary import check_scale
    from ..detect import load_model
    from ..registry import count_parameters, create_model

    if len(args.weights_files or []) > 1:
        return _checkpoints_per_scale(args)
    scales = list(dict.fromkeys(args.scale or []))
    if args.weights is not None:
        model = load_model(args.weights, model=args.model or "auto", allow_pickle=args.allow_pickle)
        for s in scales:
            check_scale(model, s, describe(model).label)  # a non-integer factor needs an arbitrary-scale model
        scales = [int(s) for s in scales]
        own, multi = describe(model).scale, describe(model).multi_scale
        for s in scales:
            if s != own and not multi:
                raise ConfigError(f"{args.weights}: checkpoint is for x{own}, but --scale {s} was asked for")
        return [(s, model) for s in scales or [own]]
    if args.model in (None, "auto"):
        raise ConfigError("give --weights FILE, or --model NAME for a model without weights (e.g. bicubic)")
    if not scales:
        raise ConfigError(f"--model {args.model} without --weights needs --scale")
    if any(not float(s).is_integer() for s in scales):
        raise ConfigError(f"{args.model} is an integer-scale model; x{next(s for s in scales if s % 1):g} needs an "
                          "arbitrary-scale model (metasr_edsr_baseline, liif_edsr_baseline) and its --weights")
    scales = [int(s) for s in scales]
    built = [(s, create_model(args.model, scale=s)) for s in scales]
    if count_parameters(built[0][1]):
        raise ConfigError(f"{args.model} has trainable parameters; give --weights (a random model measures nothing)")
    return built


def _checkpoints_per_scale(args: argparse.Namespace) -> list[tuple[int, nn.Module]]:
    """(scale, model) of several --weights files, one model at its own scale each (IMDN_x2/x3/x4.pth)."""
    from ..detect import load_model

    models = [load_model(w, model=args.model or "auto", allow_pickle=args.allow_pickle) for w in args.weights_files]
    labels = {describe(m).label for m in models}
    if len(labels) > 1:
        raise ConfigError(f"--weights: the checkpoints are different models ({', '.join(sorted(labels))}); the "
                          "multi-scale table compares the scales of one model")
    scales = [describe(m).scale for m in models]
    if len(set(scales)) < len(scales):
        raise ConfigError(f"--weights: two checkpoints are for the same scale (x{', x'.join(map(str, scales))})")
    if args.scale and set(int(s) for s in args.scale) != set(scales):
        raise ConfigError(f"--scale {', '.join(f'{s:g}' for s in args.scale)} does not match the checkpoints' "
                          f"scales x{', x'.join(map(str, scales))}; leave --scale out")
    return sorted(zip(scales, models), key=lambda sm: sm[0])


def _write_atomic(path: Path, text: str) -> None:
    from ..images import write_bytes_atomically  # temp file + rename, one-line error naming the file on failure

    write_bytes_atomically(path, text.encode("utf-8"))


def _csv_text(model_name: str, weights: str, results: list[Any], metrics: list[str] = ()) -> str:
    """Per-image rows and one mean row per dataset/scale: PSNR, SSIM and a column for every --metric."""
    from ..metrics.report import scores_csv

    rows = []
    for r in results:
        head = [model_name, weights, r.dataset, r.scale, r.lr_source]
        rows += [([*head, img.name], {"psnr": img.psnr, "ssim": img.ssim, **img.scores}) for img in r.images]
        rows.append(([*head, "mean"], {"psnr": r.psnr, "ssim": r.ssim, **{m: r.score(m) for m in metrics}}))
    return scores_csv(["model", "weights", "dataset", "scale", "lr_source", "image"], ["psnr", "ssim", *metrics],
                      rows)


def run(args: argparse.Namespace) -> int:
    args.weights = args.weights_files[0] if args.weights_files else None
    from rich.console import Console
    from rich.table import Table

    from ..data.benchmark import open_dataset
    from ..evaluate import evaluate

    if args.lr_dir is not None and len(args.dataset) > 1:
        raise ConfigError("--lr-dir names the LR folder of one dataset; give a single --dataset with it")
    if args.crop is not None and args.crop < 0:
        raise ConfigError(f"--crop must be >= 0, not {args.crop}")
    from ..metrics.psnr_ssim import checked_ssim_exponents

    try:
        exponents = checked_ssim_exponents(args.ssim_alpha, args.ssim_beta, args.ssim_gamma)
    except ValueError as exc:
        raise ConfigError(f"--ssim-*: {exc}") from None
    from ..data.degradations import build_degradation, degradation_seed

    if args.degradation is not None and args.lr_source != "generate":
        raise ConfigError("--degradation makes the LR images itself; it cannot be combined with --lr-source")
    seed = args.degradation_seed if args.degradation_seed is not None else degradation_seed(args.degradation)
    if args.no_reference:
        return _run_no_reference(args)
    extra = build_metrics(args)  # a typo or a missing weights file stops here, before any model time
    if args.weights is not None and args.scale and any(not float(s).is_integer() for s in args.scale):
        return _run_arbitrary(args)
    models = _models(args)
    model_name = args.model if args.model not in (None, "auto") else describe(models[0][1]).label
    weights = ", ".join(map(str, args.weights_files or []))
    # Open every dataset first, so a missing folder or LR file stops the run before any model time is spent.
    jobs = [(open_dataset(d, s, root=args.data_root, lr_source=args.lr_source, lr_dir=args.lr_dir), s, m)
            for d in args.dataset for s, m in models]
    show_progress = not args.no_progress and sys.stderr.isatty()

    results = []
    for data, scale, model in jobs:
        save_dir = args.save_images / data.name / f"x{scale}" if args.save_images is not None else None
        results.append(evaluate(model, data, scale, y_channel=not args.rgb, crop_border=args.crop,
                                gray=args.gray, device=args.device, save_dir=save_dir, progress=show_progress,
                                self_ensemble=args.self_ensemble, ssim_exponents=exponents,
                                degradation=build_degradation(args.degradation, scale, where="--degradation"),
                                degradation_seed=seed, extra_metrics=extra))

    console = Console()
    channel = "RGB" if args.rgb else "Y"
    plus = "+ (x8 self-ensemble)" if args.self_ensemble else ""
    table = Table(title=f"{model_name}{plus}{f' ({weights})' if weights else ''}: PSNR/SSIM on {channel}")
    for col in ("dataset", "scale", "images", "LR", "PSNR (dB)", "SSIM"):
        table.add_column(col, justify="right" if col in ("scale", "images", "PSNR (dB)", "SSIM") else "left")
    for m in extra:
        table.add_column(m.name, justify="right")
    for (data, _, _), r in zip(jobs, results):
        lr_label = data.describe() if args.degradation is None else r.lr_source
        table.add_row(r.dataset, f"x{r.scale}", str(len(r.images)), lr_label, f"{r.psnr:.2f}", f"{r.ssim:.4f}",
                      *metric_cells(r, extra))
    if args.per_image:
        for r in results:
            per = Table(title=f"{r.dataset} x{r.scale}")
            for col in ("image", "PSNR (dB)", "SSIM", *(m.name for m in extra)):
                per.add_column(col, justify="left" if col == "image" else "right")
            for img in r.images:
                per.add_row(img.name, f"{img.psnr:.3f}", f"{img.ssim:.4f}",
                            *(f"{img.scores[m.name]:.4f}" for m in extra))
            console.print(per)
    console.print(table)
    if len({r.scale for r in results}) > 1:
        from ..metrics.report import multi_scale_table

        console.print(multi_scale_table(f"{model_name}: multi-scale ({channel})", results, [m.name for m in extra]))

    if args.csv is not None:
        _write_atomic(args.csv, _csv_text(model_name, weights, results, [m.name for m in extra]))
    if args.json is not None:
        payload = {"model": model_name, "weights": weights or None, "channel": channel,
                   "self_ensemble": args.self_ensemble, "ssim_exponents": list(exponents),
                   "results": [r.to_dict() for r in results]}
        _write_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    if args.save_images is not None:
        _write_atomic(args.save_images / SAVED_RUN_INDEX, json.dumps(_saved_run(model_name, weights, jobs, results),
                                                                     indent=2) + "\n")
    return 0


# The index `--save-images DIR` writes next to the images, read by `litesr studio` (Compare and Rate pages).
SAVED_RUN_INDEX = "litesr_eval.json"


def _saved_run(model_name: str, weights: str, jobs: list, results: list[Any]) -> dict[str, Any]:
    """What was run, where its HR (and LR) images are, and the per-image scores; image paths relative to DIR."""
    return {"model": model_name, "weights": weights or None, "results": [
        {**r.to_dict(), "images_dir": f"{data.name}/x{r.scale}", "hr_dir": str(Path(data.hr_dir).resolve()),
         "lr_dir": str(Path(data.lr_dir).resolve()) if data.lr_dir is not None else None}
        for (data, _, _), r in zip(jobs, results)]}


def _run_arbitrary(args: argparse.Namespace) -> int:
    """Non-integer factors (arbitrary-scale models): Meta-SR's protocol (:func:`litesr.arbitrary.evaluate_at_scale`)."""
    from rich.console import Console
    from rich.table import Table

    from ..arbitrary import check_scale, evaluate_at_scale
    from ..data.benchmark import open_dataset
    from ..detect import load_model
    from ..device import resolve_device

    options = (("--lr-source", args.lr_source != "generate"), ("--lr-dir", args.lr_dir),
               ("--degradation", args.degradation), ("--self-ensemble", args.self_ensemble),
               ("--save-images", args.save_images), ("--csv", args.csv), ("--rgb", args.rgb),
               ("--crop", args.crop is not None))
    unsupported = [name for name, value in options if value]
    if unsupported:
        raise ConfigError(f"{', '.join(unsupported)}: not available at non-integer factors (Meta-SR protocol only)")
    model = load_model(args.weights, model=args.model or "auto", allow_pickle=args.allow_pickle)
    label = describe(model).label
    scales = list(dict.fromkeys(args.scale))
    for s in scales:
        check_scale(model, s, label)
    device = resolve_device(args.device)
    model = model.to(device).eval()
    hr_dirs = [(d, open_dataset(d, 2, root=args.data_root).hr_dir) for d in args.dataset]
    results = [(name, evaluate_at_scale(model, hr, s, device=device)) for name, hr in hr_dirs for s in scales]
    table = Table(title=f"{label} ({args.weights}): PSNR/SSIM on Y, Meta-SR protocol (MATLAB bicubic LR at x)")
    for col in ("dataset", "scale", "images", "PSNR (dB)", "SSIM", "bicubic PSNR"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for name, r in results:
        table.add_row(Path(name).name, f"x{r.scale:g}", str(r.images), f"{r.psnr:.2f}", f"{r.ssim:.4f}",
                      f"{r.bicubic_psnr:.2f}")
    Console().print(table)
    if args.json is not None:
        payload = {"model": label, "weights": str(args.weights), "protocol": "meta-sr", "results": [
            {"dataset": Path(name).name, "scale": r.scale, "images": r.images, "psnr": r.psnr, "ssim": r.ssim,
             "bicubic_psnr": r.bicubic_psnr, "bicubic_ssim": r.bicubic_ssim} for name, r in results]}
        _write_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    return 0


def _run_no_reference(args: argparse.Namespace) -> int:
    """--no-reference: the model's outputs on folders of LR images, scored by no-reference metrics only."""
    from rich.console import Console
    from rich.table import Table

    from ..data.benchmark import find_dataset_dir
    from ..evaluate_noref import evaluate_no_reference
    from ..metrics.report import scores_csv
    from .metrics import create_metrics

    clash = [name for name, value in (("--lr-source", args.lr_source != "generate"), ("--lr-dir", args.lr_dir),
                                      ("--degradation", args.degradation), ("--self-ensemble", args.self_ensemble),
                                      ("--rgb", args.rgb), ("--crop", args.crop is not None)) if value]
    if clash:
        raise ConfigError(f"{', '.join(clash)}: not used with --no-reference (the inputs are LR images, no HR)")
    metrics = create_metrics(args.metric or ["all"], args.metric_weights, reference=False)
    models = _models(args)
    folders = [find_dataset_dir(d, args.data_root) for d in args.dataset]
    model_name = args.model if args.model not in (None, "auto") else describe(models[0][1]).label
    results = []
    for folder in folders:
        for scale, model in models:
            save = args.save_images / folder.name / f"x{scale}" if args.save_images is not None else None
            results.append(evaluate_no_reference(model, folder, metrics, scale=scale, device=args.device,
                                                 save_dir=save))
    names = [m.name for m in metrics]
    table = Table(title=f"{model_name}: no-reference scores of the outputs")
    for col in ("dataset", "scale", "images", *(f"{m.name} ({'lower' if m.lower_is_better else 'higher'} better)"
                                                for m in metrics)):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for r in results:
        table.add_row(r.dataset, f"x{r.scale}", str(len(r.images)), *(f"{r.score(n):.4f}" for n in names))
    Console().print(table)
    if args.csv is not None:
        rows = []
        for r in results:
            rows += [((model_name, r.dataset, r.scale, name), scores) for name, scores in r.images]
            rows.append(((model_name, r.dataset, r.scale, "mean"), {n: r.score(n) for n in names}))
        _write_atomic(args.csv, scores_csv(("model", "dataset", "scale", "image"), names, rows))
    if args.json is not None:
        payload = {"model": model_name, "weights": [str(w) for w in args.weights_files or []] or None,
                   "no_reference": True, "results": [r.to_dict() for r in results]}
        _write_atomic(args.json, json.dumps(payload, indent=2) + "\n")
    return 0

