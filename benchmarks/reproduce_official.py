"""Evaluate every official checkpoint in ../shared/weights through auto-detection, against its recorded Set5 value.

    python benchmarks/reproduce_official.py [--shared ../shared] [--only IMDN] [--markdown out.md]

Prints one row per (file, scale): the architecture litesr detected (no flags given), its parameter count, the
"Set5 measured" PSNR/SSIM recorded in weights/inventory.json and litesr's, and the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

import litesr
from litesr.evaluate import evaluate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("LITESR_SHARED", "../shared")))
    parser.add_argument("--only", default="", help="substring filter on the file path")
    parser.add_argument("--markdown", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inventory = json.loads((args.shared / "weights" / "inventory.json").read_text())
    rows = ["| file | detected | params | scale | README Set5 | litesr Set5 | ΔPSNR |", "|---|---|---|---|---|---|---|"]
    worst = 0.0
    for rel, entry in inventory.items():
        if args.only not in rel or not entry.get("measured_set5"):
            continue
        path = args.shared / "weights" / rel
        t0 = time.perf_counter()
        for scale_text, (ref_psnr, ref_ssim, _rng) in sorted(entry["measured_set5"].items()):
            scale = int(scale_text)
            model = litesr.load_model(path, scale=scale)
            params = litesr.count_parameters(model)
            res = evaluate(model, args.shared / "datasets" / "Set5", scale)
            delta = res.psnr - ref_psnr
            worst = max(worst, abs(delta)) if "VDSR" not in rel else worst
            arch = getattr(model, "litesr_arch", type(model).__name__)
            rows.append(f"| {rel} | {arch} | {params:,} | x{scale} | {ref_psnr:.3f} / {ref_ssim:.4f} | "
                        f"{res.psnr:.3f} / {res.ssim:.4f} | {delta:+.3f} |")
            print(rows[-1], f"({time.perf_counter() - t0:.0f} s)", flush=True)
    text = "\n".join(rows)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    print(f"largest |ΔPSNR| outside VDSR: {worst:.3f} dB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
