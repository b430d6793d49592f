"""Helpers shared by the benchmark scripts: where ../shared is, the four models of the efficiency issue with official
weights where they exist, reference implementations, and timing that alternates contenders (A B C A B C ...) so that
load changes on a shared machine hit every contender alike."""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LITESR_SHARED", REPO.parent / "shared"))

# model -> official checkpoint per scale (under SHARED/weights); models without one run with random weights.
OFFICIAL = {
    "imdn": {2: "IMDN/IMDN_x2.pth", 3: "IMDN/IMDN_x3.pth", 4: "IMDN/IMDN_x4.pth"},
    "rlfn": {2: "RLFN/rlfn_x2.pth", 4: "RLFN/rlfn_x4.pth"},
}
ISSUE_MODELS = ("imdn", "rlfn", "ssiu", "swinir_light")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min) on {os.cpu_count()} CPUs"


def machine() -> str:
    from litesr.device import choose_precision, describe_cpu

    return (f"{describe_cpu()}, torch {torch.__version__}, {torch.get_num_threads()} threads, CPU capability "
            f"{torch.backends.cpu.get_cpu_capability()}; {choose_precision('auto', 'cpu')}")


def load_zoo_model(name: str, scale: int, seed: int = 0) -> tuple[nn.Module, str]:
    """The model with official weights where /shared has them, else the weights litesr ships (SSIU x2), else seeded
    random weights; and which it is."""
    from litesr import create_model, get_variant, load_model

    relative = OFFICIAL.get(name, {}).get(scale)
    if relative and (SHARED / "weights" / relative).is_file():
        return load_model(SHARED / "weights" / relative, model=name, scale=scale).eval(), f"official {relative}"
    shipped = get_variant(name).pretrained.get(scale)
    if shipped:
        return create_model(name, scale=scale, pretrained=True).eval(), f"litesr {shipped}"
    torch.manual_seed(seed)
    return create_model(name, scale=scale).eval(), f"random weights (seed {seed})"


def stub_torchvision() -> None:
    """spandrel imports torchvision.transforms.functional, which does not install with this torch: the tests' stub."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from torchvision_stub import stub_torchvision as install

    install()


class _Contract(nn.Module):
    """A plain module dressed with a litesr model's contract, so ``run_model`` feeds it the same way."""

    def __init__(self, inner: nn.Module, like: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        for attribute in ("input_range", "color_space", "pad_multiple", "scale"):
            setattr(self, attribute, getattr(like, attribute))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


def reference_model(name: str, model: nn.Module) -> tuple[nn.Module, str]:
    """The plain fp32 eager reference with ``model``'s weights: spandrel's implementation where it has the
    architecture (SwinIR), else a fresh litesr module of the official structure (same state-dict names and
    order of operations as the official code), run as is."""
    from litesr import create_model

    arch = getattr(model, "litesr_arch", name)
    config = dict(getattr(model, "litesr_config", {}))
    if arch == "swinir":
        try:
            stub_torchvision()
            from spandrel.architectures.SwinIR import SwinIR as Reference

            upsampler = config.get("upsampler", "pixelshuffledirect")
            reference = Reference(img_size=64, in_chans=3, embed_dim=config.get("embed_dim", 60),
                                  depths=list(config.get("depths", (6, 6, 6, 6))),
                                  num_heads=list(config.get("num_heads", (6, 6, 6, 6))),
                                  window_size=config.get("window_size", 8), mlp_ratio=config.get("mlp_ratio", 2.0),
                                  upscale=config["scale"], img_range=1.0, upsampler=upsampler,
                                  resi_connection=config.get("resi_connection", "1conv"))
            state = {k: v for k, v in model.state_dict().items()}
            own = reference.state_dict()
            state = {k: state.get(k, own[k]) for k in own}  # derived buffers (masks) as spandrel computes them
            reference.load_state_dict(state, strict=True)
            return _Contract(reference.eval(), model), "spandrel 0.4.2 SwinIR (official code), fp32 eager"
        except ImportError:
            pass
    fresh = create_model(arch, **config).eval()
    fresh.load_state_dict(model.state_dict())
    return fresh, "official-structure module (litesr), fp32 eager"


@dataclass
class Timings:
    """Per contender: every timed run in seconds; medians and ratios."""

    runs: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return statistics.median(self.runs[name])

    def ratio(self, slower: str, faster: str) -> float:
        return self.median(slower) / self.median(faster)


def alternate(contenders: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> Timings:
    """Warm every contender up, then time them in turn, ``rounds`` times (A B C A B C ...)."""
    for _ in range(warmup):
        for fn in contenders.values():
            fn()
    timings = Timings({name: [] for name in contenders})
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            timings.runs[name].append(time.perf_counter() - start)
    return timings


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    return "\n".join(lines)


def set5_psnr(model: nn.Module, scale: int) -> float | None:
    """Mean Set5 PSNR (Y, border = scale, MATLAB bicubic LR) of ``model``, or None when /shared has no Set5."""
    from litesr.evaluate import evaluate

    root = SHARED / "datasets"
    if not (root / "Set5").is_dir():
        return None
    return evaluate(model, "Set5", scale, data_root=root).psnr
