"""The shipped fast model against the shipped quality model: latency side by side, per scale, same input.

    python benchmarks/shipped_speed.py [--size 128x96] [--rounds 5] [--threads 1]

Runs ``litesr.forward.run_model`` of each shipped file (``litesr upscale``'s default model and its ``--fast`` one,
``litesr/upscale_jobs.py``) on the same LR image, alternating the contenders (A B A B ...) so that load changes on a
shared machine hit both alike, and prints the median times and the speed ratio (issue 19's goal: the fast model at
least 4x faster than the quality model).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import alternate, load_average, machine, table  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="128x96", help="LR input WxH (default 128x96)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))

    import litesr
    from litesr.forward import run_model
    from litesr.upscale_jobs import DEFAULT_MODELS, FAST_MODELS

    print(machine())
    print(load_average())
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    rows = []
    for scale in sorted(set(DEFAULT_MODELS) & set(FAST_MODELS)):
        quality, fast = DEFAULT_MODELS[scale], FAST_MODELS[scale]
        models = {name: litesr.create_model(name, scale=scale, pretrained=True).eval() for name in (quality, fast)}

        def runner(model: torch.nn.Module):
            def run() -> None:
                with torch.inference_mode():
                    run_model(model, x)
            return run

        timings = alternate({name: runner(m) for name, m in models.items()}, rounds=args.rounds)
        rows.append([f"x{scale}", quality, f"{timings.median(quality) * 1e3:.0f}", fast,
                     f"{timings.median(fast) * 1e3:.0f}", f"{timings.ratio(quality, fast):.1f}x"])
    print(table(["scale", "quality model", "median ms", "fast model", "median ms", "fast / quality speed"], rows))
    print(f"input {width}x{height} RGB, fp32 eager, {args.threads} thread(s), median of {args.rounds} alternated runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
