"""litesr's CPU paths against the plain fp32 eager reference implementation, same weights, one run, alternating.

    python benchmarks/cpu_speed.py [--models imdn,rlfn,ssiu,swinir_light] [--scale 4] [--size 64x48]
                                   [--rounds 3] [--threads 1] [--compile] [--onnx|--no-onnx]
                                   [--openvino|--no-openvino] [--bf16|--no-bf16] [--psnr]

With no flags it finishes in a few minutes on a small, loaded CPU: the four models of issue 16 (IMDN, RLFN, SSIU,
SwinIR-light x4) at LR 64x48, 3 alternating rounds; ONNX Runtime and OpenVINO for the CNN zoo models only (exporting
SSIU or SwinIR-light to ONNX takes many minutes: ``--onnx``/``--openvino`` include them); bf16 paths only where the
CPU has bf16 instructions (emulated bf16 on AVX2 is many times slower than fp32 and tells nothing: ``--bf16`` forces
them); torch.compile only with ``--compile``. Bigger runs: ``--size 160x96 --rounds 7``.

Reference: spandrel's implementation where it has the architecture (SwinIR; torchvision stubbed as in the tests),
else a plain fp32 eager run of the official-structure module. Weights: the official checkpoints in ../shared/weights
where they exist (IMDN, RLFN), seeded random weights otherwise (SSIU, SwinIR-light: no official weights here).

Contenders (all through ``litesr.inference.run_model``, so padding and ranges are identical):
  litesr fp32         eager, deploy forms folded (litesr.fast.prepare_model)
  litesr fp32 NHWC    channels-last
  litesr fp32 onnx    ONNX Runtime (litesr.fast.OnnxBackend, dynamic H/W export)
  litesr fp32 openvino OpenVINO on the same export file (litesr.fast.OpenVinoBackend, f32 hint)
  litesr fp32 compile torch.compile with frozen weights (--compile; the first call compiles, not timed)
  litesr bf16         autocast to bfloat16, channels-last (CPUs with bf16 instructions, or --bf16)
  litesr bf16 compile (--compile, with the bf16 paths)
Each prints its median time, output megapixels per second, speed-up over the reference and its largest difference
from the reference output (both clamped to [0, 1], as images are); fp32 paths must stay within 1e-4. ``--psnr``
also measures Set5 PSNR of the fp32 reference and of the eager bf16 path (acceptance: within 0.01 dB); the compiled
bf16 path is compared with eager bf16 (``--psnr-compiled`` measures its PSNR too, compiling for every image size).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ISSUE_MODELS,
    alternate,
    load_average,
    load_zoo_model,
    machine,
    reference_model,
    set5_psnr,
    table,
)


def _exported_backends(model: torch.nn.Module, folder: Path, threads: int, use_onnx: bool,
                       use_openvino: bool) -> dict[str, torch.nn.Module]:
    """ONNX Runtime and OpenVINO sessions on one export (exporting is the slow part: do it once for both)."""
    from litesr.descriptor import carry_identity, describe
    from litesr.export import export_onnx
    from litesr.fast import OnnxBackend, OpenVinoBackend, prepare_model

    paths: dict[str, torch.nn.Module] = {}
    try:
        folded = prepare_model(model)  # the deploy form, as prepare_model(backend="onnx") exports it
        path = folder / f"{describe(folded).arch}.onnx"
        export_onnx(folded.cpu().float(), path)
    except Exception as exc:  # noqa: BLE001 - a benchmark reports what it could not run
        print(f"  (ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        return paths
    scale = describe(folded).scale
    for key, wanted, cls in (("litesr fp32 onnx", use_onnx, OnnxBackend),
                             ("litesr fp32 openvino", use_openvino, OpenVinoBackend)):
        if not wanted:
            continue
        try:
            paths[key] = carry_identity(folded, cls(path, scale, threads=threads))
        except Exception as exc:  # noqa: BLE001
            print(f"  ({key} unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
    return paths


def contenders_for(model: torch.nn.Module, reference: torch.nn.Module, x: torch.Tensor, use_compile: bool,
                   use_onnx: bool, threads: int, use_openvino: bool = False, use_bf16: bool = True,
                   export_dir: Path | None = None) -> dict[str, tuple[str, torch.nn.Module]]:
    """name -> (precision, runnable model)."""
    import copy
    import tempfile

    from litesr.fast import Autocast, prepare_model

    def fresh() -> torch.nn.Module:  # prepare_model moves and converts in place, as nn.Module.to does
        return copy.deepcopy(model)

    paths: dict[str, tuple[str, torch.nn.Module]] = {"reference fp32": ("fp32", reference)}
    paths["litesr fp32"] = ("fp32", prepare_model(fresh()))
    paths["litesr fp32 NHWC"] = ("fp32", prepare_model(fresh(), channels_last=True))
    if use_onnx or use_openvino:
        folder = export_dir or Path(tempfile.mkdtemp(prefix="litesr-cpu-speed-"))
        for key, net in _exported_backends(fresh(), folder, threads, use_onnx, use_openvino).items():
            paths[key] = ("fp32", net)
    if use_compile:
        paths["litesr fp32 compile"] = ("fp32", prepare_model(fresh(), backend="compile"))
    if use_bf16:
        paths["litesr bf16"] = ("bf16", Autocast(prepare_model(fresh(), precision="bf16"), "bf16"))
    if use_bf16 and use_compile:
        paths["litesr bf16 compile"] = ("bf16", Autocast(prepare_model(fresh(), precision="bf16", backend="compile")))
    return paths


def _runner(net: torch.nn.Module, key: str, x: torch.Tensor, outputs: dict[str, torch.Tensor]):
    from litesr.inference import run_model

    def run() -> None:
        with torch.inference_mode():
            outputs[key] = run_model(net, x).float().clamp(0, 1)  # as every engine output (ONNX clamps inside)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ISSUE_MODELS))
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--size", default="64x48", help="LR input WxH (default 64x48; 160x96 for a longer run)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per contender (median reported; default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch and ONNX Runtime threads (default 1)")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile paths")
    parser.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=None,
                        help="the ONNX Runtime path for every model (default: the CNN zoo models only; exporting SSIU "
                             "or SwinIR-light takes many minutes)")
    parser.add_argument("--openvino", action=argparse.BooleanOptionalAction, default=None,
                        help="the OpenVINO path (pip install 'litesr[openvino]'), same default as --onnx")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="the bf16 paths (default: only where the CPU has bf16 instructions)")
    parser.add_argument("--psnr", action="store_true", help="Set5 PSNR of the reference and the bf16 paths")
    parser.add_argument("--psnr-compiled", action="store_true",
                        help="with --psnr, also the compiled bf16 path (compiles once per Set5 image size: slow)")
    args = parser.parse_args()

    from litesr.descriptor import describe
    from litesr.device import cpu_has_bf16
    from litesr.export import openvino_available
    from litesr.quantize import QUANTIZABLE

    torch.set_num_threads(args.threads)
    use_bf16 = cpu_has_bf16() if args.bf16 is None else args.bf16
    try:
        import onnxruntime  # noqa: F401
        have_onnx = True
    except ImportError:
        have_onnx = False
    w, h = (int(v) for v in args.size.lower().split("x"))
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    print(f"# CPU speed: litesr paths vs the fp32 eager reference, x{args.scale}, LR {w}x{h} -> "
          f"{w * args.scale}x{h * args.scale}, {args.rounds} alternating rounds")
    print(f"# {machine()}")
    print(f"# at start: {load_average()}")
    if not use_bf16:
        print("# bf16 paths left out: this CPU has no bf16 instructions (--bf16 runs them emulated)")
    summary = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        model, weights = load_zoo_model(name, args.scale)
        reference, reference_kind = reference_model(name, model)
        print(f"\n## {name} x{args.scale}: {weights}; reference: {reference_kind}")
        cnn = describe(model).arch in QUANTIZABLE
        use_onnx = have_onnx and (cnn if args.onnx is None else args.onnx)
        use_openvino = have_onnx and openvino_available() and (cnn if args.openvino is None else args.openvino)
        if not cnn and (args.onnx is None or args.openvino is None):
            print(f"  (ONNX Runtime / OpenVINO left out for {name}: its ONNX export takes many minutes here; "
                  "--onnx --openvino include it)")
        paths = contenders_for(model, reference, x, args.compile, use_onnx, args.threads, use_openvino, use_bf16)

        outputs: dict[str, torch.Tensor] = {}
        timings = alternate({key: _runner(net, key, x, outputs) for key, (_, net) in paths.items()}, args.rounds)
        ref_out = outputs["reference fp32"]
        megapixels = ref_out.shape[-1] * ref_out.shape[-2] / 1e6
        psnr_ref = set5_psnr(reference, args.scale) if args.psnr else None
        rows = []
        for key, (precision, net) in paths.items():
            diff = (outputs[key] - ref_out).abs().max().item()
            check = ""
            if precision == "fp32":
                check = "ok (<=1e-4)" if diff <= 1e-4 else "FAIL (>1e-4)"
            elif psnr_ref is not None and ("compile" not in key or args.psnr_compiled):
                delta = set5_psnr(net, args.scale) - psnr_ref
                check = f"Set5 {delta:+.4f} dB " + ("ok" if abs(delta) <= 0.01 else "FAIL (>0.01 dB)")
            elif "compile" in key and "litesr bf16" in outputs:
                # Compiling for every Set5 image size takes long (SSIU: over 20 minutes): compare with eager bf16.
                check = f"vs eager bf16 {(outputs[key] - outputs['litesr bf16']).abs().max().item():.1e}"
            median = timings.median(key)
            rows.append([key, f"{median * 1000:.0f}", f"{megapixels / median:.3f}",
                         f"{timings.ratio('reference fp32', key):.2f}x", f"{diff:.1e}", check])
        print(table(["path", "median ms", "out MP/s", "vs reference", "max |diff|", "check"], rows))
        if psnr_ref is not None:
            print(f"reference Set5 PSNR x{args.scale}: {psnr_ref:.4f} dB")
        fp32 = [k for k, (p, _) in paths.items() if p == "fp32" and k != "reference fp32"]
        best_fp32 = min(fp32, key=timings.median)
        best = min((k for k in paths if k != "reference fp32"), key=timings.median)
        print("side by side, vs reference fp32: " + ", ".join(
            f"{k.removeprefix('litesr ')} {timings.ratio('reference fp32', k):.2f}x" for k in paths
            if k != "reference fp32"))
        summary.append([name, weights.split(" ")[0], best_fp32, f"{timings.ratio('reference fp32', best_fp32):.2f}x",
                        best, f"{timings.ratio('reference fp32', best):.2f}x"])
        print(f"# {load_average()}")
    print("\n## summary (speed-up of the fastest litesr path over the reference, same weights, same threads)")
    print(table(["model", "weights", "fastest fp32 path", "speed-up", "fastest path", "speed-up"], summary))
    print(f"# at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
