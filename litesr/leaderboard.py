"""The zoo side by side: parameters, MACs and PSNR of every paper variant, as a table and the plot SR papers open with.

Every figure is measured with one rule (:mod:`litesr.profile`: MACs for a 1280x720 output, re-parameterisable models
in their deploy form) next to the number the paper prints (``paper_params``, ``paper_macs``, ``paper_psnr`` of the
variant). PSNR is measured (:func:`litesr.evaluate.evaluate`: Y channel, border = scale, MATLAB bicubic LR) for the
variants with weights: litesr's shipped weights, and official checkpoints in a folder, recognised by their tensor
shapes (:func:`litesr.detect.load_model`) and matched to the paper variant with the same configuration.
"""

from __future__ import annotations

import csv
import inspect
import io
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .descriptor import describe
from .errors import ConfigError, LitesrError
from .fileio import atomic_write_text
from .registry import Variant, all_variants, count_parameters, create_model, get_arch

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")


@dataclass
class Entry:
    """One row: a model at one scale, with measured and published figures (None where unknown)."""

    name: str
    arch: str
    scale: int
    params: int | None = None
    macs: int | None = None  # measured MACs for a 1280x720 output
    paper_params: int | None = None
    paper_macs: float | None = None  # G, as published
    published: dict[str, tuple[float, float]] = field(default_factory=dict)  # dataset -> (PSNR, SSIM)
    measured: dict[str, tuple[float, float]] = field(default_factory=dict)
    weights: str = ""  # where the measured PSNR's weights came from
    latency_ms: float | None = None
    note: str = ""

    def psnr(self, dataset: str, *, measured: bool) -> float | None:
        value = (self.measured if measured else self.published).get(dataset)
        return value[0] if value else None


def normalised_config(arch: str, config: dict[str, Any]) -> dict[str, Any]:
    """The builder's defaults updated with ``config``, without ``scale``; sequences as tuples, so configs compare."""
    params = inspect.signature(get_arch(arch).builder).parameters
    full = {k: p.default for k, p in params.items() if k not in ("self", "scale") and p.default is not p.empty}
    full.update({k: v for k, v in config.items() if k != "scale"})
    return {k: tuple(v) if isinstance(v, list) else v for k, v in full.items()}


def paper_variants(scale: int | None = None) -> list[Variant]:
    """Registered variants with published figures (parameters or PSNR) at ``scale`` (any scale if None), one per
    distinct configuration: aliases such as ``swinir``/``swinir_light`` collapse to the one with published PSNR."""
    chosen: dict[tuple, Variant] = {}
    for variant in sorted(all_variants().values(), key=lambda v: v.name):
        published = set(variant.paper_params) | set(variant.paper_psnr)
        if not published or (scale is not None and scale not in published):
            continue
        key = (variant.arch, repr(sorted(normalised_config(variant.arch, variant.config).items())))
        held = chosen.get(key)
        if held is None or (bool(variant.paper_psnr), variant.name != variant.arch) > (
            bool(held.paper_psnr), held.name != held.arch
        ):
            chosen[key] = variant
    return sorted(chosen.values(), key=lambda v: v.name)


def _deploy_form(model: nn.Module) -> nn.Module:
    from .fast import fold_deploy

    try:
        return fold_deploy(model)
    except (NotImplementedError, RuntimeError):  # a to_deploy that needs real tensors: count the training form
        return model


def profile_entry(variant: Variant, scale: int) -> Entry:
    """Parameters and MACs (1280x720 output) of ``variant`` at ``scale``, counted on the meta device."""
    from .profile import count_ops, lr_size_for_output

    entry = Entry(variant.name, variant.arch, scale, paper_params=variant.paper_params.get(scale),
                  paper_macs=variant.paper_macs.get(scale), published=dict(variant.paper_psnr.get(scale, {})))
    with torch.device("meta"):
        model = _build(variant, scale)
    model = _deploy_form(model)
    entry.params = count_parameters(model)
    try:
        entry.macs = count_ops(model, lr_size_for_output((720, 1280), scale)).total_macs
    except (NotImplementedError, RuntimeError) as exc:
        # Data-dependent models cannot run on the meta device; counting them on the CPU needs real weights.
        cpu_model = _deploy_form(_build(variant, scale))
        try:
            entry.macs = count_ops(cpu_model, lr_size_for_output((720, 1280), scale)).total_macs
            entry.note = _join(entry.note, "MACs counted on a random image (data-dependent)")
        except Exception:  # noqa: BLE001 - the row stays, without MACs
            entry.note = _join(entry.note, f"MACs not counted ({type(exc).__name__})")
    return entry


def _build(variant: Variant, scale: int) -> nn.Module:
    return create_model(variant.arch, scale=scale, **variant.config)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _measure_psnr(model: nn.Module, datasets: Sequence[str], scale: int, data_root: str | os.PathLike | None,
                  device: str) -> dict[str, tuple[float, float]]:
    from .evaluate import evaluate

    results = {}
    for dataset in datasets:
        result = evaluate(model, dataset, scale, data_root=data_root, device=device)
        results[result.dataset if dataset == result.dataset else dataset] = (result.psnr, result.ssim)
    return results


def find_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Checkpoint files under ``folder`` (recursively), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such weights folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES)


def _signature(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the model's deploy form: two models of one architecture with equal signatures have the same
    configuration (the principle of :mod:`litesr.detect`), whatever form their checkpoints were saved in."""
    return {k: tuple(v.shape) for k, v in _deploy_form(model).state_dict().items()}


def _variant_signature(variant: Variant, scale: int) -> dict[str, tuple[int, ...]] | None:
    for device in ("meta", "cpu"):
        try:
            with torch.device(device):
                return _signature(_build(variant, scale))
        except Exception:  # noqa: BLE001 - a to_deploy that cannot run on meta tensors: try real ones
            continue
    return None


def _match_variant(model: nn.Module, variants: Iterable[Variant], scale: int) -> Variant | None:
    """The variant (of ``variants``) whose deploy form has the state-dict shapes of ``model``'s deploy form."""
    arch = describe(model).arch
    candidates = [v for v in variants if v.arch == arch]
    if not candidates:
        return None
    own = _signature(model)
    return next((v for v in candidates if _variant_signature(v, scale) == own), None)


def build_leaderboard(
    scale: int,
    *,
    variants: Sequence[Variant] | None = None,
    weights_dir: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    datasets: Sequence[str] = ("Set5",),
    evaluate_pretrained: bool = True,
    latency_hw: tuple[int, int] | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = lambda _: None,
) -> list[Entry]:
    """Profile ``variants`` (default: :func:`paper_variants`) at ``scale`` and measure PSNR where weights exist.

    - litesr's shipped weights (``pretrained``) are evaluated when ``evaluate_pretrained``;
    - every checkpoint under ``weights_dir`` that loads at ``scale`` is evaluated and joins the row of the paper
      variant with its configuration, or gets a row of its own (named after the file);
    - ``latency_hw``: also the fp32 latency (median of 3 after a warm-up) on an LR input of that size, random weights.

    PSNR needs ``data_root`` (or ``$LITESR_DATA_ROOT``) holding ``datasets``; without weights there is none to
    measure. Rows keep going when one model fails: the reason lands in its ``note``.
    """
    from .detect import load_model
    from .fast import fold_deploy
    from .profile import measure_latency

    chosen = list(variants) if variants is not None else paper_variants(scale)
    chosen = [v for v in chosen if scale in get_arch(v.arch).scales]
    entries: dict[str, Entry] = {}
    for variant in chosen:
        log(f"profiling {variant.name} x{scale}")
        try:
            entries[variant.name] = profile_entry(variant, scale)
        except Exception as exc:  # noqa: BLE001 - one broken model must not sink the leaderboard
            entries[variant.name] = Entry(variant.name, variant.arch, scale, note=f"not profiled: {_one_line(exc)}")
            continue
        entry = entries[variant.name]
        if latency_hw is not None:
            model = fold_deploy(_build(variant, scale))
            entry.latency_ms = measure_latency(model, latency_hw, runs=3, warmup=1).median_ms
        if evaluate_pretrained and scale in variant.pretrained:
            log(f"evaluating litesr weights of {variant.name} x{scale}")
            model = create_model(variant.name, scale=scale, pretrained=True)
            _evaluate_into(entry, model, datasets, scale, data_root, device, f"litesr {variant.pretrained[scale]}")

    if weights_dir is not None:
        for path in find_checkpoints(weights_dir):
            try:
                model = load_model(path)
            except (LitesrError, RuntimeError) as exc:
                log(f"skipped {path.name}: {_one_line(exc)[:120]}")
                continue
            descriptor = describe(model)
            if descriptor.scale != scale:
                if not descriptor.multi_scale or scale not in get_arch(descriptor.arch).scales:
                    log(f"skipped {path.name}: x{model.scale}")
                    continue
                model.set_scale(scale)
            variant = _match_variant(model, chosen, scale)
            if variant is not None and not entries[variant.name].measured:
                entry = entries[variant.name]
            else:
                arch = descriptor.arch
                known = variant or _match_variant(model, all_variants().values(), scale)
                entry = Entry(f"{known.name if known else arch} ({path.name})", arch, scale)
                deployed = _deploy_form(model)
                entry.params = count_parameters(deployed)
                try:
                    from .profile import count_ops, lr_size_for_output

                    entry.macs = count_ops(deployed, lr_size_for_output((720, 1280), scale)).total_macs
                except Exception as exc:  # noqa: BLE001
                    entry.note = _join(entry.note, f"MACs not counted ({type(exc).__name__})")
                entries[entry.name] = entry
            log(f"evaluating {path.name} as {entry.name}")
            _evaluate_into(entry, model, datasets, scale, data_root, device, str(path.name))
    return list(entries.values())


def _evaluate_into(entry: Entry, model: nn.Module, datasets: Sequence[str], scale: int,
                   data_root: str | os.PathLike | None, device: str, source: str) -> None:
    try:
        entry.measured = _measure_psnr(model, datasets, scale, data_root, device)
        entry.weights = source
    except LitesrError as exc:
        entry.note = _join(entry.note, f"not evaluated: {_one_line(exc)}")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


# ------------------------------------------------------------------------------------------------------------ output


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def table_rows(entries: Sequence[Entry], datasets: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """Header and rows (strings), sorted by measured MACs; PSNR/SSIM published and measured per dataset."""
    header = ["model", "scale", "params (K)", "paper params (K)", "MACs (G, 1280x720)", "paper MACs (G)"]
    for dataset in datasets:
        header += [f"{dataset} paper PSNR/SSIM", f"{dataset} measured PSNR/SSIM"]
    header += ["latency (ms)", "weights", "note"]
    rows = []
    for e in sorted(entries, key=lambda e: (e.macs is None, e.macs or 0, e.name)):
        row = [e.name, f"x{e.scale}", _fmt(e.params / 1e3 if e.params is not None else None, 1),
               _fmt(e.paper_params / 1e3 if e.paper_params is not None else None, 1),
               _fmt(e.macs / 1e9 if e.macs is not None else None, 1), _fmt(e.paper_macs, 1)]
        for dataset in datasets:
            for source in (e.published, e.measured):
                value = source.get(dataset)
                row.append(f"{value[0]:.2f}/{value[1]:.4f}" if value else "")
        row += [_fmt(e.latency_ms, 1), e.weights, e.note]
        rows.append(row)
    return header, rows


def to_markdown(entries: Sequence[Entry], datasets: Sequence[str]) -> str:
    header, rows = table_rows(entries, datasets)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def to_csv(entries: Sequence[Entry], datasets: Sequence[str]) -> str:
    header, rows = table_rows(entries, datasets)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def plot_leaderboard(entries: Sequence[Entry], path_stem: str | os.PathLike, *, dataset: str = "Set5",
                     title: str | None = None) -> list[Path]:
    """PSNR on ``dataset`` against parameters and against MACs (log axes): published PSNR as open circles, measured
    as filled ones, joined when a model has both; x is litesr's count for both. Writes ``<stem>.png`` and ``.svg``."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LitesrError("the leaderboard plot needs matplotlib: pip install matplotlib (or pass --no-plot)") from None
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    scales = sorted({e.scale for e in entries})
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    panels = ((axes[0], "params", "parameters (K)", 1e3), (axes[1], "macs", "Mult-Adds for a 1280x720 output (G)", 1e9))
    values = [v for e in entries for v in (e.psnr(dataset, measured=False), e.psnr(dataset, measured=True))
              if v is not None]
    published_values = [v for e in entries if (v := e.psnr(dataset, measured=False)) is not None]
    # The y range follows the published models; a far worse checkpoint (an unofficial GAN generator, a broken
    # file) is drawn as a triangle on the bottom edge, with its value in the label, instead of squashing the rest.
    floor = (min(published_values) - 0.6) if published_values else (min(values) - 0.2 if values else 0.0)
    top = max(values) + 0.15 if values else 1.0
    plotted = 0
    for ax, attribute, label, unit in panels:
        for e in entries:
            x = getattr(e, attribute)
            published, measured = e.psnr(dataset, measured=False), e.psnr(dataset, measured=True)
            if x is None or x <= 0 or (published is None and measured is None):
                continue
            x = x / unit
            if published is not None and measured is not None:
                ax.plot([x, x], [published, max(measured, floor)], color="0.6", linewidth=0.8, zorder=1)
            if published is not None:
                ax.scatter([x], [published], s=30, facecolors="none", edgecolors="tab:blue", zorder=2)
            text = e.name.split(" (")[0] if published is not None else e.name
            if measured is not None and measured < floor:
                ax.scatter([x], [floor + 0.03], s=34, marker="v", color="tab:orange", zorder=3)
                text += f" ({measured:.2f} dB)"
            elif measured is not None:
                ax.scatter([x], [measured], s=30, color="tab:orange", zorder=3)
            y = max(measured if measured is not None else published, floor + 0.03)
            ax.annotate(text, (x, y), fontsize=6, xytext=(3, 2), textcoords="offset points")
            plotted += 1
        ax.set_ylim(floor, top)
        ax.set_xscale("log")
        ax.set_xlabel(label + " (litesr count)")
        ax.set_ylabel(f"{dataset} PSNR (dB, Y)")
        ax.grid(True, which="both", alpha=0.3)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="tab:blue",
                   label="published PSNR"),
        plt.Line2D([], [], marker="o", linestyle="", color="tab:orange", label="measured PSNR (litesr eval)"),
    ]
    axes[1].legend(handles=handles, loc="lower right", fontsize=8)
    fig.suptitle(title or f"{dataset} x{'/x'.join(map(str, scales))}: PSNR against size and compute")
    fig.tight_layout()
    written = []
    for suffix in (".png", ".svg"):
        target = stem.with_suffix(suffix)
        fig.savefig(target, dpi=150)
        written.append(target)
    plt.close(fig)
    if not plotted:
        raise LitesrError(f"no model has a {dataset} PSNR (published or measured) to plot")
    return written


def write_leaderboard(entries: Sequence[Entry], output_dir: str | os.PathLike, *, datasets: Sequence[str] = ("Set5",),
                      plot: bool = True, name: str = "leaderboard") -> list[Path]:
    """``<name>.md``, ``<name>.csv`` and (with ``plot``) ``<name>.png``/``.svg`` in ``output_dir``."""
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, text in ((".md", to_markdown(entries, datasets)), (".csv", to_csv(entries, datasets))):
        target = folder / f"{name}{suffix}"
        atomic_write_text(target, text)
        written.append(target)
    if plot:
        written += plot_leaderboard(entries, folder / name, dataset=datasets[0])
    return written


__all__ = [
    "Entry",
    "build_leaderboard",
    "paper_variants",
    "plot_leaderboard",
    "profile_entry",
    "to_csv",
    "to_markdown",
    "write_leaderboard",
]
