"""Memory budgets (litesr.memory): size parsing, resident-memory calibration, tiles sized to a budget."""

from __future__ import annotations

import pytest
import torch

import litesr
import litesr.memory as memory
from litesr.errors import ConfigError
from litesr.inference import upscale_tensor
from litesr.memory import tile_for_memory
from litesr.registry import get_arch


def tiny(name: str, scale: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return litesr.create_model(name, scale=scale, **get_arch(name).tiny).eval()


def image(h: int = 20, w: int = 24, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("text,expected", [("2GB", 2 * 10**9), ("1.5GiB", 3 * 2**29), ("512 MB", 512 * 10**6),
                                           ("800M", 800 * 10**6), ("4096", 4096), (1000, 1000)])
def test_parse_memory(text, expected):
    assert memory.parse_memory(text) == expected


@pytest.mark.parametrize("text", ["two gigs", "2XB", "0GB", ""])
def test_parse_memory_refuses_nonsense(text):
    with pytest.raises(ConfigError, match="memory"):
        memory.parse_memory(text)


def test_process_budget_sizes_tiles_from_measured_resident_memory():
    model = tiny("imdn")
    calibration = memory.rss_per_pixel(model)
    if calibration is None:
        pytest.skip("the peak RSS cannot be reset here (not Linux)")
    per_pixel, fixed = calibration
    assert per_pixel > 100 and fixed >= 0  # 16 channels: at least a few float maps per pixel
    rss = memory.current_rss()
    assert memory.tile_for_process(model, (64, 64), rss + 2**30) is None  # a gigabyte more: one pass
    generous = memory.tile_for_process(model, (1000, 1000), rss + 512 * 2**20)
    tight = memory.tile_for_process(model, (1000, 1000), rss + 384 * 2**20)
    assert generous is not None and tight is not None and 32 <= tight < generous
    with pytest.raises(ConfigError, match="too small"):
        memory.tile_for_process(model, (1000, 1000), rss + 2**20, precision="fp32")


def test_smaller_budgets_give_smaller_tiles_and_the_same_picture():
    model = tiny("imdn")
    x = image(96, 120)
    tiles = []
    budget = 2**30
    while True:  # halve the budget until not even the smallest tile fits
        try:
            tiles.append((budget, tile_for_memory(model, (1, 96, 120), budget)))
        except ConfigError:
            break
        budget //= 2
    sides = [side for _, side in tiles]
    assert sides[0] is None  # a large budget: one pass
    chosen = [side for side in sides if side is not None]
    assert len(set(chosen)) >= 2 and chosen == sorted(chosen, reverse=True) and chosen[-1] >= 16
    budget = next(b for b, side in tiles if side is not None)  # the largest tile: few tiles, a fast test
    whole = upscale_tensor(model, x)
    budgeted = upscale_tensor(model, x, max_memory=budget, tile_overlap=16)
    assert (budgeted - whole).abs().max().item() <= 1 / 255
