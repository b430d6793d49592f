"""Helpers for the checkpoint-form tests: zoo models in small configurations, a consistent random renaming."""

from __future__ import annotations

import random
import re

import torch
from torch import nn

from litesr.registry import create_model

# Real zoo architectures in small configurations (other depths than their tiny templates: depth must be read too).
ZOO = {
    "rfdn": {"scale": 4, "nf": 16, "num_modules": 3},
    "imdn": {"scale": 2, "nf": 16, "num_modules": 3},
    "rlfn": {"scale": 3, "feature_channels": 16, "num_blocks": 3, "esa_channels": 8},
    "vdsr": {"num_layers": 6, "num_feat": 8},
    "edsr": {"scale": 4, "n_resblocks": 3, "n_feats": 8, "res_scale": 1.0},  # res_scale: not in the shapes
    "swinir": {"embed_dim": 12, "depths": (2, 2, 2), "num_heads": (2, 2, 2), "window_size": 4, "img_size": 16},
}


def zoo_model(arch: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model(arch, **ZOO[arch]).eval()


def sample_input(model: nn.Module, size: int = 16, channels: int = 3) -> torch.Tensor:
    return torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(1))


def rename_blocks(state_dict: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Every letter run of every module name replaced by a random word, the same word for the same run everywhere
    (``B1.c1_r`` -> ``qzk1.wpt1xa``); numbers stay, as in the renamed forks and challenge submissions."""
    rng = random.Random(seed)
    words: dict[str, str] = {}

    def word(m: re.Match) -> str:
        return words.setdefault(m.group(), "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(5)))

    out = {}
    for key, value in state_dict.items():
        *modules, leaf = key.split(".")
        out[".".join([re.sub(r"[A-Za-z_]+", word, m) for m in modules] + [leaf])] = value
    return out


@torch.no_grad()
def same_outputs(a: nn.Module, b: nn.Module) -> bool:
    x = sample_input(a, channels=1 if getattr(a, "num_channels", 3) == 1 else 3)
    try:
        expected = a.eval()(x)
    except RuntimeError:  # a Y-channel model
        x = sample_input(a, channels=1)
        expected = a.eval()(x)
    return torch.equal(expected, b.eval()(x))
