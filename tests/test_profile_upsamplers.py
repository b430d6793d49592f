"""`litesr profile --upsampler NAME`: each upsampler block's parameters and MACs, as the CLI prints them."""

from __future__ import annotations

import re

import pytest

from litesr.cli import main
from litesr.registry import count_parameters
from litesr.upsamplers import build_upsampler, get_upsampler, list_upsamplers


def _profile(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, int, str]:
    assert main(["profile", *args]) == 0
    line = capsys.readouterr().out
    found = re.search(r"([\d,]+) parameters, ([\d,]+) MACs .*output (\(.*\))", line)
    assert found, line
    return int(found[1].replace(",", "")), int(found[2].replace(",", "")), found[3]


@pytest.mark.parametrize("name", list_upsamplers())
def test_every_upsampler_block_is_profiled(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    scales = [2, 3, 4] + ([2.5] if get_upsampler(name).fractional else [])
    for scale in scales:
        params, macs, shape = _profile(capsys, "--upsampler", name, "--scale", f"{scale:g}", "--channels", "8",
                                       "--latency-size", "10x6")
        assert params == count_parameters(build_upsampler(name, 8, scale, 3))
        assert macs > 0
        assert shape == str((3, round(6 * scale), round(10 * scale)))


def test_pixelshuffle_macs_are_the_convolution_s(capsys: pytest.CaptureFixture[str]) -> None:
    """One 3x3 conv from 8 to 3 * s^2 channels on the LR map, then a free shuffle: 8 * 9 * 27 MACs per LR pixel."""
    params, macs, _ = _profile(capsys, "--upsampler", "pixelshuffle", "--scale", "3", "--channels", "8",
                               "--latency-size", "10x6")
    assert params == 8 * 9 * 27 + 27
    assert macs == 8 * 9 * 27 * 60


def test_unknown_upsampler_is_one_line_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "--upsampler", "pixelshufle"]) != 0
    assert "did you mean pixelshuffle" in capsys.readouterr().err
