"""``litesr upscale``: outputs, names, formats, folders, overwriting, comparison picture, demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import litesr
from litesr.checkpoint import save_safetensors
from litesr.cli import main
from litesr.images import read_image, write_image
from litesr.registry import get_arch, get_variant
from litesr.upscale_jobs import DEFAULT_MODELS

RNG = np.random.default_rng(3)


def run_cli(capsys: pytest.CaptureFixture, *args: str | Path) -> tuple[int, str, str]:
    rc = main(["upscale", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def picture(path: Path, h: int = 12, w: int = 16, channels: int = 3) -> Path:
    return write_image(path, RNG.integers(0, 256, (h, w, channels), dtype=np.uint8), quality=95)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = litesr.create_model("imdn", scale=2, **get_arch("imdn").tiny)
    path = tmp_path_factory.mktemp("weights") / "tiny_imdn_x2.safetensors"
    save_safetensors(model.state_dict(), path)
    return path


def test_one_file_next_to_its_input_in_its_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = picture(tmp_path / "photo.jpg")
    rc, out, err = run_cli(capsys, source, "--model", "bicubic", "--scale", "3")
    assert (rc, err) == (0, "")
    result = read_image(tmp_path / "photo_x3.jpg")
    assert (result.format, result.width, result.height) == ("JPEG", 48, 36)
    assert "photo_x3.jpg" in out and "16x12 -> 48x36" in out


def test_checkpoint_decides_architecture_and_scale(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   tiny_checkpoint: Path) -> None:
    source = picture(tmp_path / "a.png")
    rc, _, err = run_cli(capsys, source, "--weights", tiny_checkpoint, "--suffix", "_sr")
    assert (rc, err) == (0, "")
    expected = litesr.load_model(tiny_checkpoint)
    with torch.no_grad():
        x = torch.from_numpy(read_image(source).rgb).permute(2, 0, 1)[None]
        reference = expected(x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
    got = read_image(tmp_path / "a_sr.png").rgb
    assert got.shape == (24, 32, 3)
    assert np.abs(got - reference).max() <= 0.5 / 255 + 1e-6  # the model's output, rounded to 8 bits


def test_folder_in_mirrored_folder_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shots = tmp_path / "shots"
    picture(shots / "a.png")
    picture(shots / "nested" / "b.webp", channels=4)
    (shots / "notes.txt").write_text("not a picture")
    rc, _, err = run_cli(capsys, shots, "--model", "bicubic", "--scale", "2")
    assert (rc, err) == (0, "")
    out = tmp_path / "shots_x2"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["a.png", "nested/b.webp"]
    assert read_image(out / "nested" / "b.webp").alpha is not None
    rc, _, _ = run_cli(capsys, shots, "-o", tmp_path / "elsewhere", "--model", "bicubic", "--format", "tif")
    assert rc == 0 and (tmp_path / "elsewhere" / "nested" / "b.tif").is_file()


def test_explicit_output_file_and_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = picture(tmp_path / "a.png")
    assert run_cli(capsys, source, "-o", tmp_path / "big.webp", "--model", "bicubic")[0] == 0
    assert read_image(tmp_path / "big.webp").format == "WEBP"
    assert run_cli(capsys, source, "--format", "bmp", "--model", "bicubic")[0] == 0
    assert read_image(tmp_path / "a_x2.bmp").width == 32


def test_never_overwrites_without_permission(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = picture(tmp_path / "a.png")
    assert run_cli(capsys, source, "--model", "bicubic")[0] == 0
    first = (tmp_path / "a_x2.png").read_bytes()
    rc, _, err = run_cli(capsys, source, "--model", "bicubic", "--scale", "4", "-o", tmp_path / "a_x2.png")
    assert rc == 1 and "already exists" in err and "--overwrite" in err and err.count("\n") == 1
    assert (tmp_path / "a_x2.png").read_bytes() == first
    original = source.read_bytes()
    rc, _, err = run_cli(capsys, source, "--model", "bicubic", "-o", source)
    assert rc == 1 and "is the input image" in err
    assert source.read_bytes() == original
    assert run_cli(capsys, source, "--model", "bicubic", "--scale", "4", "-o", tmp_path / "a_x2.png",
                   "--overwrite")[0] == 0
    assert read_image(tmp_path / "a_x2.png").width == 64


def test_comparison_picture(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = picture(tmp_path / "a.png", 20, 30)
    rc, _, _ = run_cli(capsys, source, "--model", "bicubic", "--compare", tmp_path / "side.png")
    assert rc == 0
    side = read_image(tmp_path / "side.png")
    assert side.width == 3 * 60 + 2 * 4 and side.height > 40  # three panels, gaps, a label strip
    band = side.height - 40
    sr = read_image(tmp_path / "a_x2.png").rgb
    np.testing.assert_allclose(side.rgb[band:, 2 * 64 :], sr, atol=1 / 255)  # the last panel is the result


def test_several_inputs_one_broken(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    good = picture(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:60])
    rc, _, err = run_cli(capsys, good, bad, "--model", "bicubic", "-o", tmp_path / "out")
    assert rc == 1
    assert (tmp_path / "out" / "good_x2.png").is_file() and not (tmp_path / "out" / "bad_x2.png").exists()
    lines = err.strip().splitlines()
    assert len(lines) == 2 and str(bad) in lines[0] and "1 of 2" in lines[1]


def test_shipped_weights_missing_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    name = DEFAULT_MODELS[2]
    try:
        shipped = 2 in get_variant(name).pretrained
    except litesr.LitesrError:
        shipped = False
    if shipped:
        pytest.skip(f"{name} x2 weights ship with litesr now")
    source = picture(tmp_path / "a.png")
    rc, out, err = run_cli(capsys, source)
    assert rc == 1 and out == "" and err.count("\n") == 1
    assert name in err and "--weights" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_demo(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, out, err = run_cli(capsys, "--demo", "--model", "bicubic", "-o", tmp_path / "demo")
    assert (rc, err) == (0, "")
    files = {p.name: read_image(p) for p in (tmp_path / "demo").iterdir()}
    assert set(files) == {"input.png", "result_x2.png", "compare.png", "original.png"}
    assert (files["input.png"].width, files["result_x2.png"].width, files["original.png"].width) == (128, 256, 256)
    assert "PSNR" in out
    rc, _, err = run_cli(capsys, "--demo", "--model", "bicubic", "-o", tmp_path / "demo")
    assert rc == 1 and "already exists" in err
    rc, _, err = run_cli(capsys, "--demo", tmp_path / "demo" / "input.png")
    assert rc == 1 and "--demo" in err


def test_large_images_are_tiled_to_the_free_memory(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                   tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import litesr.inference as inference
    import litesr.upscale_jobs as upscale

    source = picture(tmp_path / "a.png", 40, 56)
    assert run_cli(capsys, source, "--weights", tiny_checkpoint, "--suffix", "_whole")[0] == 0
    budgets: list[int | None] = []
    chosen: list[int | None] = []
    real_tile_for_memory = inference.tile_for_memory

    def spy(*args, **kwargs):  # noqa: ANN002, ANN003
        budgets.append(args[2])
        chosen.append(real_tile_for_memory(*args, **kwargs))
        return chosen[-1]

    # A budget for the image, its result buffers and the passes of a ~24-pixel tile.
    budget = int(40 * 56 * 3 * 4 * 9 + inference.activation_bytes_per_pixel(litesr.load_model(tiny_checkpoint)) * 576)
    monkeypatch.setattr(upscale, "AUTO_TILE_PIXELS", 100)  # "large" from 100 pixels on
    monkeypatch.setattr(upscale, "free_memory_budget", lambda device: budget)
    monkeypatch.setattr(inference, "tile_for_memory", spy)
    assert run_cli(capsys, source, "--weights", tiny_checkpoint, "--suffix", "_tiled")[0] == 0
    assert budgets == [budget] and chosen[0] is not None and 16 <= chosen[0] < 40  # it did tile
    whole, tiled = read_image(tmp_path / "a_whole.png").rgb, read_image(tmp_path / "a_tiled.png").rgb
    assert np.abs(whole - tiled).max() <= 1 / 255 + 1e-6


def test_format_that_contradicts_the_output_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = picture(tmp_path / "a.png")
    rc, _, err = run_cli(capsys, source, "--model", "bicubic", "-o", tmp_path / "b.jpg", "--format", "png")
    assert rc == 1 and "--format" in err and not (tmp_path / "b.jpg").exists()
