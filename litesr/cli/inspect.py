"""``litesr inspect``: what a checkpoint file is, where its weights are, which architecture fits, how keys map."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="show a checkpoint's format, architecture and key mapping")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--scale", type=int, default=None, help="only consider models for this scale")
    p.add_argument("--allow-pickle", action="store_true",
                   help="unpickle arbitrary objects if stand-ins cannot read the file (runs code from the file)")
    p.add_argument("--all", action="store_true", help="list every renamed key, not only the renamed modules")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import read_checkpoint
    from ..checkpoint_formats import sniff
    from ..detect import resolve

    raw = read_checkpoint(args.checkpoint, allow_pickle=args.allow_pickle)
    found = resolve(raw, str(args.checkpoint), scale=args.scale)
    n_params = sum(t.numel() for t in found.state_dict.values())
    print(f"file: {args.checkpoint} ({sniff(args.checkpoint)})")
    print(f"weights: {found.candidate.where()}, {len(found.state_dict)} tensors, {n_params:,} values")
    print(f"architecture: {found.match.describe()}")
    print(f"recognised by: {found.stage}")
    if found.candidate.ignored:
        ignored = found.candidate.ignored
        more = " ..." if len(ignored) > 5 else ""
        print(f"ignored beside it: {len(ignored)} tensors ({', '.join(ignored[:5])}{more})")
    if found.structural is not None:
        pairs = sorted(found.structural.renamed().items()) if args.all else found.structural.module_renames()
        print(f"key mapping (file -> litesr), {'every key' if args.all else 'by module'}:")
        for src, dst in pairs:
            print(f"  {src} -> {dst}")
    return 0
