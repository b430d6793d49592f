"""Memory of tiled against untiled inference, each run in a fresh process (its peak RSS is the kernel's VmHWM).

    python benchmarks/tiling_memory.py [--model ssiu] [--scale 4] [--compare-size 480x270] [--tiles 192,128]
                                       [--budget 1GB] [--size 960x540] [--max-memory 2GB] [--threads 1]

Part 1, tiled vs untiled: ``upscale_tensor`` on a --compare-size LR image whole, in tiles of each --tiles size, and
under --budget (the whole process, tiles sized as ``litesr upscale --max-memory`` does); peak RSS, time and the
largest difference from the untiled result.
Part 2, the acceptance run: ``litesr upscale`` on a --size LR PNG (960x540 -> 3840x2160 at x4) with
``--max-memory 2GB``; its peak RSS must stay under the budget, and its result must equal an untiled run within
1/255 on a 128 x 128 crop (the untiled reference is computed on the crop with 64 LR pixels of context around it,
offsets aligned to the model's window multiple).
The LR picture is a mosaic of B100 HR images (../shared/datasets), else a smooth random pattern. Weights: official
where ../shared has them (IMDN, RLFN), seeded random otherwise (SSIU has no official weights here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import SHARED, load_average, load_zoo_model, machine, table  # noqa: E402

# Runs in a fresh interpreter: upscale_tensor on the saved LR array; prints peak RSS, seconds and tile size as JSON.
CHILD = r"""
import json, sys, time
import numpy as np, torch
from litesr import load_model
from litesr.inference import upscale_tensor
from litesr.fast import prepare_model, tile_for_process
spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
model = prepare_model(load_model(spec["weights"], model=spec["model"]))
x = torch.from_numpy(np.load(spec["input"])).permute(2, 0, 1)[None].contiguous()
options = {}
if spec.get("tile"):
    options["tile"] = spec["tile"]
if spec.get("budget"):
    options["tile"] = tile_for_process(model, tuple(x.shape[-2:]), spec["budget"])
start = time.perf_counter()
y = upscale_tensor(model, x, **options)
seconds = time.perf_counter() - start
np.save(spec["output"], y[0].permute(1, 2, 0).numpy())
status = open("/proc/self/status").read()
peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) * 1024
print(json.dumps({"peak": peak, "seconds": seconds}))
"""

# ``litesr upscale`` itself, then its peak RSS.
CLI_CHILD = r"""
import json, sys, time
import torch
from litesr.cli import main
spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
start = time.perf_counter()
rc = main(spec["argv"])
seconds = time.perf_counter() - start
status = open("/proc/self/status").read()
peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) * 1024
print(json.dumps({"rc": rc, "peak": peak, "seconds": seconds}))
"""


def run_child(code: str, spec: dict) -> dict:
    done = subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def lr_picture(w: int, h: int) -> np.ndarray:
    """(h, w, 3) float32 in [0, 1], 8-bit values: a mosaic of B100 HR images, or a smooth random pattern."""
    from litesr.images import read_image

    files = sorted((SHARED / "datasets" / "B100" / "HR").glob("*.png"))
    if files:
        canvas = np.zeros((h, w, 3), np.float32)
        y = 0
        index = 0
        while y < h:
            x = 0
            row_height = 0
            while x < w:
                tile = read_image(files[index % len(files)]).rgb
                index += 1
                tile = np.repeat(tile, 3, axis=2) if tile.shape[2] == 1 else tile
                th, tw = min(tile.shape[0], h - y), min(tile.shape[1], w - x)
                canvas[y : y + th, x : x + tw] = tile[:th, :tw]
                x += tw
                row_height = max(row_height, th)
            y += row_height
        return canvas
    rng = np.random.default_rng(0)
    coarse = torch.from_numpy(rng.random((1, 3, h // 16 + 1, w // 16 + 1), dtype=np.float32))
    smooth = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)
    return (torch.round(smooth.clamp(0, 1)[0].permute(1, 2, 0) * 255) / 255).numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ssiu")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--compare-size", default="480x270", help="LR WxH of part 1 (untiled must fit in memory)")
    parser.add_argument("--tiles", default="192,128", help="tile sizes of part 1")
    parser.add_argument("--budget", default="1GB", help="whole-process budget of part 1's budgeted run")
    parser.add_argument("--size", default="960x540", help="LR WxH of part 2 (default 960x540 -> 3840x2160 at x4)")
    parser.add_argument("--max-memory", default="2GB", help="part 2's --max-memory")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-part1", action="store_true")
    parser.add_argument("--skip-part2", action="store_true")
    args = parser.parse_args()

    from litesr.checkpoint import save_safetensors
    from litesr.fast import parse_memory
    from litesr.images import Image, read_image, write_image
    from litesr.inference import upscale_tensor

    torch.set_num_threads(args.threads)
    model, weights = load_zoo_model(args.model, args.scale)
    print(f"# tiled vs untiled memory: {args.model} x{args.scale} ({weights}), {args.threads} thread(s)")
    print(f"# {machine()}")
    print(f"# at start: {load_average()}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights_file = tmp / f"{args.model}_x{args.scale}.safetensors"
        save_safetensors(model.state_dict(), weights_file)
        base = {"weights": str(weights_file), "model": args.model, "threads": args.threads}

        if not args.skip_part1:
            w, h = (int(v) for v in args.compare_size.lower().split("x"))
            np.save(tmp / "lr.npy", lr_picture(w, h))
            runs = [("untiled", {})] + [(f"tile {t}", {"tile": int(t)}) for t in args.tiles.split(",")]
            runs.append((f"max_memory {args.budget} (process)", {"budget": parse_memory(args.budget)}))
            results = {}
            for label, extra in runs:
                spec = {**base, **extra, "input": str(tmp / "lr.npy"), "output": str(tmp / f"{len(results)}.npy")}
                results[label] = (run_child(CHILD, spec), np.load(spec["output"]))
            untiled_peak, untiled = results["untiled"][0]["peak"], results["untiled"][1]
            rows = []
            for label, (info, out) in results.items():
                rows.append([label, f"{info['peak'] / 2**20:.0f}", f"{info['peak'] / untiled_peak:.2f}",
                             f"{info['seconds']:.1f}", f"{np.abs(out - untiled).max() * 255:.3f}"])
            print(f"\n## part 1: LR {w}x{h} -> {w * args.scale}x{h * args.scale}, each in a fresh process")
            print(table(["run", "peak RSS MiB", "vs untiled", "seconds", "max |diff| vs untiled (1/255)"], rows))
            print(f"# {load_average()}")

        if not args.skip_part2:
            w, h = (int(v) for v in args.size.lower().split("x"))
            lr = lr_picture(w, h)
            source, target = tmp / "big.png", tmp / "big_sr.png"
            write_image(source, Image(rgb=lr, bit_depth=8, mode="RGB", format="PNG"))
            argv = ["upscale", str(source), "-o", str(target), "--weights", str(weights_file), "--model", args.model,
                    "--max-memory", args.max_memory]
            info = run_child(CLI_CHILD, {"argv": argv, "threads": args.threads})
            budget = parse_memory(args.max_memory)
            sr = read_image(target).rgb
            # The untiled reference on a crop: 128 x 128 LR with 64 pixels of context, at offsets aligned to the
            # model's window grid (SSIU: 16), so the reference sees the windows the whole image would.
            crop, context, align = 128, 64, 16
            top = min(max(context, h // 2 - crop // 2), h - crop - context) // align * align
            left = min(max(context, w // 2 - crop // 2), w - crop - context) // align * align
            window = lr[top - context : top + crop + context, left - context : left + crop + context]
            x = torch.from_numpy(np.ascontiguousarray(window)).permute(2, 0, 1)[None]
            reference = upscale_tensor(model, x)[0].permute(1, 2, 0).numpy()
            s = args.scale
            reference = reference[context * s : (context + crop) * s, context * s : (context + crop) * s]
            reference8 = np.round(reference * 255)
            got8 = np.round(sr[top * s : (top + crop) * s, left * s : (left + crop) * s] * 255)
            levels = np.abs(got8 - reference8).max()
            print(f"\n## part 2: litesr upscale {w}x{h} -> {w * s}x{h * s} with --max-memory {args.max_memory}")
            print(table(["run", "peak RSS MiB", "budget MiB", "under budget", "seconds",
                         "max |diff| vs untiled crop (8-bit levels)"],
                        [["litesr upscale", f"{info['peak'] / 2**20:.0f}", f"{budget / 2**20:.0f}",
                          "yes" if info["peak"] < budget else "NO", f"{info['seconds']:.1f}", f"{levels:.0f}"]]))
            print(f"acceptance: peak {info['peak'] / 1e9:.3f} GB < {budget / 1e9:.3f} GB: "
                  f"{'PASS' if info['peak'] < budget else 'FAIL'}; crop within 1/255: "
                  f"{'PASS' if levels <= 1 else 'FAIL'}")
            print(f"# {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
