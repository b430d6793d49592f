"""``litesr export``: a model to ONNX (dynamic height and width), or an SR-LUT network to its look-up table (--lut)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a model to ONNX with dynamic H and W ([0,1] RGB in and out)")
    p.add_argument("--model", default="auto", help="zoo model name, or 'auto' with --weights (default)")
    p.add_argument("--weights", type=Path, default=None)
    p.add_argument("--scale", type=int, default=None)
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--check", action="store_true", help="run the export in onnxruntime and compare with torch")
    p.add_argument("--lut", action="store_true",
                   help="write the look-up table of a trained SR-LUT network (srlut_s/v/f) as .npy, the official "
                        "int8 (L**D, 1, r, r) layout, instead of ONNX; see docs/upsampling.md")
    p.add_argument("--lut-bits", type=int, default=4, metavar="B",
                   help="with --lut: sampling interval 2**B (default 4: 17 levels per input pixel, as the paper)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .onnx file (.npy with --lut)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..detect import load_model
    from ..errors import ConfigError
    from ..export import OnnxModel, export_onnx
    from ..inference import run_model
    from ..registry import create_model

    if args.weights is not None:
        model = load_model(args.weights, model=args.model, scale=args.scale)
    elif args.model == "auto":
        raise ConfigError("--model auto needs --weights; or name a zoo model")
    else:
        model = create_model(args.model, scale=args.scale)
    if args.lut:
        return _export_lut(model, args)
    if hasattr(model, "to_deploy"):  # fold re-parameterisable branches before export
        model = model.to_deploy()
    export_onnx(model, args.output, opset=args.opset)
    print(f"wrote {args.output}")
    if args.check:
        x = torch.rand(1, 3, 37, 45)
        with torch.no_grad():
            ref = run_model(model.eval(), x).clamp(0, 1)
        diff = (OnnxModel(args.output)(x) - ref).abs().max().item()
        print(f"onnxruntime vs torch on a 45x37 input: max abs difference {diff:.2e}")
    return 0


def _export_lut(model, args: argparse.Namespace) -> int:
    from ..archs.srlut import SRLUTNet
    from ..descriptor import describe
    from ..errors import ConfigError
    from ..lut import write_lut

    if not isinstance(model, SRLUTNet):
        raise ConfigError(f"--lut needs a trained SR-LUT network (srlut_s, srlut_v, srlut_f), "
                          f"not {describe(model).label}")
    table = model.to_lut(args.lut_bits)
    write_lut(args.output, table.lut.numpy())
    print(f"wrote {args.output}: Model {model.kind.upper()} x{model.scale}, 2**{args.lut_bits} sampling, "
          f"int8 {tuple(table.lut.shape)}")
    return 0
