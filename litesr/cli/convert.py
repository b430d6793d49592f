"""``litesr convert``: turn a trusted pickled checkpoint into a safe safetensors file."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert a checkpoint (.pth/.pt, optionally pickled) to .safetensors")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        help="unpickle arbitrary objects (runs code from the file: only for files you trust)",
    )
    p.add_argument("--param-key", default=None, help="take the state dict under this key (default: auto)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..checkpoint import load_state_dict, save_safetensors
    from ..errors import CheckpointError

    if args.output.suffix != ".safetensors":
        raise CheckpointError(f"{args.output}: output must end in .safetensors")
    sd = load_state_dict(args.input, allow_pickle=args.allow_pickle, param_key=args.param_key)
    save_safetensors(sd, args.output, metadata={"source": args.input.name})
    print(f"wrote {args.output} ({len(sd)} tensors)")
    return 0
