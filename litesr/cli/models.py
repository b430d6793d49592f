"""``litesr models``: the registry as a table."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo (architectures and named variants)")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'swinir*'")
    p.add_argument("--shipped", action="store_true",
                   help="list the weights litesr ships: training data, iterations, hardware, time, command, PSNR/SSIM")
    p.set_defaults(run=run)


def _run_shipped(pattern: str) -> int:
    import fnmatch

    from ..shipped import shipped_weights

    print("weights shipped with litesr (litesr/weights); PSNR / SSIM by `litesr eval`, MATLAB protocol "
          "(LR by MATLAB bicubic, BT.601 Y, border crop = scale)")
    for e in shipped_weights():
        if not fnmatch.fnmatch(e.model, pattern):
            continue
        if e.scales:  # one arbitrary-scale file: every measured factor, one line per data set
            rows = {d: "   ".join(f"{key.split()[1]} {v[0]:.2f} / {v[1]:.4f}" for key, v in e.results.items()
                                  if key.split()[0] == d) for d in ("Set5", "Set14", "B100")}
            scores = "\n  ".join(f"{d}: {row}" for d, row in rows.items() if row)
            factors = "any factor in [1, 4]"
        else:
            scores = "   ".join(f"{d} {e.results[d][0]:.2f} / {e.results[d][1]:.4f}" if d in e.results else f"{d} -"
                               for d in ("Set5", "Set14", "B100"))
            factors = f"x{e.scale}"
        print(f"\n{e.model} {factors}  {e.file} ({e.path.stat().st_size / 1e6:.1f} MB)")
        print(f"  data:     {e.data}")
        print(f"  training: {e.iterations:,} iterations, {e.hardware}, {e.wall_time}")
        print(f"  command:  {e.command}")
        print(f"  {scores}")
        if e.notes:
            print(f"  note:     {e.notes}")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..registry import all_archs, all_variants, list_models

    if args.shipped:
        return _run_shipped(args.pattern)

    archs, variants = all_archs(), all_variants()
    table = Table(title="litesr model zoo")
    for col in ("name", "architecture", "scales", "pretrained", "description"):
        table.add_column(col)
    for name in list_models(args.pattern):
        v = variants[name]
        pre = ", ".join(f"x{s}" for s in sorted(v.pretrained)) or "-"
        scales = ", ".join(f"x{s}" for s in archs[v.arch].scales)
        table.add_row(name, v.arch, scales, pre, v.description)
    Console().print(table)
    return 0
