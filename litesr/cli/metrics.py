"""``litesr metrics``: the registered image quality metrics, which way is better, and what each is calibrated to."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("metrics", help="list the image quality metrics (for litesr eval --metric)",
                       description="List the registered metrics: name, better direction, colour planes, the "
                                   "reference implementation each is calibrated against. See docs/metrics.md.")
    p.add_argument("pattern", nargs="?", default=None, help="glob on the names, e.g. 'fsim*'")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError
    from ..metrics import list_metrics, metric_class

    names = list_metrics(args.pattern)
    if not names:
        raise ConfigError(f"no metric matches {args.pattern!r} (known: {', '.join(list_metrics())})")
    table = Table(title="litesr metrics")
    for col in ("name", "better", "kind", "colour (default)", "calibrated against", "what"):
        table.add_column(col)
    for name in names:
        d = metric_class(name).describe()
        table.add_row(d["name"], d["better"], d["kind"], f"{d['colors']} ({d['default_color']})", d["reference"],
                      d["summary"])
    Console().print(table)
    return 0


def add_metric_arguments(p: argparse.ArgumentParser) -> None:
    """``--metric NAME`` (repeatable, comma lists, ``all``) and ``--metric-weights NAME=FILE`` for ``litesr eval``."""
    p.add_argument("--metric", action="append", default=None, metavar="NAME",
                   help="extra metric column(s): repeatable or comma-separated (ms_ssim,gmsd,fsim,niqe,...); 'all' = "
                        "every metric usable with the weights given; see `litesr metrics`")
    p.add_argument("--metric-weights", action="append", default=None, metavar="NAME=FILE",
                   help="weights of a learned metric (lpips=heads.pth, repeat for the backbone file) or NIQE's "
                        "pristine model (niqe=model.npz); never downloaded")


def build_metrics(args: argparse.Namespace) -> list:
    """The metric objects ``--metric`` asks for (PSNR/SSIM are always in the table), built before any model runs."""
    return create_metrics(args.metric, args.metric_weights, color="rgb" if args.rgb else None,
                          skip=("psnr", "ssim"))


def create_metrics(metric_items: list[str] | None, weight_items: list[str] | None, *, color: str | None = None,
                   crop: int = 0, skip: tuple[str, ...] = (), reference: bool = True) -> list:
    """Metric objects for ``--metric`` items (comma lists, ``all`` = every metric usable without more files: the
    no-reference ones too, and the learned/NIQE ones whose ``--metric-weights`` are given) and ``--metric-weights
    NAME=FILE`` items. ``color`` applies to the metrics that offer it; ``reference=False``: only no-reference metrics
    (no HR images), a full-reference one is an error. Typos and missing files fail here, before any work."""
    from ..errors import ConfigError
    from ..metrics import create_metric, list_metrics, metric_class
    from ..registry_base import normalize_name

    weights: dict[str, list[str]] = {}
    for item in weight_items or []:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise ConfigError(f"--metric-weights {item!r}: expected NAME=FILE")
        weights.setdefault(normalize_name(metric_class(name).name), []).append(path)
    asked = [normalize_name(n) for item in metric_items or [] for n in item.split(",") if n.strip()]
    names: list[str] = []
    for n in asked:
        if n == "all":
            names += [m for m in list_metrics() if (reference or metric_class(m).no_reference)
                      and ("weights" not in _options(m) or m in weights)]
        else:
            names.append(metric_class(n).name)
    names = [n for n in dict.fromkeys(names) if n not in skip]
    for n in weights:
        if n not in names:
            raise ConfigError(f"--metric-weights {n}=...: metric {n} is not asked for with --metric")
    if not reference:
        full = [n for n in names if not metric_class(n).no_reference]
        if full:
            raise ConfigError(f"--metric {', '.join(full)}: full-reference, needs HR images; without them only "
                              f"{', '.join(m for m in list_metrics() if metric_class(m).no_reference)} apply")
    built = []
    for n in names:
        options: dict = {}
        if "weights" in _options(n):
            options["weights"] = weights.get(n)
        if color is not None and color in metric_class(n).colors:
            options["color"] = color
        if crop:
            options["crop"] = crop
        built.append(create_metric(n, **options))
    return built


def _options(name: str) -> list[str]:
    import inspect

    from ..metrics import metric_class

    return list(inspect.signature(metric_class(name).__init__).parameters)


def metric_cells(result, metrics: list) -> list[str]:
    """The mean of each extra metric over a dataset result's images, formatted for the table."""
    return [f"{result.score(m.name):.4f}" for m in metrics]
