"""SR-LUT: inference by table look-up against the network the table came from, side by side in one run.

    OMP_NUM_THREADS=1 python benchmarks/lut_speed.py [--kind s] [--scale 4] [--size 128x128] [--rounds 5]
    OMP_NUM_THREADS=1 python benchmarks/lut_speed.py --weights runs/srlut_s_x4/net_last.safetensors

Contenders (RGB in [0, 1], 4-rotation ensemble on both SR-LUT paths, fp32 eager on the CPU):
  network   the SR-LUT network (srlut_<kind>), its rotation-ensemble forward
  lut       litesr's table look-up with simplex interpolation (litesr.lut.lut_upscale), no network
  bicubic   litesr's MATLAB-compatible bicubic (litesr.imresize), for scale
The network has seeded random weights unless --weights is given (time does not depend on the values); the table is
transferred from it at 2**--bits. Contenders alternate (A B C A B C ...) so load changes hit all alike; medians and
ratios are printed, with the machine line.
"""

from __future__ import annotations

import argparse

import torch
from _common import alternate, load_average, machine, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kind", choices=("s", "v", "f"), default="s")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--size", default="128x128", help="LR input WxH (default 128x128: a 512x512 output at x4)")
    ap.add_argument("--weights", default=None, help="a trained srlut network instead of random weights")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from litesr import create_model, load_model
    from litesr.imresize import imresize

    torch.manual_seed(0)
    if args.weights:
        net = load_model(args.weights).eval()
    else:
        net = create_model(f"srlut_{args.kind}", scale=args.scale).eval()
    lut = net.to_lut(args.bits).eval()
    width, height = (int(v) for v in args.size.lower().split("x"))
    x = torch.rand(1, 3, height, width)

    with torch.inference_mode():
        gap = (lut(x) - net(x)).abs().mean().item() * 255
        timings = alternate({"network": lambda: net(x), "lut": lambda: lut(x),
                             "bicubic": lambda: imresize(x, float(net.scale))}, rounds=args.rounds)
    pixels = width * height * net.scale**2 / 1e6
    print(f"# {machine()}\n# {load_average()}")
    print(f"# SR-LUT Model {net.kind.upper()} x{net.scale}, table 2**{args.bits} "
          f"{tuple(lut.lut.shape)} int8 ({lut.lut.numel() / 2**20:.2f} MiB); input {width}x{height} RGB; "
          f"mean |lut - network| = {gap:.2f} / 255")
    rows = [[name, f"{timings.median(name) * 1e3:.1f}", f"{timings.median(name) / pixels * 1e3:.1f}",
             f"{timings.ratio(name, 'lut'):.2f}"] for name in timings.runs]
    print(table(["contender", "median ms", "ms / output MP", "time / lut"], rows))
    print(f"network / lut = {timings.ratio('network', 'lut'):.2f}  (> 1: the table is faster)")


if __name__ == "__main__":
    main()
