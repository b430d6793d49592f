"""``litesr compare SR_DIR [HR_DIR] --metric ...``: score a folder of images someone else produced against their
ground truth (paired by file name stem), or alone with no-reference metrics."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from .metrics import create_metrics


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="score a folder of SR images against HR images (paired by file name)",
                       description="Score SR_DIR's images against HR_DIR's, pairing files by name stem (baboon.png "
                                   "with baboon.jpg; --sr-suffix strips e.g. _x4_SR first). Without HR_DIR only "
                                   "no-reference metrics apply. Example: litesr compare results/ Set14/HR --metric "
                                   "psnr,ssim,ms_ssim,gmsd --crop 4 --csv scores.csv")
    p.add_argument("sr_dir", type=Path, help="folder of the images to score")
    p.add_argument("hr_dir", type=Path, nargs="?", default=None, help="folder of the reference (ground truth) images")
    p.add_argument("--metric", action="append", default=None, metavar="NAME",
                   help="repeatable or comma-separated (default psnr,ssim; without HR_DIR sharpness); 'all' = every "
                        "metric usable with the weights given; see `litesr metrics`")
    p.add_argument("--metric-weights", action="append", default=None, metavar="NAME=FILE",
                   help="weights of a learned metric (lpips=FILE, repeatable) or NIQE's model (niqe=FILE)")
    p.add_argument("--crop", type=int, default=0, metavar="N", help="border pixels to ignore (default 0; the SR "
                                                                     "papers shave the scale)")
    p.add_argument("--color", choices=("y", "gray", "rgb"), default=None,
                   help="colour plane for the metrics that offer it (default: each metric's own, Y for PSNR/SSIM)")
    p.add_argument("--sr-suffix", default="", metavar="TEXT",
                   help="strip TEXT from the end of SR file stems before pairing (e.g. _x4_SR)")
    p.add_argument("--per-image", action="store_true", help="also print every image's scores")
    p.add_argument("--csv", type=Path, default=None, help="write per-image scores and the mean as CSV")
    p.add_argument("--json", type=Path, default=None, help="write per-image scores and the mean as JSON")
    p.set_defaults(run=run)


def pair_files(sr_dir: Path, hr_dir: Path | None, sr_suffix: str = "") -> list[tuple[str, Path, Path | None]]:
    """(name, SR file, HR file) by name stem; an SR file without an HR partner, or two files with one stem, is an
    error. HR files without an SR partner are left out (a subset of a benchmark may be scored)."""
    from ..data.files import find_images
    from ..errors import DatasetError

    def by_stem(files: list[Path], suffix: str, where: Path) -> dict[str, Path]:
        out: dict[str, Path] = {}
        for f in files:
            stem = f.stem[: -len(suffix)] if suffix and f.stem.endswith(suffix) else f.stem
            if stem in out:
                raise DatasetError(f"{where}: {out[stem].name} and {f.name} have the same name stem {stem!r}")
            out[stem] = f
        return out

    sr = by_stem(find_images(sr_dir), sr_suffix, sr_dir)
    if hr_dir is None:
        return [(name, path, None) for name, path in sr.items()]
    hr = by_stem(find_images(hr_dir), "", hr_dir)
    alone = [name for name in sr if name not in hr]
    if alone:
        shown = ", ".join(sr[n].name for n in alone[:3]) + (f" and {len(alone) - 3} more" if len(alone) > 3 else "")
        hint = "; strip a suffix with --sr-suffix" if not sr_suffix else ""
        raise DatasetError(f"{sr_dir}: {shown} has no HR image of the same name in {hr_dir}{hint}")
    return [(name, path, hr[name]) for name, path in sr.items()]


def _load_pair(sr_path: Path, hr_path: Path | None):
    """uint8 arrays of one pair, gray files as (H, W); mismatched sizes or gray vs RGB are one-line errors."""
    from ..data.files import read_uint8
    from ..errors import DatasetError

    sr, sr_gray = read_uint8(sr_path)
    sr = sr[..., 0] if sr_gray else sr
    if hr_path is None:
        return sr, None
    hr, hr_gray = read_uint8(hr_path)
    hr = hr[..., 0] if hr_gray else hr
    if sr_gray != hr_gray:
        raise DatasetError(f"{sr_path} is {'gray' if sr_gray else 'RGB'} but {hr_path} is "
                           f"{'gray' if hr_gray else 'RGB'}: score images of the same kind")
    if sr.shape[:2] != hr.shape[:2]:
        raise DatasetError(f"{sr_path} is {sr.shape[1]}x{sr.shape[0]} but {hr_path} is {hr.shape[1]}x{hr.shape[0]}: "
                           "SR and HR must be the same size (mod-crop the HR to the scale first)")
    return sr, hr


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError, DatasetError
    from ..fileio import atomic_write_text
    from ..metrics.report import scores_csv

    if args.crop < 0:
        raise ConfigError(f"--crop must be >= 0, not {args.crop}")
    reference = args.hr_dir is not None
    items = args.metric or (["psnr,ssim"] if reference else ["sharpness"])
    metrics = create_metrics(items, args.metric_weights, color=args.color, crop=args.crop, reference=reference)
    pairs = pair_files(args.sr_dir, args.hr_dir, args.sr_suffix)

    rows: list[dict[str, Any]] = []
    for name, sr_path, hr_path in pairs:
        sr, hr = _load_pair(sr_path, hr_path)
        try:
            scores = {m.name: float(m(sr, hr)[0]) for m in metrics}
        except ConfigError as exc:  # too small for a metric's window, crop larger than the image...
            raise DatasetError(f"{sr_path}: {exc}") from None
        rows.append({"image": name, "sr": str(sr_path), "hr": str(hr_path) if hr_path else None, "scores": scores})
    names = [m.name for m in metrics]
    mean = {n: float(np.mean([r["scores"][n] for r in rows])) for n in names}

    console = Console()
    title = f"{args.sr_dir}" + (f" vs {args.hr_dir}" if reference else "") + f" ({len(rows)} images, crop {args.crop})"
    if args.per_image:
        per = Table(title=title)
        per.add_column("image")
        for m in metrics:
            per.add_column(f"{m.name} ({m.color})", justify="right")
        for r in rows:
            per.add_row(r["image"], *(f"{r['scores'][n]:.4f}" for n in names))
        console.print(per)
    table = Table(title=f"mean: {title}")
    for m in metrics:
        table.add_column(f"{m.name} ({m.color}, {'lower' if m.lower_is_better else 'higher'} better)",
                         justify="right")
    table.add_row(*(f"{mean[n]:.4f}" for n in names))
    console.print(table)

    if args.csv is not None:
        csv_rows = [((r["image"], r["sr"], r["hr"] or ""), r["scores"]) for r in rows]
        csv_rows.append((("mean", "", ""), mean))
        atomic_write_text(args.csv, scores_csv(("image", "sr_file", "hr_file"), names, csv_rows))
    if args.json is not None:
        payload = {"sr_dir": str(args.sr_dir), "hr_dir": str(args.hr_dir) if reference else None, "crop": args.crop,
                   "metrics": {m.name: {"color": m.color, "better": "lower" if m.lower_is_better else "higher",
                                        "reference": m.reference} for m in metrics},
                   "mean": mean, "images": rows}
        atomic_write_text(args.json, json.dumps(_finite(payload), indent=2) + "\n")
    return 0


def _finite(value: Any) -> Any:
    """JSON has no inf/nan (PSNR of identical images is inf): those become the strings "inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value

