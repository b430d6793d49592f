"""ARM's any-time trade-off on a benchmark set: PSNR (Y, border = scale) and the network MACs the patch routing
planned (for a plain network, of the whole image), at full width (plain), at each fixed width, with the official
``eta = "best"`` choice and under budgets.

    OMP_NUM_THREADS=1 nice -n 15 python benchmarks/arm_budget_set5.py ckpt/arm-fsrcnn.pth \\
        --data-root /work/shared/datasets --dataset Set5 --budgets 1 0.7 0.5 0.3 0

The lookup table is read from ``<weights stem>.state`` (the official training-state file) unless ``--table`` names
it. MACs are litesr's count (docs/efficiency.md) of the subnets run on the 32x32 patches, summed over the set.

``--projection-from DIR`` adds WBSR-style gradient-projection routing (no lookup table;
``ARMBase.set_gradient_projection``) with edges from the patch scores of DIR's HR images, bicubic-downscaled by the
scale (a training set, e.g. T91/HR): one row with bicubic as the smoothest level, one without, and as their
control every patch through one width (the same 32x32 patches and overlaps, no texture routing), so the cost of
cutting the image into patches is not mistaken for the cost of routing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import litesr
from litesr.evaluate import evaluate
from litesr.profile import count_ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--table", type=Path, default=None)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--dataset", default="Set5")
    parser.add_argument("--budgets", nargs="*", default=["1", "0.7", "0.5", "0.3", "0"])
    parser.add_argument("--no-widths", action="store_true", help="skip the plain runs at each fixed width")
    parser.add_argument("--projection-from", type=Path, default=None, metavar="DIR",
                        help="also route by gradient projection, edges from these HR training images")
    args = parser.parse_args()

    model = litesr.load_model(args.weights)
    table = args.table or args.weights.with_suffix(".state")
    if table.is_file():
        model.load_lookup_table(table)
    elif args.projection_from is None:
        parser.error(f"{table}: no lookup table (give --table, or --projection-from DIR to route without one)")
    else:
        print(f"{table}: no lookup table; only the plain widths and the gradient projection run", flush=True)
    planned: list[int] = []
    plain_sizes: list[tuple[int, int]] = []  # LR sizes of the whole-image forwards, counted after the run

    def record(m: torch.nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
        if m.routing:
            planned.append(m.last_routing.get("budget_macs", 0))
        else:
            plain_sizes.append(tuple(inputs[0].shape[-2:]))

    model.register_forward_hook(record)

    def run(label: str) -> None:
        planned.clear()
        plain_sizes.clear()
        result = evaluate(model, args.dataset, 4, data_root=args.data_root)
        if planned:
            macs = f"{sum(planned) / 1e9:8.3f} G MACs (patch routing)"
        else:
            sizes = list(plain_sizes)  # count_ops runs the model too
            macs = f"{sum(count_ops(model, hw).total_macs for hw in sizes) / 1e9:8.3f} G MACs (whole image)"
        print(f"{label:<24} PSNR {result.psnr:.3f} dB  SSIM {result.ssim:.4f}  {macs}", flush=True)

    for width in [] if args.no_widths else model.widths[1:]:
        model.set_budget(None)
        model.set_eta(None)
        model.set_width(width)
        run(f"width {width} (plain)")
    model.set_width(model.widths[-1])
    if model.table is not None:
        model.set_eta("best")
        run("eta best (official)")
        for budget in args.budgets:
            model.set_budget(budget)
            run(f"budget {budget}")
    if args.projection_from is not None:
        from litesr.archs.arm import gradient_projection_edges
        from litesr.data.files import find_images, read_rgb_uint8
        from litesr.imresize import bicubic_downsample_uint8

        hr_files = find_images(args.projection_from)
        lr_images = [bicubic_downsample_uint8(read_rgb_uint8(p), model.scale) for p in hr_files]
        for levels, label in ((len(model.widths), "projection, bicubic on"), (len(model.widths) - 1,
                                                                              "projection, no bicubic")):
            edges = gradient_projection_edges(model, lr_images, levels)
            model.set_gradient_projection(edges)
            run(label)
        for index, width in enumerate(model.widths[1:], start=1):
            model.set_eta(index)  # the official fixed-subnet choice: every patch through one width
            run(f"patches, all width {width}")


if __name__ == "__main__":
    main()
