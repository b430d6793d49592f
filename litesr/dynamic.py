"""MACs actually spent by dynamic-inference models on one image (PCSR pixel routing, SMSR sparse masks, ARM's
per-patch subnets within a budget).

A dynamic model's cost depends on the image: PCSR sends each HR pixel to a light or a heavy upsampler, SMSR computes
its sparse channels only at the pixels its spatial masks keep. :func:`mac_report` runs the model on the real image on
the CPU under litesr's operation counter (:class:`litesr.profile.OpCounter`, the same MAC rule as ``litesr
profile``), then again inside the model's ``full_cost()`` context (every pixel heavy, every mask on), and reports
both, their difference (the MACs skipped) and the routing counts the model kept in ``last_routing``.
:func:`apply_budget` sets an ARM model's MAC budget (``litesr upscale/profile --budget``).

A model is dynamic when it has a ``full_cost`` context manager; ``litesr profile --input photo.png`` prints this
report for it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .descriptor import describe
from .forward import run_model
from .profile import OpCounter


def is_dynamic(model: nn.Module) -> bool:
    """Whether ``model``'s MACs depend on its input (it declares a ``full_cost()`` context)."""
    return callable(getattr(model, "full_cost", None))


@dataclass
class MacReport:
    model: str
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    spent_macs: int
    full_macs: int
    spent_by_operator: dict[str, int] = field(default_factory=dict)
    routing: dict[str, int] = field(default_factory=dict)

    @property
    def skipped_macs(self) -> int:
        return self.full_macs - self.spent_macs

    @property
    def spent_fraction(self) -> float:
        return self.spent_macs / self.full_macs if self.full_macs else 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["skipped_macs"] = self.skipped_macs
        d["spent_fraction"] = self.spent_fraction
        return d


def _count(model: nn.Module, x: Tensor) -> tuple[dict[str, int], dict[str, int]]:
    counter = OpCounter()
    with torch.no_grad(), counter:
        run_model(model, x)
    return dict(counter.macs), dict(getattr(model, "last_routing", {}) or {})


def mac_report(model: nn.Module, x: Tensor, name: str | None = None) -> MacReport:
    """MACs ``model`` spends on RGB ``x`` ((1, 3, H, W) in [0, 1]) and those it would spend without routing/masks.

    Runs on the CPU in fp32 (the counter needs real data: routing reads pixel values).
    """
    from .errors import ConfigError

    if not is_dynamic(model):
        raise ConfigError(f"{name or type(model).__name__} is not a dynamic-inference model: its MACs do not depend "
                          "on the image (litesr profile without --input gives them)")
    if x.dim() == 3:
        x = x.unsqueeze(0)
    was_training = model.training
    model = model.eval().cpu()
    x = x.float().cpu()
    prepare = getattr(model, "prepare_routing", None)
    if callable(prepare):  # ARM counts its subnets' costs once; outside the counter, so they are not charged
        prepare(x)
    try:
        spent, routing = _count(model, x)
        with model.full_cost():
            full, _ = _count(model, x)
    finally:
        model.train(was_training)
    scale = describe(model).scale
    h, w = x.shape[-2:]
    return MacReport(name or describe(model).label, (h, w), (h * scale, w * scale), sum(spent.values()),
                     sum(full.values()), spent, routing)


def image_mac_report(model: nn.Module, path: str, name: str | None = None) -> MacReport:
    """:func:`mac_report` of the image file ``path`` (gray images are repeated to RGB; alpha is ignored)."""
    from .images import read_image

    image = read_image(path)
    rgb = torch.from_numpy(image.rgb).permute(2, 0, 1)
    if rgb.shape[0] == 1:
        rgb = rgb.expand(3, -1, -1)
    return mac_report(model, rgb.unsqueeze(0).contiguous(), name)


def is_anytime(model: nn.Module) -> bool:
    """Whether ``model`` takes a MAC budget (ARM supernets: ``set_budget``)."""
    return callable(getattr(model, "set_budget", None))


def apply_budget(model: nn.Module, budget: str, *, name: str, weights: str | os.PathLike | None = None,
                 table: str | os.PathLike | None = None) -> None:
    """Route ``model``'s patches within ``budget`` (``"0.5"``, ``"50%"`` of the full-width MACs, or ``"1.5G"``).

    The edge-to-PSNR table comes from ``table``, else from the official training-state file beside the weights
    (``arm-fsrcnn.pth`` -> ``arm-fsrcnn.state``). Errors name ``--budget`` and say what is wrong.
    """
    from .archs._arm_ops import parse_budget
    from .errors import ConfigError

    parse_budget(budget)  # a bad value is refused first, whatever the model
    if not is_anytime(model):
        raise ConfigError(f"--budget: {name} is not an any-time ARM model (arm_fsrcnn, arm_carn, arm_srresnet); "
                          "its MACs do not follow a budget")
    if getattr(model, "table", None) is None:
        path = Path(table) if table is not None else Path(weights).with_suffix(".state") if weights else None
        if path is None or not path.is_file():
            where = f"{path} not found" if path is not None else "no --weights given"
            raise ConfigError(f"--budget: {name} needs ARM's edge-to-PSNR lookup table, the official <stem>.state "
                              f"beside the weights or --arm-table FILE ({where})")
        model.load_lookup_table(path)
    model.set_budget(budget)


def parse_projection(spec: str) -> tuple[list[float] | None, Path | None, int | None]:
    """``--gradient-projection``: ``"2.5,6,11"`` (edges), ``DIR`` or ``DIR:BANDS`` (HR training images)."""
    from .errors import ConfigError

    try:
        return [float(v) for v in spec.split(",")], None, None
    except ValueError:
        pass
    folder, _, bands = spec.rpartition(":") if ":" in spec and spec.rsplit(":", 1)[1].isdigit() else (spec, "", "")
    path = Path(folder)
    if not path.is_dir():
        raise ConfigError(f"--gradient-projection {spec}: neither comma-separated edges (2.5,6,11) nor a folder of "
                          "HR training images (DIR or DIR:BANDS)")
    return None, path, int(bands) if bands else None


def apply_gradient_projection(model: nn.Module, spec: str, *, name: str) -> list[float]:
    """Route ``model``'s patches by texture (``set_gradient_projection``, docs/wbsr.md): explicit edges, or the HES
    edges of a folder of HR training images bicubic-downscaled by the model's scale (default one band per subnet,
    bicubic not used). Returns the edges."""
    from .errors import ConfigError

    edges, folder, bands = parse_projection(spec)  # a bad value is refused first, whatever the model
    if not callable(getattr(model, "set_gradient_projection", None)):
        raise ConfigError(f"--gradient-projection: {name} is not an ARM supernet (arm_fsrcnn, arm_carn, "
                          "arm_srresnet); it has no subnets to route to")
    if folder is not None:
        from .archs.arm import gradient_projection_edges
        from .data.files import find_images, read_rgb_uint8
        from .imresize import bicubic_downsample_uint8

        lr_images = [bicubic_downsample_uint8(read_rgb_uint8(p), model.scale) for p in find_images(folder)]
        levels = bands if bands is not None else len(model.widths) - 1
        if not 2 <= levels <= len(model.widths):
            raise ConfigError(f"--gradient-projection {spec}: {name} routes to 2..{len(model.widths)} bands, "
                              f"not {levels}")
        edges = [float(e) for e in gradient_projection_edges(model, lr_images, levels)]
    model.set_gradient_projection(edges)
    return list(edges or [])
