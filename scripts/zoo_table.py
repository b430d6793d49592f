"""Print the README's parameter table: every variant with a published count, counted the ways papers count.

    python scripts/zoo_table.py > /tmp/zoo.md
"""

from __future__ import annotations

import torch

import litesr
from litesr.registry import all_variants


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


if __name__ == "__main__":
    main()
