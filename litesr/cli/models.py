"""``litesr models``: the registry as a table."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the model zoo (architectures and named variants)")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style filter, e.g. 'swinir*'")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..registry import all_archs, all_variants, list_models

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
