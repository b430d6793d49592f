"""Score reports shared by ``litesr eval`` and ``litesr compare``: per-image CSV with one column per metric, and the
multi-scale table (x2, x3, x4 of one model side by side)."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any


def format_score(value: float) -> str:
    """10 significant digits (GMSD is ~1e-3, PSNR ~30: fixed decimals would cut one or pad the other)."""
    return str(value) if not math.isfinite(value) else f"{value:.10g}"


def scores_csv(columns: Sequence[str], metrics: Sequence[str],
               rows: Sequence[tuple[Sequence[Any], Mapping[str, float]]]) -> str:
    """CSV text: ``columns`` then one column per metric; each row is (its column values, its scores by metric)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*columns, *metrics])
    for values, scores in rows:
        writer.writerow([*values, *(format_score(scores[m]) if m in scores else "" for m in metrics)])
    return buf.getvalue()


def multi_scale_table(title: str, results: Sequence[Any], metrics: Sequence[str]):
    """A rich Table with one row per dataset and, per scale, one column per metric (``results``: DatasetResult-like
    objects with ``dataset``, ``scale``, ``psnr``, ``ssim`` and ``score(name)``). PSNR/SSIM lead as in the papers."""
    from rich.table import Table

    scales = sorted({r.scale for r in results})
    datasets = list(dict.fromkeys(r.dataset for r in results))
    by_key = {(r.dataset, r.scale): r for r in results}
    table = Table(title=title)
    table.add_column("dataset")
    names = ["psnr", "ssim", *[m for m in metrics if m not in ("psnr", "ssim")]]
    for s in scales:
        for m in names:
            table.add_column(f"x{s} {m.upper() if m in ('psnr', 'ssim') else m}", justify="right")
    for d in datasets:
        cells = [d]
        for s in scales:
            r = by_key.get((d, s))
            for m in names:
                if r is None:
                    cells.append("-")
                elif m == "psnr":
                    cells.append(f"{r.psnr:.2f}")
                else:
                    cells.append(f"{r.ssim if m == 'ssim' else r.score(m):.4f}")
        table.add_row(*cells)
    return table
