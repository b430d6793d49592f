"""Print the README's parameter tables: every variant with a published count, counted the ways papers count.

    python scripts/zoo_table.py > /tmp/zoo.md
    python scripts/zoo_table.py --macs smfanet hit_srf   # params and GMACs (1280x720 output) x2 / x3 / x4 rows
"""

from __future__ import annotations

import argparse

import torch

import litesr
from litesr.errors import ConfigError
from litesr.leaderboard import profile_entry
from litesr.registry import all_variants, get_variant


def counts(name: str, scale: int) -> tuple[int, int, int | None]:
    with torch.device("meta"):
        model = litesr.create_model(name, scale=scale)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    deploy = None
    if hasattr(model, "to_deploy"):
        with torch.device("meta"):
            deploy = sum(p.numel() for p in model.to_deploy().parameters())
    return total, trainable, deploy


def main() -> None:
    print("| variant | scale | parameters (all) | trainable | deploy form | published | description |")
    print("|---|---|---|---|---|---|---|")
    for name, variant in sorted(all_variants().items()):
        for scale, published in sorted(variant.paper_params.items()):
            total, trainable, deploy = counts(name, scale)
            cells = [name, f"x{scale}", f"{total:,}", f"{trainable:,}" if trainable != total else "=",
                     f"{deploy:,}" if deploy is not None else "-", f"{published:,}", variant.description]
            print("| " + " | ".join(cells) + " |")


def _published(values: dict[int, float], scales: list[int], fmt: str) -> str:
    shown = [format(values[s], fmt) for s in scales if s in values]
    return " / ".join(shown) if shown else "not printed"


def macs_rows(names: list[str]) -> None:
    """The newer-anchors table: litesr's parameters and MACs next to the published ones, per scale."""
    print("| variant | params x2 / x3 / x4 | published | GMACs x2 / x3 / x4 (litesr) | published |")
    print("|---|---|---|---|---|")
    for name in names:
        variant = get_variant(name)
        entries = []
        for s in (2, 3, 4):
            if s not in litesr.registry.get_arch(variant.arch).scales:
                continue
            try:
                entries.append(profile_entry(variant, s))
            except ConfigError:  # a variant narrower than its architecture (ESC-Real: x4 only)
                continue
        scales = [e.scale for e in entries]
        params = " / ".join(f"{e.params:,}" for e in entries)
        macs = " / ".join(f"{e.macs / 1e9:.1f}" if e.macs else "-" for e in entries)
        label = name if scales == [2, 3, 4] else f"{name} (x{'/x'.join(map(str, scales))})"
        print(f"| {label} | {params} | {_published(variant.paper_params, scales, ',')} | {macs} | "
              f"{_published(variant.paper_macs, scales, 'g')} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--macs", nargs="+", metavar="VARIANT", help="print the params/MACs rows of these variants")
    args = parser.parse_args()
    if args.macs:
        macs_rows(args.macs)
    else:
        main()
