"""Acceptance: awkward and broken inputs through ``litesr upscale`` (and broken configs through ``litesr train``).

A failure must exit non-zero with exactly one line on stderr naming the file and the problem, and leave no output
(nor temporary) file behind. A success must produce the right size, layout and bit depth.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import litesr
from litesr.checkpoint import save_safetensors
from litesr.cli import main
from litesr.images import read_image, write_image
from litesr.registry import get_arch

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = litesr.create_model("imdn", scale=2, **get_arch("imdn").tiny)
    path = tmp_path_factory.mktemp("weights") / "tiny_imdn_x2.safetensors"
    save_safetensors(model.state_dict(), path)
    return path


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def expect_failure(capsys: pytest.CaptureFixture, folder: Path, names: str | Path, *args: str | Path,
                   words: tuple[str, ...] = ()) -> str:
    """Run ``litesr upscale ARGS``; check the one-line error naming ``names`` and that nothing was written."""
    before = listing(folder)
    rc = main(["upscale", *map(str, args)])
    captured = capsys.readouterr()
    assert rc != 0
    assert captured.err.endswith("\n") and captured.err.count("\n") == 1, captured.err
    assert str(names) in captured.err, captured.err
    for word in words:
        assert word in captured.err.lower(), captured.err
    assert listing(folder) == before  # no output, no temporary file
    return captured.err


def expect_success(capsys: pytest.CaptureFixture, *args: str | Path) -> None:
    rc = main(["upscale", *map(str, args)])
    captured = capsys.readouterr()
    assert (rc, captured.err) == (0, "")


def good_png(path: Path, size: tuple[int, int] = (24, 20)) -> Path:
    return write_image(path, RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


# -------------------------------------------------------------------------------------------------------- failures


def test_truncated_png(tmp_path: Path, capsys: pytest.CaptureFixture, tiny_checkpoint: Path) -> None:
    path = tmp_path / "cut.png"
    path.write_bytes(good_png(tmp_path / "whole.png").read_bytes()[:-300])
    expect_failure(capsys, tmp_path, path, path, "--weights", tiny_checkpoint, words=("truncated",))


def test_zero_byte_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    expect_failure(capsys, tmp_path, path, path, "--model", "bicubic", words=("empty",))


def test_text_file_named_png(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "readme.png"
    path.write_text("# not an image\nJust some notes.\n")
    expect_failure(capsys, tmp_path, path, path, "--model", "bicubic", words=("text file",))


def test_unsupported_format(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "icon.tga"  # an ICO renamed: Pillow knows it, litesr does not take it
    PILImage.new("RGB", (16, 16)).save(path, format="ICO")
    expect_failure(capsys, tmp_path, path, path, "--model", "bicubic", words=("unsupported",))


def test_huge_declared_size_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bomb.png"
    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
                     + png_chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + png_chunk(b"IEND", b""))
    expect_failure(capsys, tmp_path, path, path, "--model", "bicubic", words=("100000x100000", "--max-pixels"))
    small = good_png(tmp_path / "small.png")
    expect_failure(capsys, tmp_path, small, small, "--model", "bicubic", "--max-pixels", "100",
                   words=("over the limit of 100",))


def test_checkpoint_of_another_scale(tmp_path: Path, capsys: pytest.CaptureFixture, weights_dir: Path) -> None:
    checkpoint = weights_dir / "IMDN" / "IMDN_x2.pth"
    if not checkpoint.exists():
        pytest.skip(f"{checkpoint} not found")
    source = good_png(tmp_path / "a.png")
    expect_failure(capsys, tmp_path, checkpoint, source, "--model", "imdn", "--scale", "4", "--weights", checkpoint,
                   words=("x2", "x4"))


def test_checkpoint_of_no_known_architecture(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = good_png(tmp_path / "a.png")
    weights = tmp_path / "random.pth"
    torch.save({"encoder.weight": torch.randn(8, 3, 3, 3), "decoder.bias": torch.randn(3)}, weights)
    expect_failure(capsys, tmp_path, weights, source, "--weights", weights, words=("no litesr architecture",))
    expect_failure(capsys, tmp_path, weights, source, "--weights", weights, "--model", "imdn",
                   words=("does not fit",))


def test_folder_without_images(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    (folder / "b.csv").write_text("1,2")
    expect_failure(capsys, tmp_path, folder, folder, "--model", "bicubic", words=("no images",))


def test_output_that_already_exists(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = good_png(tmp_path / "a.png")
    existing = tmp_path / "a_x2.png"
    existing.write_bytes(b"keep me")
    expect_failure(capsys, tmp_path, existing, source, "--model", "bicubic", words=("already exists", "--overwrite"))
    assert existing.read_bytes() == b"keep me"


def test_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "nowhere.png"
    expect_failure(capsys, tmp_path, path, path, "--model", "bicubic", words=("no such file",))


def test_console_script_in_a_subprocess(tmp_path: Path) -> None:
    script = shutil.which("litesr")
    if script is None:
        pytest.skip("the litesr console script is not on PATH (pip install -e .)")
    path = tmp_path / "cut.png"
    path.write_bytes(good_png(tmp_path / "whole.png").read_bytes()[:50])
    before = listing(tmp_path)
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run([script, "upscale", str(path), "--model", "bicubic"], capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and str(path) in proc.stderr and proc.stdout == ""
    assert listing(tmp_path) == before


# ------------------------------------------------------------------------------------------------------- successes


@pytest.mark.parametrize("model", ["bicubic", "tiny"])
def test_one_pixel_image(tmp_path: Path, capsys: pytest.CaptureFixture, tiny_checkpoint: Path, model: str) -> None:
    source = write_image(tmp_path / "dot.png", np.array([[[0.2, 0.5, 0.9]]]))
    choice = ["--model", "bicubic"] if model == "bicubic" else ["--weights", tiny_checkpoint]
    expect_success(capsys, source, *choice)
    result = read_image(tmp_path / "dot_x2.png")
    assert (result.width, result.height, result.mode) == (2, 2, "RGB")
    if model == "bicubic":
        np.testing.assert_allclose(result.rgb, np.broadcast_to([0.2, 0.5, 0.9], (2, 2, 3)), atol=0.5 / 255)


def test_16bit_rgb_stays_16bit(tmp_path: Path, capsys: pytest.CaptureFixture, tiny_checkpoint: Path) -> None:
    pixels = RNG.integers(0, 65536, (10, 14, 3), dtype=np.uint16)
    source = write_image(tmp_path / "deep.png", pixels)
    expect_success(capsys, source, "--weights", tiny_checkpoint)
    result = read_image(tmp_path / "deep_x2.png")
    assert (result.width, result.height, result.bit_depth, result.mode) == (28, 20, 16, "RGB;16")
    levels = np.round(result.rgb * 65535)
    assert np.any(levels % 257 != 0)  # values between the 8-bit levels: not 8-bit data stretched to 16
    expect_success(capsys, write_image(tmp_path / "deep.tif", pixels), "--model", "bicubic")
    assert read_image(tmp_path / "deep_x2.tif").bit_depth == 16


def test_rgba_keeps_alpha(tmp_path: Path, capsys: pytest.CaptureFixture, tiny_checkpoint: Path) -> None:
    pixels = RNG.integers(0, 256, (10, 12, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[:5, :, 3] = 0  # top half transparent
    source = write_image(tmp_path / "logo.png", pixels)
    expect_success(capsys, source, "--weights", tiny_checkpoint)
    result = read_image(tmp_path / "logo_x2.png")
    assert (result.width, result.height, result.mode) == (24, 20, "RGBA")
    assert result.alpha[:8].max() < 0.05 and result.alpha[12:].min() > 0.95


def test_grayscale_stays_gray(tmp_path: Path, capsys: pytest.CaptureFixture, tiny_checkpoint: Path) -> None:
    source = write_image(tmp_path / "scan.png", RNG.integers(0, 256, (9, 11), dtype=np.uint8))
    expect_success(capsys, source, "--weights", tiny_checkpoint)
    result = read_image(tmp_path / "scan_x2.png")
    assert (result.width, result.height, result.mode, result.channels) == (22, 18, "L", 1)


def test_palette_with_transparency(tmp_path: Path, capsys: pytest.CaptureFixture, tiny_checkpoint: Path) -> None:
    source = tmp_path / "sprite.png"
    image = PILImage.fromarray(RNG.integers(0, 3, (8, 10), dtype=np.uint8), "P")
    image.putpalette([250, 20, 20, 20, 250, 20, 0, 0, 0])
    image.save(source, transparency=2)
    expect_success(capsys, source, "--weights", tiny_checkpoint)
    result = read_image(tmp_path / "sprite_x2.png")
    assert (result.width, result.height, result.mode) == (20, 16, "RGBA")


@pytest.mark.parametrize(("failure", "words"), [
    (RuntimeError("Calculated padded input size per channel: (2 x 2). Kernel size: (3 x 3).\nmore"), ("too small",)),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"), ("out of memory", "--tile")),
])
def test_model_failures_become_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch, failure: Exception,
                                               words: tuple[str, ...]) -> None:
    """A model that cannot take a 1x1 input, or memory running out, is reported, not a traceback."""
    import litesr.inference

    def fail(*args, **kwargs):  # noqa: ANN002, ANN003
        raise failure

    monkeypatch.setattr(litesr.inference, "upscale_image", fail)
    source = write_image(tmp_path / "dot.png", np.array([[[0.2, 0.5, 0.9]]]))
    expect_failure(capsys, tmp_path, source, source, "--model", "bicubic", words=words)


# ------------------------------------------------------------------------- more kinds (colour, frames, files, races)


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rgb = np.zeros((16, 16, 3), dtype=np.uint8)
    rgb[:, :8] = (200, 30, 30)
    rgb[:, 8:] = (30, 30, 200)
    source = tmp_path / "print.jpg"
    PILImage.fromarray(rgb).convert("CMYK").save(source, quality=95)
    assert PILImage.open(source).mode == "CMYK"
    expect_success(capsys, source, "--model", "bicubic")
    result = read_image(tmp_path / "print_x2.jpg")
    assert (result.width, result.height, result.mode) == (32, 32, "RGB")
    expected = np.asarray(PILImage.open(source).convert("RGB"), dtype=np.float32) / 255
    np.testing.assert_allclose(result.rgb[8:24:2, 4:12:2], expected[4:12, 2:6], atol=0.08)  # red stays red


@pytest.mark.parametrize("fmt", ["GIF", "PNG"])
def test_animated_image_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture, fmt: str) -> None:
    """Upscaling the first frame alone would drop the animation without a word: a clear refusal instead."""
    frames = [PILImage.fromarray(RNG.integers(0, 256, (12, 14, 3), dtype=np.uint8)) for _ in range(3)]
    path = tmp_path / f"clip.{fmt.lower()}"
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=80)
    expect_failure(capsys, tmp_path, path, path, "--model", "bicubic", words=("animated", "3 frames"))


def test_16bit_grayscale_stays_16bit_gray(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pixels = RNG.integers(0, 65536, (10, 12), dtype=np.uint16)
    source = tmp_path / "xray.png"
    PILImage.fromarray(pixels).save(source)
    expect_success(capsys, source, "--model", "bicubic")
    result = read_image(tmp_path / "xray_x2.png")
    assert (result.width, result.height, result.channels, result.bit_depth) == (24, 20, 1, 16)
    assert np.any(np.round(result.rgb * 65535) % 257 != 0)  # 16-bit levels, not 8-bit data stretched


def test_truncated_safetensors(tmp_path: Path, capsys: pytest.CaptureFixture, tiny_checkpoint: Path) -> None:
    weights = tmp_path / "cut.safetensors"
    data = tiny_checkpoint.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    source = good_png(tmp_path / "a.png")
    expect_failure(capsys, tmp_path, weights, source, "--weights", weights, words=("safetensors",))


def test_random_bytes_pth(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = good_png(tmp_path / "a.png")
    for i in range(3):  # different bytes fail at different places of torch.load
        weights = tmp_path / f"noise{i}.pth"
        weights.write_bytes(np.random.default_rng(i).integers(0, 256, 4096, dtype=np.uint8).tobytes())
        expect_failure(capsys, tmp_path, weights, source, "--weights", weights, words=("not a pytorch checkpoint",))


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder where creating a file fails: chmod 555 (or, as root, who ignores it, /sys)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    (folder / "probe").unlink()
    sysfs = Path("/sys")
    try:
        (sysfs / ".litesr_probe").touch()
    except OSError:
        return sysfs
    pytest.skip("no folder here refuses new files (running as root, and /sys is writable)")


def test_read_only_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = good_png(tmp_path / "a.png")
    folder = _unwritable_folder(tmp_path)
    target = folder / "a_x2.png"
    before = listing(folder) if folder != Path("/sys") else None
    expect_failure(capsys, tmp_path, target, source, "--model", "bicubic", "-o", target, words=("cannot write",))
    assert not target.exists()
    if before is not None:
        assert listing(folder) == before


def test_output_path_that_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    source = good_png(tmp_path / "a.png")
    (tmp_path / "a_x2.png").mkdir()  # the default output name is taken by a folder
    for extra in ((), ("--overwrite",)):
        expect_failure(capsys, tmp_path, tmp_path / "a_x2.png", source, "--model", "bicubic", *extra,
                       words=("folder",))


def test_three_processes_write_one_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Three ``litesr upscale`` processes write the same outputs at once: every file ends complete and right."""
    inputs = tmp_path / "in"
    for i in range(6):
        good_png(inputs / f"{i}.png", size=(48, 40))
    reference = tmp_path / "reference"
    expect_success(capsys, inputs, "--model", "bicubic", "-o", reference)
    out = tmp_path / "out"
    pids = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:  # a child: never returns into pytest
            rc = 99
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
                rc = main(["upscale", str(inputs), "--model", "bicubic", "-o", str(out), "--overwrite"])
            finally:
                os._exit(rc)
        pids.append(pid)
    statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    assert all(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses), statuses
    assert listing(out) == listing(reference)  # no temporary file left
    for name in listing(reference):
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


# ----------------------------------------------------------------------------------- bad training configs


def expect_config_failure(capsys: pytest.CaptureFixture, tmp_path: Path, text: str,
                          words: tuple[str, ...]) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(text.replace("OUT", str(tmp_path / "runs")), encoding="utf-8")
    rc = main(["train", "--config", str(path)])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.endswith("\n") and err.count("\n") == 1 and str(path) in err, err
    for word in words:
        assert word in err, err
    assert not (tmp_path / "runs").exists()  # nothing written


def test_yaml_with_a_tab_indent(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    expect_config_failure(capsys, tmp_path, "output: OUT\nmodel: {name: imdn}\ntrain:\n\tbatch_size: 8\n",
                          ("line 4", "tabs"))


def test_yaml_with_a_duplicated_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """PyYAML keeps the last of two equal keys; a config with one is refused instead."""
    expect_config_failure(capsys, tmp_path, "output: OUT\nmodel: {name: imdn}\ntrain:\n  batch_size: 8\n"
                          "  batch_size: 16\n", ("'batch_size' given twice", "lines 4 and 5"))


@pytest.mark.parametrize(("line", "words"), [
    ('  batch_size: "16"', ("train.batch_size", "'16'")),
    ("  optimizer: {lr: fast}", ("train.optimizer.lr", "'fast'")),
    ("  ema: {enabled: 1}", ("train.ema.enabled", "true or false")),
])
def test_config_with_wrong_types(tmp_path: Path, capsys: pytest.CaptureFixture, line: str,
                                 words: tuple[str, ...]) -> None:
    expect_config_failure(capsys, tmp_path, f"output: OUT\nmodel: {{name: imdn}}\ntrain:\n{line}\n", words)
