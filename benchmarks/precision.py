"""bf16 against fp32 on the CPU: speed (alternating runs) and Set5 PSNR, for the same weights.

    python benchmarks/precision.py [--models imdn,rlfn,ssiu,swinir_light] [--scales 2,4] [--size 160x96]
                                   [--rounds 5] [--threads 1]

Contenders, all litesr (litesr.fast.prepare_model + autocast):
  fp32            eager fp32
  bf16            autocast to bfloat16, channels-last, the image-facing first and last layers kept in fp32 (default)
  bf16 all layers the same with every layer in bf16 (``fp32_ends=False``)
Speed on a random --size input; PSNR on Set5 (Y, border = scale) from ../shared/datasets. Official weights where
../shared has them (IMDN, RLFN); SSIU and SwinIR-light run with seeded random weights (no official weights here), so
their PSNR is meaningless in itself and only the bf16 - fp32 difference says something.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ISSUE_MODELS, alternate, load_average, load_zoo_model, machine, set5_psnr, table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ISSUE_MODELS))
    parser.add_argument("--scales", default="2,4")
    parser.add_argument("--size", default="160x96", help="LR input WxH of the speed runs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    from litesr.fast import Autocast, prepare_model
    from litesr.inference import run_model

    torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.lower().split("x"))
    x = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    print(f"# bf16 vs fp32 on the CPU: speed on LR {w}x{h} ({args.rounds} alternating rounds, {args.threads} "
          f"thread(s)) and Set5 PSNR")
    print(f"# {machine()}")
    print(f"# at start: {load_average()}")
    rows = []
    for scale in (int(s) for s in args.scales.split(",")):
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            try:
                model, weights = load_zoo_model(name, scale)
            except Exception as exc:  # noqa: BLE001 - e.g. no such scale for this model
                print(f"# {name} x{scale}: skipped ({exc})")
                continue
            paths = {
                "fp32": prepare_model(copy.deepcopy(model)),
                "bf16": Autocast(prepare_model(copy.deepcopy(model), precision="bf16")),
                "bf16 all layers": Autocast(prepare_model(copy.deepcopy(model), precision="bf16", fp32_ends=False)),
            }

            def runner(net: torch.nn.Module):
                def run() -> None:
                    with torch.inference_mode():
                        run_model(net, x)
                return run

            timings = alternate({key: runner(net) for key, net in paths.items()}, args.rounds)
            psnr = {key: set5_psnr(net, scale) for key, net in paths.items()}
            for key in paths:
                delta = "" if psnr[key] is None or key == "fp32" else f"{psnr[key] - psnr['fp32']:+.4f}"
                verdict = ""
                if delta:
                    verdict = "ok" if abs(psnr[key] - psnr["fp32"]) <= 0.01 else "> 0.01 dB"
                rows.append([f"{name} x{scale}", weights.split(" ")[0], key, f"{timings.median(key) * 1000:.0f}",
                             f"{timings.ratio('fp32', key):.2f}x",
                             "" if psnr[key] is None else f"{psnr[key]:.4f}", delta, verdict])
            print(f"# done {name} x{scale}: {load_average()}", flush=True)
    print(table(["model", "weights", "path", "median ms", "speed vs fp32", "Set5 PSNR", "vs fp32 (dB)", "check"],
                rows))
    print(f"# at end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
