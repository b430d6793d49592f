"""ZSSR: the paper's network, kernel files (KernelGAN format), back-projection, the minimum size, the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from litesr.cli import main
from litesr.errors import LitesrError
from litesr.imresize import imresize
from litesr.unsupervised.zssr import (
    ZSSRConfig,
    ZSSRNet,
    back_project,
    default_steps,
    downscale,
    load_kernel,
    min_input_side,
    random_father,
    zssr,
)


def test_network_is_the_papers_8_layers_of_64_channels() -> None:
    net = ZSSRNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 8 and all(c.bias is None and c.kernel_size == (3, 3) for c in convs)
    assert sum(p.numel() for p in net.parameters()) == 3 * 64 * 9 + 6 * 64 * 64 * 9 + 64 * 3 * 9  # 224,640
    x = torch.rand(1, 3, 20, 20)
    assert torch.allclose(ZSSRNet(init_variance=0.0)(x), x)  # residual over its input: zero weights give the input


def test_kernel_file_of_wrong_shape_is_refused(tmp_path: Path) -> None:
    for name, array in (("rect", np.ones((3, 4))), ("cube", np.ones((5, 5, 3))), ("neg", -np.ones((5, 5))),
                        ("nan", np.full((5, 5), np.nan))):
        np.save(tmp_path / f"{name}.npy", array)
        with pytest.raises(LitesrError, match=f"{name}.npy"):
            load_kernel(tmp_path / f"{name}.npy", 2)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(LitesrError, match="junk.npy"):
        load_kernel(tmp_path / "junk.npy", 2)


def test_kernelgan_kernel_is_normalised_and_centred(tmp_path: Path) -> None:
    from scipy import ndimage

    g = np.exp(-((np.arange(13) - 6.0) ** 2) / 4)
    np.save(tmp_path / "k.npy", np.outer(g, g) * 7)
    k = load_kernel(tmp_path / "k.npy", 2)
    assert abs(k.sum() - 1) < 1e-6
    # ZSSR's kernel_shift: centre of mass at size/2 + 0.5 * (scale - size % 2) on each axis
    expected = np.array(k.shape) / 2 + 0.5 * (2 - np.array(k.shape) % 2)
    assert np.allclose(ndimage.center_of_mass(k), expected, atol=0.05)
    x = torch.rand(1, 3, 32, 30)
    assert downscale(x, 2, torch.from_numpy(k).float()).shape == (1, 3, 16, 15)


def test_back_projection_makes_the_output_consistent_with_the_input() -> None:
    lr = torch.rand(1, 3, 16, 16)
    sr = imresize(lr, 2).clamp(0, 1)
    before = (downscale(sr, 2) - lr).abs().mean()
    for _ in range(10):
        sr = back_project(sr, lr, 2, None)
    assert (downscale(sr, 2) - lr).abs().mean() < 0.5 * before


def test_augmented_father_has_the_crop_size_and_plain_crops_copy_pixels() -> None:
    src = torch.rand(1, 3, 40, 50)
    cfg = ZSSRConfig(crop_size=16, leave_as_is_probability=1.0)
    father = random_father([src], [1.0], 1.0, np.random.default_rng(0), cfg)
    assert father.shape == (1, 3, 16, 16)
    # "leave as is": an integer-shift crop of the source, bit for bit
    windows = src.unfold(2, 16, 1).unfold(3, 16, 1)[0].permute(1, 2, 0, 3, 4)
    assert any(torch.equal(windows[i, j], father[0]) for i in range(windows.shape[0]) for j in range(windows.shape[1]))
    cfg = ZSSRConfig(crop_size=16, leave_as_is_probability=0.0, no_interpolate_probability=0.0)
    assert random_father([src], [1.0], 1.0, np.random.default_rng(1), cfg).shape == (1, 3, 16, 16)


def test_short_run_and_gradual_steps() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((20, 22, 3)).astype(np.float32)
    cfg = ZSSRConfig(max_iters=2, crop_size=16, back_projection_iters=1, self_ensemble=False,
                     scale_steps=default_steps(2, True))
    result = zssr(img, 2, config=cfg)
    assert result.image.shape == (40, 44, 3) and result.iterations == [2, 2]
    assert default_steps(2, True) == [1.5, 2.0] and default_steps(4, True) == [2.0, 4.0]
    assert default_steps(2, False) == [2.0]


def test_too_small_image_names_the_minimum(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    PILImage.fromarray(np.zeros((10, 12, 3), np.uint8)).save(tmp_path / "tiny.png")
    assert main(["zssr", str(tmp_path / "tiny.png"), "--scale", "2"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{min_input_side(2)}x{min_input_side(2)}" in err[0]
    np.save(tmp_path / "bad.npy", np.ones((3, 4)))
    PILImage.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "ok.png")
    assert main(["zssr", str(tmp_path / "ok.png"), "--kernel", str(tmp_path / "bad.npy")]) == 1
    assert "square 2-D" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npy", "ok.png", "tiny.png"]  # nothing written


def test_cli_writes_the_upscaled_image(tmp_path: Path) -> None:
    PILImage.fromarray((np.random.default_rng(0).random((18, 18, 3)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    assert main(["zssr", str(tmp_path / "a.png"), "--max-iters", "1", "--no-ensemble", "--quiet"]) == 0
    assert PILImage.open(tmp_path / "a_zssr_x2.png").size == (36, 36)
    assert main(["zssr", str(tmp_path / "a.png"), "--max-iters", "1", "--quiet"]) == 1  # exists: not replaced
