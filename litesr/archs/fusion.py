"""Network fusion: several trained SR models run on the same LR image and a learned layer fuses their outputs.

    model:
      type: fusion
      scale: 2
      members:
        - {name: rdesa_s, weights: runs/rdesa_s_x2/net_last.safetensors}
        - {name: imdn, weights: IMDN_x2.pth}
      freeze_members: true          # train the fusion layer only (false: fine-tune the members too)

Each member runs through litesr's one run path (its own input range, colour space and size multiple), so members of
different architectures mix. The fusion layer is a 3x3 conv from the concatenated member outputs (3 * M channels) to a
residual added to the members' mean; it starts at zero, so the untrained fusion is exactly the average of the members
and training can only move it from there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..forward import run_model
from .base import SRModel


class FusionSR(SRModel):
    """Members (frozen or trainable) and a zero-initialised residual fusion conv on their outputs."""

    input_range = 1.0
    color_space = "rgb"
    pad_multiple = 1

    def __init__(self, members: Sequence[nn.Module], scale: int, *, freeze_members: bool = True) -> None:
        super().__init__()
        self.scale = scale
        self.members = nn.ModuleList(members)
        self.freeze_members = freeze_members
        if freeze_members:
            self.members.requires_grad_(False)
        self.fuse = nn.Conv2d(3 * len(members), 3, 3, padding=1)
        nn.init.zeros_(self.fuse.weight)
        nn.init.zeros_(self.fuse.bias)

    def train(self, mode: bool = True) -> FusionSR:
        super().train(mode)
        if self.freeze_members:
            self.members.eval()  # frozen members keep their inference behaviour (BatchNorm statistics, dropout)
        return self

    def forward(self, x: Tensor) -> Tensor:
        outs = [run_model(member, x) for member in self.members]
        stacked = torch.cat(outs, dim=1)
        return torch.stack(outs).mean(dim=0) + self.fuse(stacked)


def build_fusion(members: Sequence[Mapping[str, Any]], scale: int, *, freeze_members: bool = True) -> FusionSR:
    """Load each member ``{name, weights, options}`` (strict, shapes checked, scale checked) and wrap them."""
    from ..detect import load_model
    from ..errors import CheckpointError, ConfigError

    nets = []
    for i, member in enumerate(members):
        try:
            net = load_model(member["weights"], str(member["name"]), scale=scale, **(member.get("options") or {}))
        except (CheckpointError, ConfigError) as exc:
            raise ConfigError(f"model.members[{i}]: {exc}") from None
        nets.append(net)
    return FusionSR(nets, scale, freeze_members=freeze_members)
