"""litesr.upsamplers: every block's output shape and MAC count, the formulas behind them, and swappable zoo tails."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from litesr.archs.fsrcnn import FSRCNN
from litesr.data.train import make_synthetic_set
from litesr.errors import ConfigError
from litesr.profile import count_ops
from litesr.registry import create_model
from litesr.train import Trainer, build_config
from litesr.upsamplers import (
    DecomposedTransposedConv,
    MetaUpscale,
    build_upsampler,
    get_upsampler,
    list_upsamplers,
    meta_projection,
    multistage_scale,
    pixelshuffle_scale,
    swappable_tail_archs,
)

NAMES = list_upsamplers()
TAIL_CHOICES = ("pixelshuffle", "transposed", "decomposed", "attention", "nearest_conv", "meta", "liif")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [2, 3, 4, 2.5])
def test_shape(name: str, scale: float) -> None:
    torch.manual_seed(0)
    if scale != int(scale) and not get_upsampler(name).fractional:
        with pytest.raises(ConfigError, match="integer factors"):
            build_upsampler(name, 8, scale, 3)
        return
    if name == "pixelshuffle_multistage" and scale not in (2, 3, 4):
        return
    block = build_upsampler(name, 8, scale, 3)
    y = block(torch.rand(2, 8, 7, 9))
    assert y.shape == (2, 3, round(7 * scale), round(9 * scale))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_profile_counts_the_block(name: str, scale: int) -> None:
    block = build_upsampler(name, 8, scale, 3)
    count = count_ops(block, (6, 6), in_channels=8)
    assert sum(count.macs.values()) > 0, f"{name}: profile counted no MACs"
    if name == "pixelshuffle":
        assert count.macs["conv"] == 6 * 6 * 8 * 3 * scale**2 * 9


def test_decomposed_uses_2k_taps_instead_of_k2() -> None:
    k, cin, cout = 9, 16, 3
    decomposed = DecomposedTransposedConv(cin, 2, cout, kernel_size=k)
    full = build_upsampler("transposed", cin, 2, cout)
    weights = lambda m: sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight"))  # noqa: E731
    assert weights(decomposed) == cin * cout * k + cout * k
    assert weights(full) == cin * cout * k * k


def test_decomposed_equals_a_separable_full_kernel() -> None:
    """One input/output channel: the two 1-D transposed convs are the k x k one with the outer-product kernel."""
    torch.manual_seed(0)
    block = DecomposedTransposedConv(1, 3, 1, kernel_size=5)
    with torch.no_grad():
        block.vertical.bias.zero_()
        block.horizontal.bias.zero_()
    x = torch.rand(1, 1, 6, 7)
    v, h = block.vertical.weight[0, 0, :, 0], block.horizontal.weight[0, 0, 0, :]
    ref = F.conv_transpose2d(x, torch.outer(v, h)[None, None], stride=3, padding=2, output_padding=2)
    assert torch.allclose(block(x), ref, atol=1e-6)


def test_fsrcnn_tail_is_the_transposed_block() -> None:
    """FSRCNN's last_part is the registered block, and computes what the official nn.ConvTranspose2d does."""
    for scale in (2, 3, 4):
        model = FSRCNN(scale=scale, d=8, s=4, m=1)
        official = nn.ConvTranspose2d(8, 3, 9, stride=scale, padding=4, output_padding=scale - 1)
        official.load_state_dict({k[len("last_part."):]: v for k, v in model.state_dict().items()
                                  if k.startswith("last_part.")})
        x = torch.rand(1, 8, 5, 6)
        assert torch.equal(model.last_part(x), official(x))


def test_scale_detection() -> None:
    for scale in (2, 3, 4):
        edsr = create_model("edsr", scale=scale, n_resblocks=1, n_feats=8).state_dict()
        assert multistage_scale(edsr, "tail.0") == scale
        rdesa = create_model("rdesa", scale=scale, channels=8, num_blocks=1, reduction=4, esa_channels=4)
        assert pixelshuffle_scale(rdesa.state_dict(), "upsampler.0.weight", 3) == scale
    assert multistage_scale({}, "tail.0") == 1


def _meta_reference(block: MetaUpscale, x: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """Meta-SR written per output pixel, as the paper's equations: SR(i, j) = Phi(F_LR(i', j'), W(i, j))."""
    b, c, h, w = x.shape
    r_h, r_w = out_hw[0] / h, out_hw[1] / w
    k = block.kernel_size
    padded = F.pad(x, (k // 2,) * 4)
    out = torch.zeros(b, block.out_channels, *out_hw)
    for i in range(out_hw[0]):
        for j in range(out_hw[1]):
            si, sj = math.floor(i / r_h + 1e-9), math.floor(j / r_w + 1e-9)
            pos = torch.tensor([i / r_h - si, j / r_w - sj, 0.5 * (1 / r_h + 1 / r_w)])
            weight = block.meta_block(pos).view(c, k, k, block.out_channels)
            patch = padded[:, :, si : si + k, sj : sj + k]
            out[:, :, i, j] = torch.einsum("bckl,cklo->bo", patch, weight)
    return out


@pytest.mark.parametrize("scale", [2, 2.5, 3.3])
def test_meta_upscale_matches_the_per_pixel_formula(scale: float) -> None:
    torch.manual_seed(0)
    block = MetaUpscale(4, scale, 3, hidden=8)
    x = torch.rand(1, 4, 5, 4)
    out_hw = (round(5 * scale), round(4 * scale))
    with torch.no_grad():
        assert torch.allclose(block(x), _meta_reference(block, x, out_hw), atol=1e-5)


def test_meta_projection_at_integer_scale() -> None:
    source, offset = meta_projection(3, 6)
    assert source.tolist() == [0, 0, 1, 1, 2, 2]
    assert offset.tolist() == [0.0, 0.5, 0.0, 0.5, 0.0, 0.5]


def test_liif_reads_the_nearest_latent() -> None:
    """With an MLP that returns its first input, LIIF's ensemble of one constant-per-pixel feature is that pixel."""
    block = build_upsampler("liif", 1, 2, 1)
    mlp = block.imnet.layers
    with torch.no_grad():
        for layer in mlp:
            if isinstance(layer, nn.Linear):
                layer.weight.zero_()
                layer.bias.zero_()
        centre = 4  # the unfolded 3x3 neighbourhood's middle tap
        mlp[0].weight[0, centre] = 1.0
        for layer in [m for m in mlp if isinstance(m, nn.Linear)][1:]:
            layer.weight[0, 0] = 1.0
    x = torch.rand(1, 1, 4, 5) + 0.1
    y = block(x, scale=2)
    # Each output pixel's 4 neighbours all lie in the LR pixel that contains it, or its neighbours; with
    # nearest-latent lookup and area weights the value stays within the range of the 2x2 LR neighbourhood.
    assert y.shape == (1, 1, 8, 10)
    assert y.min() >= x.min() - 1e-5 and y.max() <= x.max() + 1e-5
    # Output (1, 1) lies in LR pixel (0, 0) at offsets (+0.25, +0.25): its nearest latents are (0,0),(0,1),(1,0),(1,1)
    # and the area weights put 9/16 on (0, 0).
    expected = (9 * x[0, 0, 0, 0] + 3 * x[0, 0, 0, 1] + 3 * x[0, 0, 1, 0] + x[0, 0, 1, 1]) / 16
    assert torch.allclose(y[0, 0, 1, 1], expected, atol=1e-5)


def test_unknown_upsampler_names_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean"):
        build_upsampler("transposd", 8, 2, 3)


def test_registry_lists_the_swappable_zoo_tails() -> None:
    assert {"rdesa", "imdn", "rfdn", "rlfn"} <= set(swappable_tail_archs())


def test_default_tail_keeps_official_names() -> None:
    model = create_model("imdn", scale=3, nf=16, num_modules=1)
    assert "upsampler.0.weight" in model.state_dict()
    swapped = create_model("imdn", scale=3, nf=16, num_modules=1, upsampler="decomposed")
    assert "upsampler.vertical.weight" in swapped.state_dict()
    with pytest.raises(ConfigError, match="imdn: option upsampler"):
        create_model("imdn", scale=3, nf=16, num_modules=1, upsampler="bogus")


class _Losses(Trainer):
    def on_iteration_end(self, metrics):
        self.losses = [*getattr(self, "losses", []), metrics["loss"] if metrics else float("nan")]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_set(tmp_path_factory.mktemp("tails") / "hr", count=2, size=48, seed=2)


@pytest.mark.parametrize("upsampler", TAIL_CHOICES)
def test_swapped_tail_trains(upsampler: str, images: Path, tmp_path: Path) -> None:
    """``litesr train --model rdesa --model-opt upsampler=NAME``: a few steps of each pairing run and stay finite."""
    import argparse

    from litesr.cli.train import add_parser, flags_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--model", "rdesa", "--scale", "2", "--model-opt", f"upsampler={upsampler}",
                              "--model-opt", "channels=8", "--model-opt", "num_blocks=1",
                              "--model-opt", "reduction=4", "--model-opt", "esa_channels=4"])
    flags = flags_from_args(args)
    cfg = build_config({
        "name": upsampler, "output": str(tmp_path / "runs"), "device": "cpu", "seed": 0,
        "datasets": {"train": {"hr_dir": str(images), "patch_size": 32, "workers": 0, "preload": True,
                               "cache_dir": str(tmp_path / "cache")}},
        "train": {"iterations": 3, "batch_size": 2, "optimizer": {"type": "adam", "lr": 1e-3},
                  "scheduler": {"type": "constant"}, "losses": [{"type": "l1"}], "ema": {"enabled": False}},
        "val": {"every": 0}, "checkpoint": {"every": 0},
        "logger": {"print_every": 3, "jsonl": False, "tensorboard": False, "progress": False},
    }, source="test", flags=flags)
    trainer = _Losses(cfg)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 0
    assert trainer.net.litesr_config["upsampler"] == upsampler
    assert len(trainer.losses) == 3
