"""Image reading and writing: formats, bit depths, layouts, EXIF orientation, broken files, atomic writes."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from litesr.errors import ImageError
from litesr.images import Image, encode_png16, read_image, write_image

RNG = np.random.default_rng(7)


def stacked(image: Image, maxval: int) -> np.ndarray:
    """Colour and alpha of a decoded image as integers (H, W, C)."""
    planes = [image.rgb] + ([image.alpha[..., None]] if image.alpha is not None else [])
    return np.round(np.concatenate(planes, axis=2) * maxval).astype(np.int64)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def handmade_png16(pixels: np.ndarray, *, interlaced: bool = False) -> bytes:
    """A 16-bit PNG built here byte by byte (filter 0, optionally Adam7), independent of litesr's encoder."""
    h, w, c = pixels.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    data = pixels.astype(">u2")
    if interlaced:
        passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2), (1, 0, 2, 1)]
        subimages = [data[y0::dy, x0::dx] for y0, x0, dy, dx in passes]
    else:
        subimages = [data]
    raw = b"".join(b"\x00" + row.tobytes() for sub in subimages if sub.size for row in sub)
    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, int(interlaced))
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(raw))
            + png_chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_round_trip_is_exact(tmp_path: Path, suffix: str, channels: int) -> None:
    pixels = RNG.integers(0, 65536, (23, 31, channels), dtype=np.uint16)  # random: every PNG filter gets used
    path = write_image(tmp_path / f"a{suffix}", pixels)
    image = read_image(path)
    assert image.bit_depth == 16
    if suffix == ".tif" and channels == 2:  # stored as RGBA: Pillow cannot read 16-bit gray+alpha TIFF
        expected = pixels[..., [0, 0, 0, 1]]
    else:
        expected = pixels
        assert image.channels == (1 if channels <= 2 else 3)
    assert (image.alpha is not None) == (channels in (2, 4))
    np.testing.assert_array_equal(stacked(image, 65535), expected)


@pytest.mark.parametrize("interlaced", [False, True])
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_reads_16bit_png_from_another_encoder(tmp_path: Path, channels: int, interlaced: bool) -> None:
    """Pillow alone would keep only the high byte of 48/64-bit PNG; litesr must get all 16 bits."""
    pixels = RNG.integers(0, 65536, (13, 11, channels), dtype=np.uint16)
    path = tmp_path / "other.png"
    path.write_bytes(handmade_png16(pixels, interlaced=interlaced))
    assert PILImage.open(path).mode == ("RGB" if channels == 3 else "RGBA")  # Pillow's own view: 8-bit
    image = read_image(path)
    assert (image.bit_depth, image.mode) == (16, {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[channels])
    np.testing.assert_array_equal(stacked(image, 65535), pixels)


def test_16bit_png_encoder_output_is_what_it_was_given() -> None:
    pixels = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3) * 3000
    data = encode_png16(pixels)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">IIBB", data[16:26]) == (3, 2, 16, 2)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("suffix", [".png", ".tif", ".webp", ".bmp"])
def test_8bit_lossless_round_trip(tmp_path: Path, suffix: str, channels: int) -> None:
    pixels = RNG.integers(0, 256, (17, 19, channels), dtype=np.uint8)
    image = read_image(write_image(tmp_path / f"a{suffix}", pixels, quality=100))  # WebP at 100 is lossless
    assert image.bit_depth == 8
    got = stacked(image, 255)
    has_alpha = channels in (2, 4) and suffix != ".bmp"  # BMP keeps no alpha: laid over white
    assert (image.alpha is not None) == has_alpha
    if suffix == ".webp":  # WebP is always colour
        expected = pixels if channels == 3 else None
    elif has_alpha:
        expected = pixels
    elif channels in (2, 4):
        alpha = pixels[..., -1:].astype(np.float64) / 255
        expected = np.round(pixels[..., :-1] * alpha + 255 * (1 - alpha)).astype(np.int64)
    else:
        expected = pixels
    if expected is not None:
        np.testing.assert_allclose(got, expected, atol=1 if channels in (2, 4) and not has_alpha else 0)
    if suffix == ".webp" and channels in (1, 2):
        np.testing.assert_array_equal(got[..., 0], pixels[..., 0])
        np.testing.assert_array_equal(got[..., 2], pixels[..., 0])


def test_jpeg_round_trip_is_close_and_alpha_goes_over_white(tmp_path: Path) -> None:
    yy, xx = np.mgrid[0:32, 0:48]
    smooth = np.stack([xx / 47, yy / 31, (xx + yy) / 78], axis=2).astype(np.float32)
    image = read_image(write_image(tmp_path / "a.jpg", smooth, quality=95))
    assert (image.format, image.mode, image.bit_depth) == ("JPEG", "RGB", 8)
    assert np.abs(image.rgb - smooth).max() < 6 / 255
    transparent = np.concatenate([np.zeros((8, 8, 3)), np.zeros((8, 8, 1))], axis=2)  # black, fully transparent
    assert read_image(write_image(tmp_path / "t.jpg", transparent)).rgb.min() > 250 / 255


def test_16bit_to_8bit_only_format(tmp_path: Path) -> None:
    pixels = RNG.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    image = read_image(write_image(tmp_path / "a.bmp", pixels))  # the image's depth, capped silently
    assert image.bit_depth == 8
    np.testing.assert_allclose(stacked(image, 255), np.round(pixels / 257), atol=1)
    with pytest.raises(ImageError, match="8 bits"):
        write_image(tmp_path / "b.jpg", pixels, bit_depth=16)  # asked for explicitly: refused
    assert not (tmp_path / "b.jpg").exists()


def test_gray_palette_and_bilevel_images(tmp_path: Path) -> None:
    gray = RNG.integers(0, 256, (9, 10), dtype=np.uint8)
    PILImage.fromarray(gray, "L").save(tmp_path / "gray.png")
    image = read_image(tmp_path / "gray.png")
    assert (image.mode, image.channels, image.alpha) == ("L", 1, None)
    np.testing.assert_array_equal(stacked(image, 255)[..., 0], gray)

    palette = PILImage.fromarray(RNG.integers(0, 4, (9, 10), dtype=np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9])
    palette.save(tmp_path / "p.png", transparency=3)
    image = read_image(tmp_path / "p.png")
    assert (image.mode, image.channels) == ("P", 3)
    expected = np.asarray(PILImage.open(tmp_path / "p.png").convert("RGBA"))
    assert (expected[..., 3] == 0).any()
    np.testing.assert_array_equal(stacked(image, 255), expected)
    assert set(np.unique(image.alpha)) <= {0.0, 1.0} and image.alpha.min() == 0.0

    palette.save(tmp_path / "p_opaque.png")
    assert read_image(tmp_path / "p_opaque.png").alpha is None

    PILImage.fromarray(gray > 128).save(tmp_path / "bits.png")
    image = read_image(tmp_path / "bits.png")
    assert image.mode == "1" and set(np.unique(image.rgb)) <= {0.0, 1.0}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    pixels = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "litesr test camera"
    PILImage.fromarray(pixels).save(tmp_path / "o.png", exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(tmp_path / "o.png")))
    image = read_image(tmp_path / "o.png")
    np.testing.assert_array_equal(stacked(image, 255), expected)
    kept = PILImage.Exif()
    kept.load(image.exif)
    assert kept.get(0x010F) == "litesr test camera" and 0x0112 not in kept  # upright now: no orientation tag


def test_icc_profile_and_exif_are_kept(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    PILImage.fromarray(RNG.integers(0, 256, (4, 5, 3), dtype=np.uint8)).save(tmp_path / "in.png", icc_profile=icc)
    image = read_image(tmp_path / "in.png")
    assert image.icc_profile == icc
    for name, depth in (("out8.png", 8), ("out16.png", 16), ("out16.tif", 16), ("out.jpg", 8)):
        write_image(tmp_path / name, image, bit_depth=depth)
        assert read_image(tmp_path / name).icc_profile == icc, name


# ------------------------------------------------------------------------------------------------------ bad input


def assert_one_line(exc: pytest.ExceptionInfo, path: Path, *words: str) -> None:
    message = str(exc.value)
    assert "\n" not in message and str(path) in message, message
    for word in words:
        assert word in message.lower(), message


def test_broken_files_give_one_line_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    PILImage.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    data = good.read_bytes()
    cases = {
        "truncated.png": (data[: len(data) // 2], "truncated"),
        "empty.png": (b"", "empty"),
        "notes.png": (b"these are my notes, not a picture\n", "text"),
        "header_only.png": (data[:8] + b"\x00" * 30, "png"),
        "garbage.jpg": (bytes(range(256)) * 4, "not an image"),
    }
    for name, (content, word) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(ImageError) as exc:
            read_image(path)
        assert_one_line(exc, path, word)
    with pytest.raises(ImageError) as exc:
        read_image(tmp_path / "missing.png")
    assert_one_line(exc, tmp_path / "missing.png", "no such file")
    with pytest.raises(ImageError) as exc:
        read_image(tmp_path)
    assert_one_line(exc, tmp_path, "folder")


def test_unsupported_format(tmp_path: Path) -> None:
    PILImage.new("RGB", (16, 16)).save(tmp_path / "icon.ico")
    with pytest.raises(ImageError) as exc:
        read_image(tmp_path / "icon.ico")
    assert_one_line(exc, tmp_path / "icon.ico", "unsupported image format ico")


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming a huge image, with a few bytes of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + png_chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_with_the_limit_and_how_to_raise_it(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(100_000, 100_000))
    with pytest.raises(ImageError) as exc:
        read_image(path)
    assert_one_line(exc, path, "100000x100000", "--max-pixels", "litesr_max_pixels")
    # The limit is ours, not Pillow's: a small image over a low limit is refused too, and 0 lifts it.
    small = write_image(tmp_path / "small.png", np.zeros((10, 10, 3)))
    with pytest.raises(ImageError, match="over the limit of 50"):
        read_image(small, max_pixels=50)
    monkeypatch.setenv("LITESR_MAX_PIXELS", "99")
    with pytest.raises(ImageError, match="over the limit of 99"):
        read_image(small)
    assert read_image(small, max_pixels=0).width == 10


# ------------------------------------------------------------------------------------------------------- atomicity


def test_failed_write_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import litesr.images as images

    target = tmp_path / "out.png"
    target.write_bytes(b"previous content")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(images.os, "replace", broken_replace)
    with pytest.raises(ImageError) as exc:
        write_image(target, np.zeros((4, 4, 3)))
    assert_one_line(exc, target, "disk full")
    assert target.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.png"]  # no temporary file either


def test_write_rejects_unknown_suffix_and_bad_arrays(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="suffix"):
        write_image(tmp_path / "a.xyz", np.zeros((4, 4, 3)))
    with pytest.raises(ImageError, match="shape"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 5)))
    assert list(tmp_path.iterdir()) == []
