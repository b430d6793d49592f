"""Int8 post-training static quantisation (litesr.quantize) of the CNN zoo models: Set5 PSNR loss and speed against
the plain fp32 eager reference, same weights, contenders alternating in one run.

    python benchmarks/int8.py [--models imdn,rlfn,ecbsr,etds,span,rdesa_s] [--scale 4] [--size 160x96] [--rounds 5]
                              [--threads 1] [--calib DIR] [--images 32] [--method percentile] [--no-psnr]

Weights: the official checkpoints in ../shared/weights (IMDN, RLFN, ECBSR-M4C16, ETDS-S M4C32, SPAN ch28 slim: all
x4) and litesr's shipped RDESA-S; a model whose weights are absent is skipped with the reason. Calibration: centre
crops of the images of ``--calib`` (default ../shared/datasets/T91/HR: training images, not the Set5 test set).
Contenders: the fp32 eager reference (official-structure module), the int8 file in ONNX Runtime and, where OpenVINO
is installed, the same file in OpenVINO. Prints per model: Set5 PSNR (Y, border = scale) of fp32 and int8 and the
difference (goal: within 0.1 dB), the median time of each contender and its speed-up over the reference (goal on
AVX2: 3x on IMDN and RLFN).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED, alternate, load_average, machine, reference_model, set5_psnr, table  # noqa: E402

WEIGHTS = {  # model -> (registry name for load_model, file under SHARED/weights per scale)
    "imdn": ("imdn", {2: "IMDN/IMDN_x2.pth", 4: "IMDN/IMDN_x4.pth"}),
    "rlfn": ("rlfn", {2: "RLFN/rlfn_x2.pth", 4: "RLFN/rlfn_x4.pth"}),
    "ecbsr": ("ecbsr", {2: "ECBSR/ECBSR_M4C16_x2.pth", 4: "ECBSR/ECBSR_M4C16_x4.pth"}),
    "etds": ("etds", {2: "ETDS/ETDS_M4C32_x2.pth", 4: "ETDS/ETDS_M4C32_x4.pth"}),
    "span": ("span", {4: "SPAN/team38_span_ch28_slim.pth"}),
}


def load(name: str, scale: int) -> tuple[torch.nn.Module | None, str]:
    from litesr import create_model, get_variant, load_model

    if name in WEIGHTS:
        arch, files = WEIGHTS[name]
        relative = files.get(scale)
        if not relative or not (SHARED / "weights" / relative).is_file():
            return None, f"no official x{scale} weights under {SHARED / 'weights'}"
        return load_model(SHARED / "weights" / relative, model=arch, scale=scale).eval(), f"official {relative}"
    if scale in get_variant(name).pretrained:
        return create_model(name, scale=scale, pretrained=True).eval(), f"litesr {get_variant(name).pretrained[scale]}"
    return None, f"litesr ships no {name} x{scale} weights"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="imdn,rlfn,ecbsr,etds,span,rdesa_s")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--size", default="160x96", help="LR input WxH of the timed runs (default 160x96)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calib", type=Path, default=SHARED / "datasets" / "T91" / "HR")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--method", default="percentile")
    parser.add_argument("--no-psnr", action="store_true", help="timings only")
    args = parser.parse_args()

    from litesr.export import openvino_available
    from litesr.forward import run_model
    from litesr.quantize import load_int8, quantize_model

    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    print(f"# int8 (ONNX Runtime static QDQ, {args.method} calibration on {args.images} crops of {args.calib}) vs fp32 "
          f"eager, x{args.scale}, LR {w}x{h}, {args.rounds} alternating rounds")
    print(f"# {machine()}")
    print(f"# at start: {load_average()}")
    summary = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model, weights = load(name, args.scale)
        if model is None:
            print(f"\n## {name} x{args.scale}: skipped ({weights})")
            summary.append([name, "skipped", "", "", "", ""])
            continue
        reference, _ = reference_model(name, model)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}_x{args.scale}_int8.onnx"
            report = quantize_model(model, args.calib, path, images=args.images, method=args.method)
            int8 = load_int8(path, model, threads=args.threads)
            paths = {"fp32 eager (reference)": reference, "int8 onnxruntime": int8}
            if openvino_available():
                paths["int8 openvino"] = load_int8(path, model, runtime="openvino", threads=args.threads)

            def runner(net: torch.nn.Module):
                def run() -> None:
                    with torch.inference_mode():
                        run_model(net, x)
                return run

            timings = alternate({k: runner(v) for k, v in paths.items()}, args.rounds)
            psnr = {} if args.no_psnr else {k: set5_psnr(v, args.scale) for k, v in list(paths.items())[:2]}
        print(f"\n## {name} x{args.scale}: {weights}\n{report}")
        rows = [[k, f"{timings.median(k) * 1000:.0f}", f"{timings.ratio('fp32 eager (reference)', k):.2f}x",
                 f"{psnr[k]:.4f}" if psnr.get(k) is not None else "-"] for k in paths]
        print(table(["path", "median ms", "vs reference", "Set5 PSNR"], rows))
        loss = (psnr["int8 onnxruntime"] - psnr["fp32 eager (reference)"]) if len(psnr) == 2 and None not in \
            psnr.values() else None
        best = min((k for k in paths if k.startswith("int8")), key=timings.median)
        summary.append([name, weights.split(" ")[0], f"{loss:+.3f} dB" if loss is not None else "-",
                        "ok" if loss is not None and loss >= -0.1 else "MISSED" if loss is not None else "-",
                        best, f"{timings.ratio('fp32 eager (reference)', best):.2f}x"])
        print(f"# {load_average()}")
    print("\n## summary (int8 vs fp32 eager, same weights; goals: PSNR within 0.1 dB, >= 3x on IMDN and RLFN)")
    print(table(["model", "weights", "Set5 int8 - fp32", "0.1 dB goal", "fastest int8", "speed-up"], summary))
    print(f"# at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
